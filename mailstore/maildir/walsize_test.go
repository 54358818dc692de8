package maildir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
)

// TestWALBounded: the index's WAL is checkpointed and cut back often enough
// that it stays small beside the mail, however many messages arrive.
func TestWALBounded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	acc, err := s.Open(context.Background(), "wal@example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	const n = 300 // about 1,800 WAL pages without checkpoints
	for range n {
		if _, err := acc.Deliver(context.Background(), strings.NewReader(message10K), mailstore.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wals, err := filepath.Glob(filepath.Join(dir, "*", indexFile+"-wal"))
	if err != nil || len(wals) != 1 {
		t.Fatalf("WAL files: %v, %v", wals, err)
	}
	fi, err := os.Stat(wals[0])
	if err != nil {
		t.Fatal(err)
	}
	// One checkpoint interval plus the frames of one last transaction.
	if max := int64(walKeepBytes + 64<<10); fi.Size() > max {
		t.Errorf("WAL is %d bytes after %d deliveries, want at most %d", fi.Size(), n, max)
	}
}
