package maildir

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/internal/logbuf"
)

// TestReconcileRemovesStaleTmp: files a crash left in tmp/ (and the
// temporary files of interrupted durable.WriteFile rewrites) are removed once older than a day, and
// logged; younger ones may be deliveries in progress elsewhere and stay.
func TestReconcileRemovesStaleTmp(t *testing.T) {
	var logs logbuf.Buffer
	s, dir := newTestStore(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	acc := openAccount(t, s, testAccount)
	in := inboxID(t, acc)
	deliver(t, acc, testMessage("kept", "x"))
	acctDir := filepath.Join(dir, accountDirName(testAccount))
	mbDir := filepath.Join(acctDir, "maildir", fmt.Sprint(in))

	now := time.Now()
	files := []struct {
		path string
		age  time.Duration
		gone bool
	}{
		{filepath.Join(mbDir, "tmp", "1764000000.M1P1Q1Rab.host"), 25 * time.Hour, true},
		{filepath.Join(mbDir, "tmp", "1764000001.M1P1Q2Rab.host"), 23 * time.Hour, false},
		{filepath.Join(mbDir, "tmp", "just-now"), 0, false},
		{filepath.Join(mbDir, ".name.tmp1764000002"), 30 * time.Hour, true},
		{filepath.Join(acctDir, ".addr.tmp1764000003"), 30 * time.Hour, true},
		{filepath.Join(acctDir, ".addr.tmpfresh"), time.Hour, false},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte("partial message"), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := now.Add(-f.age)
		if err := os.Chtimes(f.path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, f := range files {
		_, err := os.Stat(f.path)
		rel, _ := filepath.Rel(acctDir, f.path)
		logged := strings.Contains(out, "removed file left by an interrupted write") && strings.Contains(out, "path="+rel+" ")
		switch {
		case f.gone && !os.IsNotExist(err):
			t.Errorf("%s (%v old) kept: %v", rel, f.age, err)
		case f.gone && !logged:
			t.Errorf("%s removed without a log line:\n%s", rel, out)
		case !f.gone && err != nil:
			t.Errorf("%s (%v old) removed: %v", rel, f.age, err)
		case !f.gone && logged:
			t.Errorf("%s logged as removed", rel)
		}
	}
	if snap, _ := acc.Snapshot(ctx, in); len(snap.Messages) != 1 {
		t.Errorf("mailbox has %d messages, want the one delivered", len(snap.Messages))
	}
}
