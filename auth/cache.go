package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// maxCacheEntries bounds the credential cache; when full, expired entries go
// first, then arbitrary ones.
const maxCacheEntries = 10_000

// credID identifies one (account, password) pair: HMAC-SHA256 under a key
// made at start and never stored, so neither the password nor an unkeyed
// hash of it is kept in memory.
type credID [sha256.Size]byte

// credEntry remembers the outcome of verifying one credential against one
// stored hash. It is used only while the user's row still holds that same
// hash (compared by hashSum), so a password changed by another process
// (posthouse admin) takes effect at once; disabled is read from the row on
// every login, never cached.
type credEntry struct {
	account string
	hashSum [sha256.Size]byte
	match   bool
	expires time.Time
}

type credCache struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[credID]credEntry
}

func newCredCache(ttl time.Duration) *credCache {
	return &credCache{ttl: ttl, m: map[credID]credEntry{}}
}

func newCredKey() [32]byte {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		panic("auth: no randomness: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return k
}

func makeCredID(key []byte, account, password string) credID {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(account))
	h.Write([]byte{0})
	h.Write([]byte(password))
	var id credID
	h.Sum(id[:0])
	return id
}

func (c *credCache) get(id credID, now time.Time) (credEntry, bool) {
	if c.ttl < 0 {
		return credEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return credEntry{}, false
	}
	if !now.Before(e.expires) {
		delete(c.m, id)
		return credEntry{}, false
	}
	return e, true
}

func (c *credCache) put(id credID, e credEntry, now time.Time) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCacheEntries {
		for k, v := range c.m {
			if !now.Before(v.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxCacheEntries*9/10 {
				break
			}
			delete(c.m, k)
		}
	}
	e.expires = now.Add(c.ttl)
	c.m[id] = e
}

// invalidate drops every entry of account (SetPassword, SetDisabled,
// RemoveUser in this process).
func (c *credCache) invalidate(account string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.m {
		if v.account == account {
			delete(c.m, k)
		}
	}
}
