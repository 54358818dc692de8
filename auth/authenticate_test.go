package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

var (
	ipA = netip.MustParseAddr("192.0.2.1")
	ipB = netip.MustParseAddr("198.51.100.7")
)

func TestAuthenticate(t *testing.T) { forEachBackend(t, testAuthenticate) }

func testAuthenticate(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com", "off@example.com"}, nil)
	must(t, db.SetDisabled(ctx, "off@example.com", true))
	tests := []struct {
		name, user, password string
		want                 error
	}{
		{"right", "bob@example.com", "pw-bob", nil},
		{"right, user name in upper case", "BOB@Example.Com", "pw-bob", nil},
		{"wrong password", "bob@example.com", "pw-bobx", ErrBadCredentials},
		{"password is case-sensitive", "bob@example.com", "PW-BOB", ErrBadCredentials},
		{"unknown user", "nobody@example.com", "pw-bob", ErrBadCredentials},
		{"unknown domain", "bob@elsewhere.example", "pw-bob", ErrBadCredentials},
		{"disabled user, right password", "off@example.com", "pw-off", ErrBadCredentials},
		{"empty password", "bob@example.com", "", ErrBadCredentials},
		{"over-long password", "bob@example.com", strings.Repeat("p", maxPassword+1), ErrBadCredentials},
		{"local part only", "bob", "pw-bob", ErrBadCredentials},
		{"empty user", "", "pw-bob", ErrBadCredentials},
		{"control characters in user", "bob\r\n@example.com", "pw-bob", ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := db.Authenticate(ctx, tc.user, tc.password, ipA)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Authenticate(%q) = %v, want %v", tc.user, err, tc.want)
			}
			if err == nil && u.Address != "bob@example.com" {
				t.Fatalf("Authenticate returned %+v", u)
			}
			if err != nil && u != (User{}) {
				t.Fatalf("failed Authenticate returned a user: %+v", u)
			}
		})
	}
	logs := env.logs.String()
	for _, secret := range []string{"pw-bob", "pw-off", "PW-BOB"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("log contains password %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{
		`msg="auth success" user=bob@example.com remote=192.0.2.1`,
		`msg="auth failed" user=nobody@example.com remote=192.0.2.1 reason="no such user"`,
		`msg="auth failed" user=off@example.com remote=192.0.2.1 reason="account disabled"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// TestAuthenticateUnknownUserCostsAHash checks the constant-time property
// structurally: an unknown user is verified against the dummy hash.
func TestAuthenticateUnknownUserCostsAHash(t *testing.T) {
	forEachBackend(t, testAuthenticateUnknownUserCostsAHash)
}

func testAuthenticateUnknownUserCostsAHash(t *testing.T) {
	env := newTestDB(t, Options{CacheTTL: -1})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	for _, user := range []string{"bob@example.com", "nobody@example.com", "x@elsewhere.example", "not-an-address"} {
		before := env.db.verifications.Load()
		env.db.Authenticate(context.Background(), user, "guess", ipA)
		if got := env.db.verifications.Load() - before; got != 1 {
			t.Errorf("%s: %d hash verifications, want 1", user, got)
		}
	}
}

func TestThrottlePerIP(t *testing.T) { forEachBackend(t, testThrottlePerIP) }

func testThrottlePerIP(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com", "carol@example.com"}, nil)

	// The same wrong password retried (a client with a stale password)
	// counts once.
	for i := 0; i < 3*DefaultIPMaxFailures; i++ {
		if _, err := db.Authenticate(ctx, "carol@example.com", "stale", ipA); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("retry %d: %v", i, err)
		}
	}
	// Distinct guesses count: after the limit the address is refused, even
	// with the right password, and without a hash being computed.
	for i := 1; i < DefaultIPMaxFailures; i++ {
		env.clock.Advance(time.Second)
		if _, err := db.Authenticate(ctx, "bob@example.com", fmt.Sprint("guess", i), ipA); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	before := db.verifications.Load()
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after %d failures: %v, want ErrThrottled", DefaultIPMaxFailures, err)
	}
	if db.verifications.Load() != before {
		t.Fatalf("a throttled attempt computed a hash")
	}
	// An IPv4-mapped form of the same address is the same client; a
	// different address is not affected.
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", netip.AddrFrom16(ipA.As16())); !errors.Is(err, ErrThrottled) {
		t.Fatalf("IPv4-mapped address: %v, want ErrThrottled", err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipB); err != nil {
		t.Fatalf("other address: %v", err)
	}
	// The oldest failure (the stale password, at t0) leaves the window at
	// t0+10m: one slot frees, so one more guess is checked.
	env.clock.Advance(DefaultIPWindow - time.Duration(DefaultIPMaxFailures-1)*time.Second)
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if n := strings.Count(env.logs.String(), "auth throttled"); n != 1 {
		t.Errorf("%d throttling lines, want 1 per episode:\n%s", n, env.logs.String())
	}
	if !strings.Contains(env.logs.String(), "level=WARN msg=\"auth throttled") {
		t.Errorf("throttling not logged at Warn:\n%s", env.logs.String())
	}
}

func TestThrottleIPv6Prefix(t *testing.T) { forEachBackend(t, testThrottleIPv6Prefix) }

func testThrottleIPv6Prefix(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{IPMaxFailures: 3})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	for i := 1; i <= 3; i++ {
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i))
		env.db.Authenticate(ctx, "bob@example.com", fmt.Sprint("guess", i), a)
	}
	tests := []struct {
		name, addr string
		want       error
	}{
		{"same /64", "2001:db8:1:2:ffff::1", ErrThrottled},
		{"next /64", "2001:db8:1:3::1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := env.db.Authenticate(ctx, "bob@example.com", "pw-bob", netip.MustParseAddr(tc.addr)); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestThrottleResetOnSuccess(t *testing.T) { forEachBackend(t, testThrottleResetOnSuccess) }

func testThrottleResetOnSuccess(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com", "carol@example.com"}, nil)
	fail := func(user string, n int, ip netip.Addr) {
		t.Helper()
		for i := 0; i < n; i++ {
			if _, err := db.Authenticate(ctx, user, fmt.Sprintf("typo%d-%s", i, ip), ip); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("failure %d for %s: %v", i, user, err)
			}
		}
	}
	fail("bob@example.com", DefaultIPMaxFailures-1, ipA)
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatal(err)
	}
	// bob's failures from ipA are forgotten: nine more do not throttle.
	fail("bob@example.com", DefaultIPMaxFailures-1, ipA)
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	// Another account's failures from the same address are not forgotten by
	// bob's success.
	fail("carol@example.com", DefaultIPMaxFailures-1, ipA)
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatal(err)
	}
	fail("carol@example.com", 1, ipB)
	if _, err := db.Authenticate(ctx, "bob@example.com", "wrong", ipA); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); !errors.Is(err, ErrThrottled) {
		t.Fatalf("carol's failures were forgotten by bob's success: %v", err)
	}
}

func TestThrottleDisabled(t *testing.T) { forEachBackend(t, testThrottleDisabled) }

func testThrottleDisabled(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{IPMaxFailures: -1, AccountMaxFailures: -1})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	for i := 0; i < 3*DefaultIPMaxFailures; i++ {
		if _, err := env.db.Authenticate(ctx, "bob@example.com", fmt.Sprint("guess", i), ipA); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("guess %d with throttling off: %v", i, err)
		}
	}
	if _, err := env.db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialCache(t *testing.T) { forEachBackend(t, testCredentialCache) }

func testCredentialCache(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	// A second handle on the same file plays posthouse admin.
	admin := env.open(t, Options{})
	verifications := func() int64 { return db.verifications.Load() }
	login := func(pw string, want error) {
		t.Helper()
		if _, err := db.Authenticate(ctx, "bob@example.com", pw, ipA); !errors.Is(err, want) {
			t.Fatalf("Authenticate(%q) = %v, want %v", pw, err, want)
		}
	}
	steps := []struct {
		name     string
		do       func()
		pw       string
		want     error
		verified int64 // hash verifications the login costs
	}{
		{"first login hashes", nil, "pw-bob", nil, 1},
		{"second login is cached", nil, "pw-bob", nil, 0},
		{"user name case does not matter", nil, "pw-bob", nil, 0},
		{"wrong password hashes", nil, "nope", ErrBadCredentials, 1},
		{"same wrong password is cached", nil, "nope", ErrBadCredentials, 0},
		{"other process changes the password", func() { must(t, admin.SetPassword(ctx, "bob@example.com", "new")) }, "pw-bob", ErrBadCredentials, 1},
		{"new password", nil, "new", nil, 1},
		{"new password cached", nil, "new", nil, 0},
		{"other process disables", func() { must(t, admin.SetDisabled(ctx, "bob@example.com", true)) }, "new", ErrBadCredentials, 0},
		{"other process enables", func() { must(t, admin.SetDisabled(ctx, "bob@example.com", false)) }, "new", nil, 0},
		{"this process changes the password", func() { must(t, db.SetPassword(ctx, "bob@example.com", "newer")) }, "new", ErrBadCredentials, 1},
		{"other process removes the user", func() { must(t, admin.RemoveUser(ctx, "bob@example.com")) }, "newer", ErrBadCredentials, 1},
		{"user re-created with the old password", func() {
			if _, err := admin.AddUser(ctx, "bob@example.com", "new", 0); err != nil {
				t.Fatal(err)
			}
		}, "new", nil, 1},
		{"entry expires", func() { env.clock.Advance(DefaultCacheTTL) }, "new", nil, 1},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.do != nil {
				s.do()
			}
			before := verifications()
			login(s.pw, s.want)
			if got := verifications() - before; got != s.verified {
				t.Fatalf("%d hash verifications, want %d", got, s.verified)
			}
		})
	}
}

func TestRehashOnLogin(t *testing.T) { forEachBackend(t, testRehashOnLogin) }

func testRehashOnLogin(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, nil, nil)
	b, err := bcrypt.GenerateFromPassword([]byte("old secret"), bcrypt.MinCost)
	must(t, err)
	old, err := hashPassword("argon old", argonParams{Memory: 32, Time: 1, Threads: 1, KeyLen: 32})
	must(t, err)
	for _, tc := range []struct{ name, user, hash, pw string }{
		{"bcrypt", "b@example.com", string(b), "old secret"},
		{"bcrypt 2y", "y@example.com", "$2y$" + string(b[4:]), "old secret"},
		{"argon2id with other parameters", "a@example.com", old, "argon old"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.AddUserHash(ctx, tc.user, tc.hash, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Authenticate(ctx, tc.user, "wrong", ipB); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("wrong password: %v", err)
			}
			if _, err := db.Authenticate(ctx, tc.user, tc.pw, ipB); err != nil {
				t.Fatalf("imported hash: %v", err)
			}
			row, _, err := readLookup{db}.user(ctx, tc.user)
			must(t, err)
			p, _, _, err := parseArgon2id(row.hash)
			if err != nil || p != db.argon {
				t.Fatalf("hash not upgraded: %q (%v)", row.hash, err)
			}
			if _, err := db.Authenticate(ctx, tc.user, tc.pw, ipB); err != nil {
				t.Fatalf("after upgrade: %v", err)
			}
			db.cache.invalidate(tc.user)
			if _, err := db.Authenticate(ctx, tc.user, tc.pw, ipB); err != nil {
				t.Fatalf("upgraded hash: %v", err)
			}
		})
	}
}

func TestUnusableStoredHash(t *testing.T) { forEachBackend(t, testUnusableStoredHash) }

func testUnusableStoredHash(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	_, err := env.db.db.Write.ExecContext(ctx, `UPDATE users SET password_hash = 'garbage'`)
	must(t, err)
	if _, err := env.db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(env.logs.String(), "stored password hash is unusable") {
		t.Fatalf("not logged:\n%s", env.logs.String())
	}
}

// TestConcurrentHandles runs admin writes through two handles on one file
// (posthouse serve and posthouse admin) beside logins and resolutions.
func TestConcurrentHandles(t *testing.T) { forEachBackend(t, testConcurrentHandles) }

func testConcurrentHandles(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{IPMaxFailures: -1, AccountMaxFailures: -1})
	a := env.db
	b := env.open(t, Options{IPMaxFailures: -1, AccountMaxFailures: -1})
	must(t, a.AddDomain(ctx, "example.com"))
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 8*n)
	for i := 0; i < n; i++ {
		wg.Add(4)
		go func() {
			defer wg.Done()
			if _, err := a.AddUser(ctx, fmt.Sprintf("a%d@example.com", i), "pw", 0); err != nil {
				errs <- fmt.Errorf("a.AddUser: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := b.AddUser(ctx, fmt.Sprintf("b%d@example.com", i), "pw", 0); err != nil {
				errs <- fmt.Errorf("b.AddUser: %w", err)
				return
			}
			if err := b.AddAlias(ctx, fmt.Sprintf("alias%d@example.com", i), []string{fmt.Sprintf("b%d@example.com", i)}); err != nil {
				errs <- fmt.Errorf("b.AddAlias: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := a.Resolve(ctx, fmt.Sprintf("x%d@example.com", i)); !errors.Is(err, ErrNoSuchUser) {
				errs <- fmt.Errorf("a.Resolve: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := b.Authenticate(ctx, "nobody@example.com", "pw", ipA); !errors.Is(err, ErrBadCredentials) {
				errs <- fmt.Errorf("b.Authenticate: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	us, err := a.Users(ctx, "")
	must(t, err)
	if len(us) != 2*n {
		t.Fatalf("%d users, want %d", len(us), 2*n)
	}
	for i := 0; i < n; i++ {
		r, err := a.Resolve(ctx, fmt.Sprintf("alias%d@example.com", i))
		if err != nil || len(r.Local) != 1 || r.Local[0] != fmt.Sprintf("b%d@example.com", i) {
			t.Fatalf("Resolve alias%d through the other handle = %+v, %v", i, r, err)
		}
		if _, err := b.Authenticate(ctx, fmt.Sprintf("a%d@example.com", i), "pw", ipB); err != nil {
			t.Fatalf("login a%d through the other handle: %v", i, err)
		}
	}
}

// TestThrottleParallelGuesses sends guesses in parallel while every hash
// slot is busy: only IPMaxFailures of them get as far as the password check.
func TestThrottleParallelGuesses(t *testing.T) { forEachBackend(t, testThrottleParallelGuesses) }

func testThrottleParallelGuesses(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{IPMaxFailures: 3, MaxConcurrentHashes: 1})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	db.hashes <- struct{}{} // hold the only hash slot
	const n = 20
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := db.Authenticate(ctx, "bob@example.com", fmt.Sprint("guess", i), ipA)
			results <- err
		}()
	}
	var errs []error
	for len(errs) < n-3 {
		errs = append(errs, <-results)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrThrottled) {
			t.Fatalf("early result %v, want ErrThrottled", err)
		}
	}
	before := db.verifications.Load()
	<-db.hashes
	for i := 0; i < 3; i++ {
		if err := <-results; !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("checked guess: %v", err)
		}
	}
	if got := db.verifications.Load() - before; got != 3 {
		t.Fatalf("%d passwords checked, want 3", got)
	}
}

// TestThrottleAbortRefunds checks that an attempt cancelled before its
// verdict does not count as a failure.
func TestThrottleAbortRefunds(t *testing.T) { forEachBackend(t, testThrottleAbortRefunds) }

func testThrottleAbortRefunds(t *testing.T) {
	env := newTestDB(t, Options{IPMaxFailures: 2, MaxConcurrentHashes: 1})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	db.hashes <- struct{}{}
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := db.Authenticate(ctx, "bob@example.com", fmt.Sprint("x", i), ipA); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled attempt: %v", err)
		}
	}
	<-db.hashes
	if _, err := db.Authenticate(context.Background(), "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatalf("after cancelled attempts: %v", err)
	}
}

func TestDummyHash(t *testing.T) { forEachBackend(t, testDummyHash) }

func testDummyHash(t *testing.T) {
	env := newTestDB(t, Options{})
	db := env.db
	d := db.dummyHash()
	p, _, _, err := parseArgon2id(d)
	if err != nil || p != db.argon {
		t.Fatalf("dummy hash %q: %v, params %+v", d, err, p)
	}
	if d != db.dummyHash() {
		t.Fatal("dummy hash changes")
	}
	for _, pw := range []string{"", "pw", "password"} {
		if ok, _, err := verifyPassword(d, pw, db.argon); ok || err != nil {
			t.Fatalf("dummy hash matched %q (%v)", pw, err)
		}
	}
}
