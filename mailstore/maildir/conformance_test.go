package maildir

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/storetest"
)

// TestConformance runs the mailstore conformance suite against the
// Maildir+SQLite backend.
func TestConformance(t *testing.T) {
	type opened struct {
		dir  string
		opts Options
	}
	var (
		mu     sync.Mutex
		stores = map[mailstore.Store]opened{}
	)
	open := func(t *testing.T, o opened) mailstore.Store {
		t.Helper()
		s, err := Open(context.Background(), o.dir, o.opts)
		if err != nil {
			t.Fatalf("maildir.Open: %v", err)
		}
		mu.Lock()
		stores[s] = o
		mu.Unlock()
		return s
	}
	lookup := func(t *testing.T, s mailstore.Store) opened {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		o, ok := stores[s]
		if !ok {
			t.Fatalf("store %p was not opened by the backend", s)
		}
		return o
	}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, cfg storetest.Config) mailstore.Store {
			return open(t, opened{dir: t.TempDir(), opts: Options{Quota: cfg.Quota, MessageQuota: cfg.MessageQuota}})
		},
		Reopen: func(t *testing.T, s mailstore.Store) mailstore.Store {
			o := lookup(t, s)
			if err := s.Close(); err != nil {
				t.Fatalf("Close before reopening: %v", err)
			}
			return open(t, o)
		},
		// Plant leaves a file in the mailbox's cur/ without a row: what
		// a crash between the rename into cur/ and the index commit
		// leaves, or a restore of Maildir files.
		Plant: func(t *testing.T, s mailstore.Store, account string, mailboxID int64, raw []byte) {
			o := lookup(t, s)
			cur := filepath.Join(o.dir, accountDirName(account), maildirDir, strconv.FormatInt(mailboxID, 10), "cur")
			if err := os.WriteFile(filepath.Join(cur, curName(uniqueName(), int64(len(raw)))), raw, 0o600); err != nil {
				t.Fatalf("plant a message: %v", err)
			}
		},
	})
}
