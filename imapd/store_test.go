package imapd

import (
	"context"
	"os"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// Tests run against the real store (mailstore/maildir) unless
// IMAPD_FAKE_STORE is set, which selects the in-memory fake.
func init() {
	if os.Getenv("IMAPD_FAKE_STORE") != "" {
		return
	}
	storeFactory = func(t testing.TB) mailstore.Store {
		t.Helper()
		s, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
