package managesieve

import (
	"context"

	"github.com/posthouse/posthouse/sievestore"
)

// Store is what a ManageSieve session needs of the script store: the
// methods of *sievestore.Store it calls, with their contracts and errors
// (sievestore's sentinels, *sieve.Error from Check and Put). Accounts are
// the addresses auth returns.
type Store interface {
	List(ctx context.Context, account string) ([]sievestore.Script, error)
	Get(ctx context.Context, account, name string) ([]byte, error)
	Check(src []byte) error
	HaveSpace(ctx context.Context, account, name string, size int) error
	Put(ctx context.Context, account, name string, src []byte) error
	SetActive(ctx context.Context, account, name string) error
	Delete(ctx context.Context, account, name string) error
	Rename(ctx context.Context, account, oldName, newName string) error
	// MaxScriptBytes bounds a script; a larger literal is refused while
	// it is read.
	MaxScriptBytes() int
}

var _ Store = (*sievestore.Store)(nil)
