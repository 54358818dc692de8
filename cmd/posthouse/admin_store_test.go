package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/postgres"
)

// TestAdminStoreCopy drives posthouse admin store copy: a first copy, a
// rerun that skips, a refusal once the source moved on, --force.
func TestAdminStoreCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(cfgPath, []byte("hostname = \"mail.a.test\"\ndata_dir = \""+data+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deliver := func(user string, n int) {
		t.Helper()
		s, err := maildir.Open(ctx, filepath.Join(data, "accounts"), maildir.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		a, err := s.Open(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		for i := range n {
			msg := fmt.Sprintf("From: x@b.test\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i)
			if _, err := a.Deliver(ctx, strings.NewReader(msg), mailstore.DeliverOptions{Flags: []imap.Flag{"$Copied"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	deliver("alice@a.test", 7)
	deliver("bob@a.test", 3)
	dsn := pgtest.NewDatabase(t)

	copyCmd := func(want int, out string, extra ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		args := append([]string{"admin", "--config", cfgPath, "store", "copy", "--to", dsn}, extra...)
		code := run(ctx, args, strings.NewReader(""), &stdout, &stderr)
		if code != want || !strings.Contains(stdout.String(), out) {
			t.Fatalf("%v: exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q in stdout", extra, code, want, stdout.String(), stderr.String(), out)
		}
	}
	copyCmd(0, "2 accounts copied (10 messages")
	copyCmd(0, "skipped alice@a.test: already copied (7 messages)")
	deliver("alice@a.test", 1)
	copyCmd(1, "FAILED alice@a.test")
	copyCmd(0, "copied alice@a.test: 6 mailboxes, 8 messages", "--force", "alice@a.test")

	s, err := postgres.Open(ctx, postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Open(ctx, "alice@a.test")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	inbox, err := a.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := a.Snapshot(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Messages) != 8 || snap.UIDNext != 9 || snap.Messages[7].UID != 8 {
		t.Fatalf("alice's INBOX after the copy: %+v", snap)
	}
	if f := snap.Messages[0].Flags; len(f) != 1 || f[0] != "$Copied" {
		t.Fatalf("flags %v", f)
	}
}
