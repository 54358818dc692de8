package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/internal/logbuf"
)

var (
	home     = netip.MustParseAddr("198.51.100.20") // where bob logged in before
	newPlace = netip.MustParseAddr("198.51.100.21") // where he never did
	loopback = netip.MustParseAddr("127.0.0.1")
)

// attacker is the i-th source address of a distributed guesser.
func attacker(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{203, 0, byte(113 + i/250), byte(1 + i%250)})
}

// volley sends one guess from each of addrs×parallel goroutines at once
// (distinct passwords, tagged with round) and counts the answers.
func volley(t *testing.T, db *DB, account string, round, addrs, parallel int) (checked, refused int) {
	t.Helper()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for a := 0; a < addrs; a++ {
		for g := 0; g < parallel; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := db.Authenticate(context.Background(), account, fmt.Sprintf("guess-%d-%d-%d", round, a, g), attacker(a))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, ErrBadCredentials):
					checked++
				case errors.Is(err, ErrThrottled):
					refused++
				default:
					t.Errorf("guess: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	return checked, refused
}

// TestThrottlePerAccountCap: 40 addresses with 8 guesses in flight each,
// one volley per simulated second for a minute. No address reaches its own
// limit, yet the account gets AccountMaxFailures checks and then one per
// AccountInterval; bob, from the address he logged in from before, is let in
// throughout, and a new address of his is refused like the attacker's.
func TestThrottlePerAccountCap(t *testing.T) { forEachBackend(t, testThrottlePerAccountCap) }

func testThrottlePerAccountCap(t *testing.T) {
	ctx := context.Background()
	logs := &logbuf.Buffer{}
	env := newTestDB(t, Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", home); err != nil {
		t.Fatal(err)
	}

	const window = time.Minute
	checked, refused := 0, 0
	hashes := db.verifications.Load()
	for round := 0; round < int(window/time.Second); round++ {
		c, r := volley(t, db, "bob@example.com", round, 40, 8)
		checked += c
		refused += r
		if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", home); err != nil {
			t.Fatalf("second %d: bob from home: %v", round, err)
		}
		env.clock.Advance(time.Second)
	}
	want := DefaultAccountMaxFailures + int(window/DefaultAccountInterval)
	if checked != want {
		t.Errorf("%d guesses checked in %v from 40 addresses × 8, want %d (%d free, then one per %v)",
			checked, window, want, DefaultAccountMaxFailures, DefaultAccountInterval)
	}
	if refused != 40*8*int(window/time.Second)-checked {
		t.Errorf("%d refused, %d checked: answers missing", refused, checked)
	}
	// Every check is one hash: bob's 60 logins hit the credential cache
	// after the first (which happened before hashes was read).
	if got := db.verifications.Load() - hashes; got != int64(checked) {
		t.Errorf("%d hashes for %d checked guesses", got, checked)
	}
	// A refusal comes before the check, so it says nothing about the
	// password: right and wrong are both refused, without a hash.
	if _, err := db.Authenticate(ctx, "bob@example.com", "take the slot", attacker(300)); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("guess in a free slot: %v", err)
	}
	before := db.verifications.Load()
	for _, pw := range []string{"pw-bob", "wrong"} {
		if _, err := db.Authenticate(ctx, "bob@example.com", pw, newPlace); !errors.Is(err, ErrThrottled) {
			t.Fatalf("password %q from a new address during the attack: %v, want ErrThrottled", pw, err)
		}
	}
	if db.verifications.Load() != before {
		t.Fatal("a refused attempt computed a hash")
	}
	// Other accounts are not affected.
	seed(t, db, nil, []string{"carol@example.com"}, nil)
	if _, err := db.Authenticate(ctx, "carol@example.com", "pw-carol", newPlace); err != nil {
		t.Fatalf("another account: %v", err)
	}
	if n := strings.Count(logs.String(), "too many failed logins for this account"); n != 1 {
		t.Errorf("%d account throttling lines, want 1 per episode:\n%s", n, logs.String())
	}
	// An hour after the last failure the cap is lifted.
	env.clock.Advance(DefaultAccountWindow)
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", newPlace); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestThrottleAccountParallel sends guesses for one account from 200
// addresses at once while every hash slot is busy: only AccountMaxFailures
// of them, and one more for the first slot, get as far as the password check.
func TestThrottleAccountParallel(t *testing.T) { forEachBackend(t, testThrottleAccountParallel) }

