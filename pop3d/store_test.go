package pop3d

import (
	"testing"

	"github.com/posthouse/posthouse/mailstore"
)

// newTestStore returns the store the loopback tests run on.
func newTestStore(t testing.TB) mailstore.Store {
	t.Helper()
	return newFakeStore()
}
