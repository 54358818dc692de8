package junk

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// DefaultCacheFeatures is how many features, over all accounts, the
// in-memory cache holds (16 bytes each: 32 MiB).
const DefaultCacheFeatures = 2 << 20

// A lookup of a message's 600 or so features costs about 0.4 ms of
// SQLite's CPU (one index search each), most of the half millisecond a
// message may take; in memory, a binary search each, it costs a few
// microseconds. So the statistics of accounts that get mail are kept in
// memory, as sorted arrays, within a budget of features, least recently
// used out first. An account is loaded on its second classification (its
// first one is looked up in the database), so a stream of one-off
// recipients does not churn the cache. Learning drops the account's copy;
// the next classification but one loads it again.

// model is one account's statistics in memory.
type model struct {
	stats   Stats
	entries []entry // sorted by hash
	elem    *list.Element
}

type entry struct {
	hash      uint64
	spam, ham uint32
}

func (m *model) counts(hashes []uint64) []Count {
	out := make([]Count, len(hashes))
	for i, h := range hashes {
		j, ok := slices.BinarySearchFunc(m.entries, h, func(e entry, h uint64) int {
			switch {
			case e.hash < h:
				return -1
			case e.hash > h:
				return 1
			}
			return 0
		})
		if ok {
			out[i] = Count{Spam: int64(m.entries[j].spam), Ham: int64(m.entries[j].ham)}
		}
	}
	return out
}

// cache holds models by account name.
type cache struct {
	mu       sync.Mutex
	budget   int
	size     int // features held
	models   map[string]*model
	lru      *list.List // of account names, most recent first
	gen      map[string]uint64
	seen     map[string]bool // classified once, not loaded
	maxSeen  int
	disabled bool
}

func newCache(budget int) *cache {
	return &cache{budget: budget, models: map[string]*model{}, lru: list.New(), gen: map[string]uint64{},
		seen: map[string]bool{}, maxSeen: 10000, disabled: budget < 0}
}

// get returns the account's model, if held.
func (c *cache) get(account string) *model {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.models[account]
	if m != nil {
		c.lru.MoveToFront(m.elem)
	}
	return m
}

// wantLoad says whether to load the account now (its second
// classification), and returns its generation for put.
func (c *cache) wantLoad(account string, features int64) (bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled || features > int64(c.budget) {
		return false, 0
	}
	if !c.seen[account] {
		if len(c.seen) >= c.maxSeen {
			clear(c.seen)
		}
		c.seen[account] = true
		return false, 0
	}
	delete(c.seen, account)
	return true, c.gen[account]
}

// put stores a model loaded at generation gen, unless the account learned
// since.
func (c *cache) put(account string, gen uint64, m *model) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[account] != gen || c.models[account] != nil {
		return
	}
	for c.size+len(m.entries) > c.budget && c.lru.Len() > 0 {
		oldest := c.lru.Remove(c.lru.Back()).(string)
		c.size -= len(c.models[oldest].entries)
		delete(c.models, oldest)
	}
	m.elem = c.lru.PushFront(account)
	c.models[account] = m
	c.size += len(m.entries)
}

// drop forgets an account's model: it is learning.
func (c *cache) drop(account string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[account]++
	if m := c.models[account]; m != nil {
		c.lru.Remove(m.elem)
		c.size -= len(m.entries)
		delete(c.models, account)
	}
}

// load reads an account's statistics whole.
func (d *DB) load(ctx context.Context, account string) (*model, error) {
	tx, err := d.db.Read.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	m := &model{}
	var id int64
	if err := tx.QueryRowContext(ctx, `SELECT id, nspam, nham, ntokens FROM accounts WHERE name = ?`, account).
		Scan(&id, &m.stats.Spam, &m.stats.Ham, &m.stats.Tokens); err != nil {
		return nil, fmt.Errorf("junk: load %s: %w", account, err)
	}
	m.entries = make([]entry, 0, m.stats.Tokens)
	var (
		h         int64
		spam, ham int64
	)
	rows, err := tx.QueryContext(ctx, `SELECT hash, spam, ham FROM tokens WHERE account = ?`, id)
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		if err := row.Scan(&h, &spam, &ham); err != nil {
			return err
		}
		m.entries = append(m.entries, entry{hash: uint64(h), spam: uint32(min(spam, 1<<32-1)), ham: uint32(min(ham, 1<<32-1))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("junk: load %s: %w", account, err)
	}
	// Rows come in (signed) hash order; the search wants unsigned order.
	slices.SortFunc(m.entries, func(a, b entry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	return m, nil
}