func testThrottleAccountParallel(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{MaxConcurrentHashes: 1})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	db.hashes <- struct{}{} // hold the only hash slot
	const n = 200
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := db.Authenticate(ctx, "bob@example.com", fmt.Sprint("guess", i), attacker(i))
			results <- err
		}()
	}
	admitted := DefaultAccountMaxFailures + 1
	for i := 0; i < n-admitted; i++ {
		if err := <-results; !errors.Is(err, ErrThrottled) {
			t.Fatalf("early result %v, want ErrThrottled", err)
		}
	}
	before := db.verifications.Load()
	<-db.hashes
	for i := 0; i < admitted; i++ {
		if err := <-results; !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("checked guess: %v", err)
		}
	}
	if got := db.verifications.Load() - before; got != int64(admitted) {
		t.Fatalf("%d passwords checked, want %d", got, admitted)
	}
}

// TestKnownAddress: the exemption is per account and per address (an IPv6
// /64), survives a restart through the database, expires after
// KnownAddressTTL, and goes with the user.
func TestKnownAddress(t *testing.T) { forEachBackend(t, testKnownAddress) }

func testKnownAddress(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com", "carol@example.com"}, nil)
	phone := netip.MustParseAddr("2001:db8:5:6::1")
	office := netip.MustParseAddr("192.0.2.99")
	for _, a := range []netip.Addr{home, phone, office} {
		if _, err := env.db.Authenticate(ctx, "bob@example.com", "pw-bob", a); err != nil {
			t.Fatal(err)
		}
	}
	attack := func(db *DB, account string) {
		t.Helper()
		for i := 0; i < DefaultAccountMaxFailures+1; i++ {
			db.Authenticate(ctx, account, fmt.Sprint("guess", i), attacker(i))
		}
		if _, err := db.Authenticate(ctx, account, "x", attacker(99)); !errors.Is(err, ErrThrottled) {
			t.Fatalf("%s not capped: %v", account, err)
		}
	}
	must(t, env.db.Close())
	env.clock.Advance(DefaultKnownAddressTTL - time.Hour)
	db := env.open(t, Options{})
	attack(db, "bob@example.com")
	attack(db, "carol@example.com")
	tests := []struct {
		name, user, pw string
		from           netip.Addr
		want           error
	}{
		{"known address after restart", "bob@example.com", "pw-bob", home, nil},
		{"same IPv6 /64", "bob@example.com", "pw-bob", netip.MustParseAddr("2001:db8:5:6::abcd"), nil},
		{"wrong password from a known address is checked", "bob@example.com", "typo", home, ErrBadCredentials},
		{"known to bob, not to carol", "carol@example.com", "pw-carol", home, ErrThrottled},
		{"other /64", "bob@example.com", "pw-bob", netip.MustParseAddr("2001:db8:5:7::1"), ErrThrottled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.Authenticate(ctx, tc.user, tc.pw, tc.from); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The office's address was not used since: it expires; home was just
	// used.
	env.clock.Advance(2 * time.Hour)
	attack(db, "bob@example.com")
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", office); !errors.Is(err, ErrThrottled) {
		t.Fatalf("expired known address: %v", err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", home); err != nil {
		t.Fatalf("refreshed known address: %v", err)
	}
	// The rows go with the user.
	must(t, db.RemoveUser(ctx, "bob@example.com"))
	var rows int
	must(t, db.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM known_addresses`).Scan(&rows))
	if rows != 0 {
		t.Fatalf("%d known_addresses rows after removing the only user who had any", rows)
	}
}

// TestKnownAddressSaved: the database keeps the maxKnownPerAccount most
// recent addresses per user, and a client logging in again and again costs
// one write per knownRefresh.
func TestKnownAddressSaved(t *testing.T) { forEachBackend(t, testKnownAddressSaved) }

func testKnownAddressSaved(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	count := func() (n int, last int64) {
		t.Helper()
		must(t, db.db.Read.QueryRowContext(ctx, `SELECT count(*), coalesce(max(last_login), 0) FROM known_addresses`).Scan(&n, &last))
		return n, last
	}
	for i := 0; i < 3; i++ {
		mustLogin(t, db, "bob@example.com", "pw-bob", home)
		env.clock.Advance(time.Hour)
	}
	if n, last := count(); n != 1 || last != env.clock.Now().Add(-3*time.Hour).Unix() {
		t.Fatalf("%d rows, last_login %d: want one row written at the first login", n, last)
	}
	env.clock.Advance(knownRefresh)
	mustLogin(t, db, "bob@example.com", "pw-bob", home)
	if _, last := count(); last != env.clock.Now().Unix() {
		t.Fatalf("last_login not refreshed after %v", knownRefresh)
	}
	for i := 0; i < 2*maxKnownPerAccount; i++ {
		env.clock.Advance(time.Second)
		mustLogin(t, db, "bob@example.com", "pw-bob", attacker(i))
	}
	if n, _ := count(); n != maxKnownPerAccount {
		t.Fatalf("%d rows for one user, want %d", n, maxKnownPerAccount)
	}
	// Trusted addresses are never stored.
	mustLogin(t, db, "bob@example.com", "pw-bob", loopback)
	var n int
	must(t, db.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM known_addresses WHERE prefix LIKE '127.%'`).Scan(&n))
	if n != 0 {
		t.Fatal("a trusted address was stored as known")
	}
}

func mustLogin(t testing.TB, db *DB, user, pw string, from netip.Addr) {
	t.Helper()
	if _, err := db.Authenticate(context.Background(), user, pw, from); err != nil {
		t.Fatalf("%s from %v: %v", user, from, err)
	}
}

// TestTrustedNetworks: a webmail on loopback makes many users' failures
// from one address without being locked out, but the per-account cap
// applies to it, and its logins make no address known.
func TestTrustedNetworks(t *testing.T) { forEachBackend(t, testTrustedNetworks) }

func testTrustedNetworks(t *testing.T) {
	ctx := context.Background()
	users := []string{"bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		from    netip.Addr
		locked  bool
	}{
		{"loopback by default", nil, loopback, false},
		{"configured network", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, ipA, false},
		{"configured network excludes loopback", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, loopback, true},
		{"none", []netip.Prefix{}, loopback, true},
		{"untrusted address", nil, ipA, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestDB(t, Options{TrustedNetworks: tc.trusted})
			db := env.db
			seed(t, db, []string{"example.com"}, users, nil)
			// Each user mistypes three times: 12 distinct failures from
			// the address, over IPMaxFailures, under every account's cap.
			for _, u := range users {
				for i := 0; i < 3; i++ {
					_, err := db.Authenticate(ctx, u, fmt.Sprint("typo", i), tc.from)
					if !errors.Is(err, ErrBadCredentials) && !errors.Is(err, ErrThrottled) {
						t.Fatal(err)
					}
				}
			}
			_, err := db.Authenticate(ctx, "erin@example.com", "pw-erin", tc.from)
			if locked := errors.Is(err, ErrThrottled); locked != tc.locked || (!locked && err != nil) {
				t.Fatalf("after %d failures from %v: %v, want locked=%v", 4*3, tc.from, err, tc.locked)
			}
		})
	}

	// The per-account cap applies to a trusted address, and a login from
	// it does not exempt it.
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, users, nil)
	mustLogin(t, db, "bob@example.com", "pw-bob", loopback)
	for i := 0; i <= DefaultAccountMaxFailures; i++ {
		db.Authenticate(ctx, "bob@example.com", fmt.Sprint("guess", i), loopback)
	}
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", loopback); !errors.Is(err, ErrThrottled) {
		t.Fatalf("capped account from a trusted address: %v, want ErrThrottled", err)
	}
	env.clock.Advance(DefaultAccountInterval)
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", loopback); err != nil {
		t.Fatalf("next slot: %v", err)
	}
}
