package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestTwoNodes: two DB handles on one database, as two posthouse processes
// (two nodes on PostgreSQL, serve and admin on one SQLite file). A change
// made through one is seen by the other's next call, although the other
// caches credentials: a cache entry holds only while the user's row keeps
// the hash it was verified against, and disabled is read at every login.
func TestTwoNodes(t *testing.T) { forEachBackend(t, testTwoNodes) }

func testTwoNodes(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	a, b := env.db, env.open(t, Options{})
	must(t, a.AddDomain(ctx, "example.com"))
	if _, err := a.AddUser(ctx, "bob@example.com", "first", 0); err != nil {
		t.Fatal(err)
	}
	login := func(db *DB, pw string) error {
		_, err := db.Authenticate(ctx, "bob@example.com", pw, ipA)
		return err
	}
	if err := login(b, "first"); err != nil {
		t.Fatalf("user added on A, login on B: %v", err)
	}
	// B has "first" cached now; a password change on A ends it.
	must(t, a.SetPassword(ctx, "bob@example.com", "second"))
	if err := login(b, "first"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password on B after change on A = %v, want ErrBadCredentials", err)
	}
	if err := login(b, "second"); err != nil {
		t.Fatalf("new password on B: %v", err)
	}
	must(t, a.SetDisabled(ctx, "bob@example.com", true))
	if err := login(b, "second"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("disabled on A, login on B = %v, want ErrBadCredentials", err)
	}
	must(t, b.SetDisabled(ctx, "bob@example.com", false))
	if err := login(a, "second"); err != nil {
		t.Fatalf("re-enabled on B, login on A: %v", err)
	}

	must(t, a.AddAlias(ctx, "info@example.com", []string{"bob@example.com"}))
	res, err := b.Resolve(ctx, "info@example.com")
	if err != nil || !slices.Equal(res.Local, []string{"bob@example.com"}) {
		t.Fatalf("alias added on A, Resolve on B = %+v, %v", res, err)
	}
	// Both nodes writing at once: the write lock keeps the checks of each
	// (an alias is not a user) whole.
	errs := make(chan error, 2)
	for i, db := range []*DB{a, b} {
		go func() {
			_, err := db.AddUser(ctx, fmt.Sprintf("n%d@example.com", i), "pw", 0)
			errs <- err
		}()
	}
	must(t, <-errs)
	must(t, <-errs)
	if us, err := a.Users(ctx, "example.com"); err != nil || len(us) != 3 {
		t.Fatalf("users after concurrent adds = %d, %v", len(us), err)
	}

	must(t, b.RemoveUser(ctx, "bob@example.com"))
	if err := login(a, "second"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("removed on B, login on A = %v, want ErrBadCredentials", err)
	}
}

// TestTwoNodesThrottle: on PostgreSQL, failures counted by one node count
// on the other, per address and per account.
func TestTwoNodesThrottle(t *testing.T) {
	t.Run("postgres", func(t *testing.T) {
		ctx := context.Background()
		opts := Options{IPMaxFailures: 3, AccountMaxFailures: 4, AccountInterval: time.Minute}
		env := newTestDB(t, opts)
		nodes := []*DB{env.db, env.open(t, opts)}
		seed(t, env.db, []string{"example.com"}, []string{"bob@example.com", "carol@example.com"}, nil)

		// Per address: three wrong passwords, alternating nodes.
		for i := range 3 {
			_, err := nodes[i%2].Authenticate(ctx, "bob@example.com", fmt.Sprintf("wrong-%d", i), ipA)
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("guess %d = %v", i, err)
			}
		}
		for i, db := range nodes {
			if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); !errors.Is(err, ErrThrottled) {
				t.Fatalf("node %d after 3 failures from ipA = %v, want ErrThrottled", i, err)
			}
		}

		// Per account: four failures from four addresses, spread over
		// both nodes; then one check per interval, for both together.
		for i := range 4 {
			ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)})
			if _, err := nodes[i%2].Authenticate(ctx, "carol@example.com", fmt.Sprintf("wrong-%d", i), ip); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("carol guess %d = %v", i, err)
			}
		}
		ip := netip.AddrFrom4([4]byte{203, 0, 113, 99})
		if _, err := nodes[0].Authenticate(ctx, "carol@example.com", "wrong-x", ip); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("first check after the cap = %v, want ErrBadCredentials (checked)", err)
		}
		if _, err := nodes[1].Authenticate(ctx, "carol@example.com", "pw-carol", ipB); !errors.Is(err, ErrThrottled) {
			t.Fatalf("second check on the other node within the interval = %v, want ErrThrottled", err)
		}
		env.clock.Advance(time.Minute)
		if _, err := nodes[1].Authenticate(ctx, "carol@example.com", "pw-carol", ipB); err != nil {
			t.Fatalf("after the interval: %v", err)
		}

		// Rows expire and are swept.
		env.clock.Advance(2 * time.Hour)
		if _, err := nodes[0].Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
			t.Fatalf("after the windows: %v", err)
		}
		var n int
		must(t, env.db.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM auth_throttle`).Scan(&n))
		if n != 0 {
			t.Fatalf("auth_throttle holds %d rows after every window passed, want 0", n)
		}
	})
}
