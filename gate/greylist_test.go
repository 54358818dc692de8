package gate

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

// openGrey opens a greylist at path on clk, closed at the end of the test
// unless the test closes it first (closeGrey).
func openGrey(t *testing.T, path string, clk *clock, o GreylistOptions) *Greylist {
	t.Helper()
	o.Path, o.Now, o.SweepInterval = path, clk.now, -1
	g, err := OpenGreylist(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if g.db.Write != nil {
			g.Close()
		}
	})
	return g
}

func closeGrey(t *testing.T, g *Greylist) {
	t.Helper()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	g.db = greyDB{}
}

func check(t *testing.T, g *Greylist, ip, from, rcpt string) Verdict {
	t.Helper()
	v, err := g.Check(t.Context(), netip.MustParseAddr(ip), from, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantResult(t *testing.T, what string, v Verdict, want Result) {
	t.Helper()
	if v.Result != want {
		t.Fatalf("%s: result %d, want %d (%+v)", what, v.Result, want, v)
	}
}

// TestGreylist: the life of a triplet, then allow-listing by client
// network and sender domain, across a restart.
func TestGreylist(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "greylist.sqlite")
	g := openGrey(t, path, clk, GreylistOptions{Delay: 5 * time.Minute, RetryWindow: 24 * time.Hour, AllowTTL: 35 * 24 * time.Hour})

	v := check(t, g, "192.0.2.10", "news@sender.example", "alice@example.org")
	wantResult(t, "first attempt", v, Greylisted)
	if v.RetryAfter != 5*time.Minute {
		t.Errorf("RetryAfter %s", v.RetryAfter)
	}
	clk.advance(2 * time.Minute)
	v = check(t, g, "192.0.2.10", "news@sender.example", "alice@example.org")
	wantResult(t, "retry after 2 minutes", v, Greylisted)
	if v.RetryAfter != 3*time.Minute {
		t.Errorf("an early retry must not restart the delay: RetryAfter %s, want 3m", v.RetryAfter)
	}
	// Other recipients and senders are triplets of their own.
	wantResult(t, "other recipient", check(t, g, "192.0.2.10", "news@sender.example", "bob@example.org"), Greylisted)

	// The restart: state is on disk.
	closeGrey(t, g)
	g = openGrey(t, path, clk, GreylistOptions{Delay: 5 * time.Minute})

	clk.advance(4 * time.Minute)
	// The retry comes from another address of the sender's pool (/24),
	// with the address in other case.
	v = check(t, g, "192.0.2.77", "News@Sender.example", "Alice@example.org")
	wantResult(t, "retry after 6 minutes", v, Passed)
	if v.Waited != 6*time.Minute {
		t.Errorf("Waited %s", v.Waited)
	}
	// Allow-listed: another sender of the domain, another recipient, at once.
	wantResult(t, "second message", check(t, g, "192.0.2.10", "billing@sender.example", "carol@example.org"), Allowed)
	wantResult(t, "bob's triplet", check(t, g, "192.0.2.11", "news@sender.example", "bob@example.org"), Allowed)
	// Not for another network or another domain.
	wantResult(t, "other network", check(t, g, "192.0.3.10", "news@sender.example", "alice@example.org"), Greylisted)
	wantResult(t, "other domain", check(t, g, "192.0.2.10", "x@other.example", "alice@example.org"), Greylisted)

	closeGrey(t, g)
	g = openGrey(t, path, clk, GreylistOptions{})
	wantResult(t, "allow-list after restart", check(t, g, "192.0.2.10", "news@sender.example", "alice@example.org"), Allowed)

	// Kept while used (refreshed daily), gone after AllowTTL unused.
	for range 40 {
		clk.advance(24*time.Hour + time.Minute)
		wantResult(t, "daily use", check(t, g, "192.0.2.10", "news@sender.example", "alice@example.org"), Allowed)
	}
	clk.advance(36 * 24 * time.Hour)
	wantResult(t, "after 36 idle days", check(t, g, "192.0.2.10", "news@sender.example", "alice@example.org"), Greylisted)
}

// greyOpener opens a greylist on a test's database: greylist.sqlite or
// PostgreSQL, each call another process or node on the same one.
type greyOpener func(t *testing.T, clk *clock, o GreylistOptions) *Greylist

// forGreyBackends runs test on SQLite and on PostgreSQL (skipped, saying
// so, where PostgreSQL is not installed; never in CI).
func forGreyBackends(t *testing.T, test func(t *testing.T, open greyOpener)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "g.sqlite")
		test(t, func(t *testing.T, clk *clock, o GreylistOptions) *Greylist { return openGrey(t, path, clk, o) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.NewDatabase(t)
		test(t, func(t *testing.T, clk *clock, o GreylistOptions) *Greylist {
			pool, err := pgdb.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			o.Postgres = pool
			return openGrey(t, "", clk, o)
		})
	})
}

// TestGreylistTwoNodes: a first attempt seen by one node (or process)
// passes when retried at another, once, and the allow-list is shared.
func TestGreylistTwoNodes(t *testing.T) { forGreyBackends(t, testGreylistTwoNodes) }

