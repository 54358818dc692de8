package mailstore

import "context"

// Narrowed serves a Store's accounts as A, the narrower interface a
// consumer declares for what it calls (pop3d.Account, smtpd.Account,
// delivery.Account). Go does not let a method returning Account stand for
// one returning A, so Narrowed's Open converts. A must be an interface
// every Account satisfies; declare `var _ A = mailstore.Account(nil)` next
// to it so that the compiler checks what Open relies on.
type Narrowed[A any] struct{ Store Store }

// Narrow returns s serving accounts as A.
func Narrow[A any](s Store) Narrowed[A] { return Narrowed[A]{s} }

// Open opens the account as Store.Open does and returns it as A.
func (n Narrowed[A]) Open(ctx context.Context, name string) (A, error) {
	a, err := n.Store.Open(ctx, name)
	if err != nil {
		var zero A
		return zero, err
	}
	return any(a).(A), nil
}
