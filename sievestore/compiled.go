package sievestore

import (
	"container/list"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
	"github.com/posthouse/posthouse/sieve"
)

// Active returns the account's active script, compiled, and its name; a
// nil script and "" when none is active. The error of a stored script
// that no longer compiles is a *sieve.Error.
func (s *Store) Active(ctx context.Context, account string) (name string, script *sieve.Script, err error) {
	var hash []byte
	err = s.activeStmt.QueryRowContext(sqlitedb.QuietOn(s.db.Read, ctx), account).Scan(&name, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("sievestore: active script of %s: %w", account, err)
	}
	script, err = s.load(ctx, account, name, hash)
	return name, script, err
}

// Compiled returns one of the account's scripts compiled (for include,
// RFC 6609). A missing script's error wraps both ErrNotFound and
// sieve.ErrNoSuchScript.
func (s *Store) Compiled(ctx context.Context, account, name string) (*sieve.Script, error) {
	if ValidName(name) != nil {
		return nil, fmt.Errorf("%w (%w): %s", ErrNotFound, sieve.ErrNoSuchScript, name)
	}
	var hash []byte
	err := s.db.Read.QueryRowContext(ctx, `SELECT hash FROM scripts WHERE account = ? AND name = ?`, account, name).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w (%w): %s", ErrNotFound, sieve.ErrNoSuchScript, name)
	}
	if err != nil {
		return nil, fmt.Errorf("sievestore: script %s of %s: %w", name, account, err)
	}
	return s.load(ctx, account, name, hash)
}

// load returns the compiled script of hash, from the cache or from its
// stored source.
func (s *Store) load(ctx context.Context, account, name string, hash []byte) (*sieve.Script, error) {
	var key [sha256.Size]byte
	copy(key[:], hash)
	if e, ok := s.cache.get(key); ok {
		return e.script, e.err
	}
	var src []byte
	err := s.db.Read.QueryRowContext(ctx, `SELECT source FROM scripts WHERE account = ? AND name = ?`, account, name).Scan(&src)
	if errors.Is(err, sql.ErrNoRows) {
		// Removed between the two queries.
		return nil, fmt.Errorf("%w (%w): %s", ErrNotFound, sieve.ErrNoSuchScript, name)
	}
	if err != nil {
		return nil, fmt.Errorf("sievestore: script %s of %s: %w", name, account, err)
	}
	return s.compiled(src, sha256.Sum256(src))
}

// compiled compiles src through the cache; key is its SHA-256.
func (s *Store) compiled(src []byte, key [sha256.Size]byte) (*sieve.Script, error) {
	if e, ok := s.cache.get(key); ok {
		return e.script, e.err
	}
	sc, err := sieve.Compile(src, s.opts.Compile)
	s.cache.put(key, entry{script: sc, err: err})
	return sc, err
}

// entry is a compiled script or the error compiling it.
type entry struct {
	script *sieve.Script
	err    error
}

// cache keeps compiled scripts by the hash of their source, least
// recently used out past max.
type cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of [32]byte, most recent at the front
	items map[[sha256.Size]byte]*cacheItem
}

type cacheItem struct {
	entry
	elem *list.Element
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), items: map[[sha256.Size]byte]*cacheItem{}}
}

func (c *cache) get(k [sha256.Size]byte) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[k]
	if !ok {
		return entry{}, false
	}
	c.order.MoveToFront(it.elem)
	return it.entry, true
}

func (c *cache) put(k [sha256.Size]byte, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[k]; ok {
		it.entry = e
		c.order.MoveToFront(it.elem)
		return
	}
	c.items[k] = &cacheItem{entry: e, elem: c.order.PushFront(k)}
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).([sha256.Size]byte)
		delete(c.items, old)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