func testGreylistTwoNodes(t *testing.T, open greyOpener) {
	clk := newClock()
	a, b := open(t, clk, GreylistOptions{}), open(t, clk, GreylistOptions{})
	wantResult(t, "first attempt at A", check(t, a, "192.0.2.10", "news@sender.example", "alice@example.org"), Greylisted)
	wantResult(t, "early retry at B", check(t, b, "192.0.2.11", "news@sender.example", "alice@example.org"), Greylisted)
	clk.advance(DefaultGreylistDelay + time.Second)
	wantResult(t, "retry at B", check(t, b, "192.0.2.12", "news@sender.example", "alice@example.org"), Passed)
	wantResult(t, "next message at A", check(t, a, "192.0.2.13", "other@sender.example", "bob@example.org"), Allowed)
}

// TestGreylistRetryWindow: a retry after the window starts over.
func TestGreylistRetryWindow(t *testing.T) { forGreyBackends(t, testGreylistRetryWindow) }

func testGreylistRetryWindow(t *testing.T, open greyOpener) {
	clk := newClock()
	g := open(t, clk, GreylistOptions{})
	wantResult(t, "first", check(t, g, "2001:db8:1:2::5", "", "postbox@example.org"), Greylisted)
	clk.advance(25 * time.Hour)
	v := check(t, g, "2001:db8:1:2:ffff::9", "", "postbox@example.org")
	wantResult(t, "after 25 hours", v, Greylisted)
	if v.RetryAfter != DefaultGreylistDelay {
		t.Errorf("RetryAfter %s, want a full delay", v.RetryAfter)
	}
	clk.advance(DefaultGreylistDelay)
	// The null sender passes like any other, from the same /64.
	wantResult(t, "retry of the new attempt", check(t, g, "2001:db8:1:2::5", "", "postbox@example.org"), Passed)
	wantResult(t, "next bounce", check(t, g, "2001:db8:1:2::6", "", "other@example.org"), Allowed)
	wantResult(t, "other /64", check(t, g, "2001:db8:1:3::6", "", "other@example.org"), Greylisted)
}

// TestGreylistSweep: expired rows go, and the tables stay within their
// bounds.
func TestGreylistSweep(t *testing.T) { forGreyBackends(t, testGreylistSweep) }

func testGreylistSweep(t *testing.T, open greyOpener) {
	clk := newClock()
	g := open(t, clk, GreylistOptions{MaxTriplets: 50, MaxAllowed: 50})
	ctx := t.Context()
	ip := func(i int) string { return "10." + itoa(i/250) + "." + itoa(i%250) + ".1" }
	// 30 senders become allow-listed.
	for i := range 30 {
		check(t, g, ip(i), "a@d"+itoa(i)+".example", "alice@example.org")
	}
	clk.advance(10 * time.Minute)
	for i := range 30 {
		wantResult(t, "retry", check(t, g, ip(i), "a@d"+itoa(i)+".example", "alice@example.org"), Passed)
	}
	// 200 first attempts, a second apart.
	for i := range 200 {
		clk.advance(time.Second)
		check(t, g, ip(i), "spam@x.example", "alice@example.org")
	}
	if _, err := g.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	tr, al, err := g.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tr > 50 || tr < 40 || al != 30 {
		t.Fatalf("after sweep: %d triplets (want ≤ 50), %d allowed (want 30)", tr, al)
	}
	// The newest first attempts are the ones kept.
	clk.advance(10 * time.Minute)
	wantResult(t, "newest kept", check(t, g, ip(199), "spam@x.example", "alice@example.org"), Passed)
	wantResult(t, "oldest dropped", check(t, g, ip(0), "spam@x.example", "alice@example.org"), Greylisted)

	// A day and more: the first attempts expire; 36 days: the allow-list.
	clk.advance(25 * time.Hour)
	g.Sweep(ctx)
	if tr, _, _ := g.Counts(ctx); tr != 0 {
		t.Fatalf("%d triplets after the retry window", tr)
	}
	clk.advance(36 * 24 * time.Hour)
	g.Sweep(ctx)
	if tr, al, _ := g.Counts(ctx); tr != 0 || al != 0 {
		t.Fatalf("%d triplets, %d allowed after 36 days", tr, al)
	}
}

// TestGateGreylist: greylisting through Conn.Rcpt, with its exemptions:
// postmaster, and clients on an allow list.
func TestGateGreylist(t *testing.T) {
	f := newFixture(t, Options{DNSWL: []string{"wl.example"}, Greylist: &GreylistOptions{SweepInterval: -1}})
	f.dns.Add("5.0.0.127.wl.example. A 127.0.2.3")
	r := replyOf(t, f.rcpt(t, "127.0.0.1", "a@sender.example", "alice@example.org"))
	if r == nil || r.Code != 451 || r.Enhanced != [3]int{4, 7, 1} || r.Text != "Greylisted, try again later" {
		t.Fatalf("first attempt: %v, want 451 4.7.1 Greylisted", r)
	}
	if err := f.rcpt(t, "127.0.0.1", "", "postmaster@example.org"); err != nil {
		t.Fatalf("bounce to postmaster: %v", err)
	}
	if err := f.rcpt(t, "127.0.0.5", "a@sender.example", "alice@example.org"); err != nil {
		t.Fatalf("allow-listed client: %v", err)
	}
	f.clk.advance(5 * time.Minute)
	if err := f.rcpt(t, "127.0.0.1", "a@sender.example", "alice@example.org"); err != nil {
		t.Fatalf("retry after the delay: %v", err)
	}
	if err := f.rcpt(t, "127.0.0.1", "b@sender.example", "bob@example.org"); err != nil {
		t.Fatalf("after allow-listing: %v", err)
	}
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
