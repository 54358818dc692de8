package pop3d

import (
	"context"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// newTestStore returns the store the loopback tests run on: the real
// Maildir+SQLite backend in a temporary directory. (fakeStore serves the
// fuzz target and the tests that inject store failures.)
func newTestStore(t testing.TB) mailstore.Store {
	t.Helper()
	store, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	return store
}
