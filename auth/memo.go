package auth

import (
	"context"
	"sync"
)

// WithLookupMemo returns a context under which the directory's read
// lookups (users, domains, aliases) are made once and remembered: the
// second resolution of a recipient, its quota read by the mail store and
// its message quota cost no query. It is meant for one short unit of work
// that must see one state of the directory, such as an SMTP transaction
// from MAIL to the end of DATA; a change made meanwhile (a password, a
// quota) applies from the next one. Logins never use it. A context that
// has a memo already is returned as it is, so nested units share it.
func WithLookupMemo(ctx context.Context) context.Context {
	if memoOf(ctx) != nil {
		return ctx
	}
	return context.WithValue(ctx, memoKey{}, &lookupMemo{})
}

type memoKey struct{}

// lookupMemo holds what readLookup found under one WithLookupMemo
// context; a delivery to several accounts uses it from several goroutines.
type lookupMemo struct {
	mu      sync.Mutex
	users   map[string]memoUser
	domains map[string]bool
	aliases map[string][]string // nil slice: no alias
}

type memoUser struct {
	row   userRow
	found bool
}

func memoOf(ctx context.Context) *lookupMemo {
	m, _ := ctx.Value(memoKey{}).(*lookupMemo)
	return m
}

// memoGet and memoSet read and write one of m's tables under its lock.
func memoGet[V any](m *lookupMemo, table map[string]V, key string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := table[key]
	return v, ok
}

func memoSet[V any](m *lookupMemo, table *map[string]V, key string, v V) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if *table == nil {
		*table = map[string]V{}
	}
	(*table)[key] = v
}

// withoutMemo hides a memo from ctx: a login reads the user's row afresh,
// so a password just changed takes effect whatever context it came with.
func withoutMemo(ctx context.Context) context.Context {
	if memoOf(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, memoKey{}, (*lookupMemo)(nil))
}
