package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestParseArgon2id(t *testing.T) {
	good, err := hashPassword("pw", testArgon)
	must(t, err)
	const salt, key = "c2FsdHNhbHRzYWx0", "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"ours", good, true},
		{"explicit", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key, true},
		{"parameters in other order", "$argon2id$v=19$p=1,t=2,m=19456$" + salt + "$" + key, true},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key, false},
		{"version 16", "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key, false},
		{"missing parameter", "$argon2id$v=19$m=19456,t=2$" + salt + "$" + key, false},
		{"unknown parameter", "$argon2id$v=19$m=19456,t=2,p=1,x=3$" + salt + "$" + key, false},
		{"non-numeric", "$argon2id$v=19$m=lots,t=2,p=1$" + salt + "$" + key, false},
		{"no equals", "$argon2id$v=19$m19456,t=2,p=1$" + salt + "$" + key, false},
		{"zero time", "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key, false},
		{"too many threads", "$argon2id$v=19$m=19456,t=2,p=17$" + salt + "$" + key, false},
		{"memory below 8·p", "$argon2id$v=19$m=7,t=1,p=1$" + salt + "$" + key, false},
		{"memory too high", "$argon2id$v=19$m=262145,t=1,p=1$" + salt + "$" + key, false},
		{"bad salt base64", "$argon2id$v=19$m=19456,t=2,p=1$!!!$" + key, false},
		{"short salt", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$" + key, false},
		{"short key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$aGFzaA", false},
		{"padded base64", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key, false},
		{"too few fields", "$argon2id$v=19$m=19456,t=2,p=1$" + salt, false},
		{"no leading dollar", "argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := parseArgon2id(tc.in)
			if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("parseArgon2id(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

func TestVerifyPassword(t *testing.T) {
	ours, err := hashPassword("right", testArgon)
	must(t, err)
	other, err := hashPassword("right", argonParams{Memory: 128, Time: 1, Threads: 1, KeyLen: 32})
	must(t, err)
	tests := []struct {
		name, hash, pw    string
		match, rehash, ok bool
	}{
		{"ours right", ours, "right", true, false, true},
		{"ours wrong", ours, "wrong", false, false, true},
		{"other parameters right", other, "right", true, true, true},
		{"other parameters wrong", other, "wrong", false, false, true},
		{"bcrypt over 72 bytes is a mismatch", "$2a$04$abcdefghijklmnopqrstuu5W2qHk2JSOjXXcwC2M4j.Mu8mOdeShm", string(make([]byte, 80)), false, false, true},
		{"malformed bcrypt", "$2a$04$short", "right", false, false, false},
		{"unknown scheme", "{SSHA}abc", "right", false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			match, rehash, err := verifyPassword(tc.hash, tc.pw, testArgon)
			if match != tc.match || rehash != tc.rehash || (err == nil) != tc.ok {
				t.Fatalf("verifyPassword = %v, %v, %v; want %v, %v, ok=%v", match, rehash, err, tc.match, tc.rehash, tc.ok)
			}
		})
	}
}

func TestCredCacheBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	c := newCredCache(time.Minute)
	for i := 0; i < maxCacheEntries+10; i++ {
		var id credID
		copy(id[:], fmt.Sprint(i))
		c.put(id, credEntry{account: "a"}, now)
	}
	if n := len(c.m); n > maxCacheEntries {
		t.Fatalf("cache holds %d entries, bound %d", n, maxCacheEntries)
	}
	// Expired entries are the first to go.
	c = newCredCache(time.Minute)
	for i := 0; i < maxCacheEntries; i++ {
		var id credID
		copy(id[:], fmt.Sprint(i))
		c.put(id, credEntry{account: "old"}, now)
	}
	var fresh credID
	copy(fresh[:], "fresh")
	c.put(fresh, credEntry{account: "new"}, now.Add(2*time.Minute))
	if n := len(c.m); n != 1 {
		t.Fatalf("%d entries after expiry sweep, want 1", n)
	}
	// A disabled cache stores nothing.
	c = newCredCache(-1)
	c.put(fresh, credEntry{}, now)
	if _, ok := c.get(fresh, now); ok || len(c.m) != 0 {
		t.Fatal("disabled cache stored an entry")
	}
}

func TestThrottleBounded(t *testing.T) {
	o := withDefaults(Options{})
	th := newThrottle(o)
	now := time.Unix(1e9, 0)
	for i := 0; i < maxTrackedKeys+100; i++ {
		ip := ipKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		var cred credID
		copy(cred[:], fmt.Sprint(i))
		th.fail(now, ip, fmt.Sprintf("u%d@example.com", i), cred, false)
	}
	th.begin(now, netip.Prefix{}, "x", credID{}, false) // sweeps when over the bound
	if len(th.ips) > maxTrackedKeys || len(th.accounts) > maxTrackedKeys {
		t.Fatalf("tracking %d addresses and %d accounts, bound %d", len(th.ips), len(th.accounts), maxTrackedKeys)
	}
	// Everything expires.
	th.begin(now.Add(2*time.Hour), netip.Prefix{}, "x", credID{}, false)
	if len(th.ips) > 1 || len(th.accounts) > 1 {
		t.Fatalf("after expiry: %d addresses, %d accounts", len(th.ips), len(th.accounts))
	}
	// One account's failures are bounded too.
	for i := 0; i < 2*maxFailuresPerKey; i++ {
		var cred credID
		copy(cred[:], fmt.Sprint(i))
		th.fail(now, netip.Prefix{}, "bob@example.com", cred, false)
	}
	if n := len(th.accounts["bob@example.com"].fails); n != maxFailuresPerKey {
		t.Fatalf("%d failures kept for one account, want %d", n, maxFailuresPerKey)
	}
}

// TestKnownBounded: known addresses are kept per account up to
// maxKnownPerAccount (the most recent) and up to maxKnown in all, and
// expire after KnownAddressTTL.
func TestKnownBounded(t *testing.T) {
	th := newThrottle(withDefaults(Options{}))
	now := time.Unix(1e9, 0)
	addr := func(i int) netip.Prefix {
		return ipKey(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	for i := 0; i < 3*maxKnownPerAccount; i++ {
		th.success(now.Add(time.Duration(i)*time.Second), addr(i), "bob@example.com", false)
	}
	if n := len(th.known["bob@example.com"]); n != maxKnownPerAccount {
		t.Fatalf("%d known addresses for one account, want %d", n, maxKnownPerAccount)
	}
	last := now.Add(time.Duration(3*maxKnownPerAccount) * time.Second)
	if !th.isKnown(last, "bob@example.com", addr(3*maxKnownPerAccount-1)) || th.isKnown(last, "bob@example.com", addr(0)) {
		t.Fatal("the most recent addresses are not the ones kept")
	}
	for i := 0; i < maxKnown+100; i++ {
		th.success(now, addr(i), fmt.Sprintf("u%d@example.com", i), false)
	}
	if th.nKnown > maxKnown || len(th.known) > maxKnown {
		t.Fatalf("%d known addresses over %d accounts, bound %d", th.nKnown, len(th.known), maxKnown)
	}
	total := 0
	for _, ks := range th.known {
		total += len(ks)
	}
	if total != th.nKnown {
		t.Fatalf("nKnown %d, counted %d", th.nKnown, total)
	}
	th.begin(now.Add(DefaultKnownAddressTTL+time.Hour), addr(1), "x", credID{}, false)
	if th.nKnown != 0 || len(th.known) != 0 {
		t.Fatalf("after the TTL: %d known addresses left", th.nKnown)
	}
	// A trusted address (a proxy) never becomes known.
	if th.success(now, addr(1), "bob@example.com", true) || th.isKnown(now, "bob@example.com", addr(1)) {
		t.Fatal("a trusted address became known")
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	must(t, env.db.Close())
	db := env.open(t, Options{})
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
	// A database from a newer binary is refused, not modified.
	_, err := db.db.Write.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1))
	must(t, err)
	must(t, db.Close())
	if db, err := Open(ctx, env.path, Options{}); err == nil {
		db.Close()
		t.Fatal("opened a database with a newer schema")
	}
}
