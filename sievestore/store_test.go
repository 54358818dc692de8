package sievestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/sieve"
)

// clock is a movable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// opener opens a store for a test, and returns with it a function opening
// another Store on the same database: another process beside serve (admin)
// for SQLite, another node for PostgreSQL.
type opener func(t *testing.T, opts Options) (*Store, func(Options) (*Store, error))

// forBackends runs test on sieve.sqlite and on PostgreSQL: both must
// behave the same. The PostgreSQL run is skipped, saying so, where
// PostgreSQL is not installed (never in CI, which sets PGTEST_REQUIRE).
func forBackends(t *testing.T, test func(t *testing.T, open opener)) {
	t.Run("sqlite", func(t *testing.T) { test(t, openSQLite) })
	t.Run("postgres", func(t *testing.T) { test(t, openPostgres) })
}

func openSQLite(t *testing.T, opts Options) (*Store, func(Options) (*Store, error)) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sieve.sqlite")
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, func(o Options) (*Store, error) { return Open(context.Background(), path, o) }
}

// openPostgres opens the store as one node, with its own pool, on a new
// database; the function returned opens another node on it.
func openPostgres(t *testing.T, opts Options) (*Store, func(Options) (*Store, error)) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	node := func(o Options) (*Store, error) {
		ctx := context.Background()
		pool, err := pgdb.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		t.Cleanup(pool.Close)
		return OpenPostgres(ctx, pool, o)
	}
	s, err := node(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, node
}

const (
	alice   = "alice@example.org"
	bob     = "bob@example.org"
	scriptA = "require \"fileinto\";\nif header :contains \"subject\" \"a\" { fileinto \"A\"; }\n"
	scriptB = "keep;\n"
)

func TestScripts(t *testing.T) { forBackends(t, testScripts) }

func testScripts(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t, Options{})
	if err := s.Put(ctx, alice, "b", []byte(scriptB)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, alice, "a", []byte(scriptA)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, bob, "z", []byte(scriptB)); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx, alice)
	want := []Script{{Name: "a", Size: len(scriptA)}, {Name: "b", Size: len(scriptB)}}
	if err != nil || !slices.Equal(list, want) {
		t.Fatalf("List = %v, %v; want %v", list, err, want)
	}
	if src, err := s.Get(ctx, alice, "a"); err != nil || string(src) != scriptA {
		t.Fatalf("Get = %q, %v", src, err)
	}
	if _, err := s.Get(ctx, alice, "z"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of bob's script as alice: %v", err)
	}

	// Activate, replace while active, rename while active.
	if err := s.SetActive(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetActive(ctx, alice, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetActive missing: %v", err)
	}
	if err := s.Put(ctx, alice, "a", []byte(scriptA+"keep;\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, alice, "a"); !errors.Is(err, ErrActive) {
		t.Fatalf("Delete active: %v", err)
	}
	if err := s.Rename(ctx, alice, "a", "b"); !errors.Is(err, ErrExists) {
		t.Fatalf("Rename onto existing: %v", err)
	}
	if err := s.Rename(ctx, alice, "x", "y"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Rename missing: %v", err)
	}
	if err := s.Rename(ctx, alice, "a", "main"); err != nil {
		t.Fatal(err)
	}
	name, sc, err := s.Active(ctx, alice)
	if err != nil || name != "main" || sc == nil {
		t.Fatalf("Active = %q, %v, %v", name, sc, err)
	}
	// Activating another deactivates the first.
	if err := s.SetActive(ctx, alice, "b"); err != nil {
		t.Fatal(err)
	}
	list, _ = s.List(ctx, alice)
	if list[0].Name != "b" || !list[0].Active || list[1].Active {
		t.Fatalf("after SetActive b: %v", list)
	}
	if err := s.SetActive(ctx, alice, ""); err != nil {
		t.Fatal(err)
	}
	if name, sc, err := s.Active(ctx, alice); name != "" || sc != nil || err != nil {
		t.Fatalf("after deactivating: %q %v %v", name, sc, err)
	}
	if err := s.Delete(ctx, alice, "main"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, alice, "main"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete twice: %v", err)
	}

	// Compiled for include: missing is sieve.ErrNoSuchScript too.
	if _, err := s.Compiled(ctx, alice, "main"); !errors.Is(err, sieve.ErrNoSuchScript) || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Compiled missing: %v", err)
	}
	if sc, err := s.Compiled(ctx, alice, "b"); err != nil || sc == nil {
		t.Fatalf("Compiled b: %v", err)
	}

	if err := s.DeleteAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(ctx, alice); len(list) != 0 {
		t.Fatalf("after DeleteAccount: %v", list)
	}
	if list, _ := s.List(ctx, bob); len(list) != 1 {
		t.Fatalf("bob's scripts after alice's removal: %v", list)
	}
}

func TestPutChecks(t *testing.T) { forBackends(t, testPutChecks) }

func testPutChecks(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t, Options{MaxScripts: 2, MaxScriptBytes: 100})
	err := s.Put(ctx, alice, "bad", []byte("keep;\nfileinto \"x\";\n"))
	var se *sieve.Error
	if !errors.As(err, &se) || se.Pos.Line != 2 {
		t.Fatalf("compile error: %v", err)
	}
	if err := s.Put(ctx, alice, "big", []byte("#"+strings.Repeat("x", 100)+"\nkeep;")); !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrQuota) {
		t.Fatalf("too large: %v", err)
	}
	for _, name := range []string{"", "a/b", "tab\there", "line\u2028sep", "c1\u0085", string([]byte{0xff}), strings.Repeat("n", 129)} {
		if err := s.Put(ctx, alice, name, []byte(scriptB)); !errors.Is(err, ErrBadName) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if err := s.Put(ctx, alice, "ünïcode name", []byte(scriptB)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, alice, "two", []byte(scriptB)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, alice, "three", []byte(scriptB)); !errors.Is(err, ErrTooManyScripts) {
		t.Fatalf("third script: %v", err)
	}
	// Replacing one is no new script.
	if err := s.Put(ctx, alice, "two", []byte("discard;")); err != nil {
		t.Fatalf("replace at quota: %v", err)
	}
	if err := s.HaveSpace(ctx, alice, "two", 100); err != nil {
		t.Fatalf("HaveSpace replace: %v", err)
	}
	if err := s.HaveSpace(ctx, alice, "new", 10); !errors.Is(err, ErrTooManyScripts) {
		t.Fatalf("HaveSpace new: %v", err)
	}
	if err := s.HaveSpace(ctx, bob, "new", 101); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("HaveSpace large: %v", err)
	}
	if s.MaxScripts() != 2 || s.MaxScriptBytes() != 100 {
		t.Fatal("quotas")
	}
}

// TestOtherProcess: a change through another Store on the same file (the
// admin CLI while serve runs) is seen at once, and the cache is keyed by
// content, so the same script under two names compiles once.
func TestOtherProcess(t *testing.T) { forBackends(t, testOtherProcess) }

func testOtherProcess(t *testing.T, open opener) {
	ctx := context.Background()
	s, other := open(t, Options{})
	admin, err := other(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Put(ctx, alice, "main", []byte(scriptA)); err != nil {
		t.Fatal(err)
	}
	if err := admin.SetActive(ctx, alice, "main"); err != nil {
		t.Fatal(err)
	}
	_, first, err := s.Active(ctx, alice)
	if err != nil || first == nil {
		t.Fatalf("Active: %v %v", first, err)
	}
	_, again, _ := s.Active(ctx, alice)
	if again != first {
		t.Fatal("not cached")
	}
	if err := admin.Put(ctx, alice, "main", []byte(scriptB)); err != nil {
		t.Fatal(err)
	}
	_, changed, err := s.Active(ctx, alice)
	if err != nil || changed == first {
		t.Fatalf("change by the other process not seen: %v", err)
	}
	if reqs := changed.Requires(); len(reqs) != 0 {
		t.Fatalf("new script requires %v", reqs)
	}
	if err := s.Put(ctx, bob, "copy", []byte(scriptB)); err != nil {
		t.Fatal(err)
	}
	if sc, _ := s.Compiled(ctx, bob, "copy"); sc != changed {
		t.Fatal("same source compiled twice")
	}
}

func TestCacheBound(t *testing.T) {
	c := newCache(3)
	for i := range 5 {
		c.put([32]byte{byte(i)}, entry{})
	}
	if c.len() != 3 {
		t.Fatalf("len %d", c.len())
	}
	if _, ok := c.get([32]byte{0}); ok {
		t.Fatal("oldest kept")
	}
	c.get([32]byte{2})
	c.put([32]byte{9}, entry{})
	if _, ok := c.get([32]byte{2}); !ok {
		t.Fatal("recently used evicted")
	}
}

func TestVacationSetting(t *testing.T) { forBackends(t, testVacationSetting) }

func testVacationSetting(t *testing.T, open opener) {
	ctx := context.Background()
	s, _ := open(t, Options{})
	if _, err := s.Vacation(ctx, alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("none: %v", err)
	}
	start := time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC)
	v := Vacation{Subject: "Away", Message: "Back on Monday.", Start: start, End: start.Add(14 * 24 * time.Hour), Period: 3 * 24 * time.Hour}
	if err := s.SetVacation(ctx, alice, v); err != nil {
		t.Fatal(err)
	}
	got, err := s.Vacation(ctx, alice)
	if err != nil || got.Subject != v.Subject || got.Message != v.Message || !got.Start.Equal(v.Start) || !got.End.Equal(v.End) || got.Period != v.Period {
		t.Fatalf("Vacation = %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		t    time.Time
		in   bool
	}{
		{"before", start.Add(-time.Second), false},
		{"start", start, true},
		{"during", start.Add(time.Hour), true},
		{"end", v.End, false},
	} {
		if got.In(tc.t) != tc.in {
			t.Errorf("%s: In = %v", tc.name, !tc.in)
		}
	}
	if err := s.SetVacation(ctx, alice, Vacation{Subject: "x", Message: "y", Start: start, End: start}); err == nil {
		t.Fatal("end before start accepted")
	}
	if err := s.SetVacation(ctx, alice, Vacation{Subject: "", Message: "y"}); err == nil {
		t.Fatal("empty subject accepted")
	}
	if err := s.DeleteVacation(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteVacation(ctx, alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("off twice: %v", err)
	}
}

func TestDuplicates(t *testing.T) { forBackends(t, testDuplicates) }

func testDuplicates(t *testing.T, open opener) {
	ctx := context.Background()
	c := &clock{t: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := open(t, Options{Now: c.now})
	seen := func(id string) bool {
		t.Helper()
		ok, err := s.DuplicateSeen(ctx, alice, id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if seen("x") {
		t.Fatal("seen before marked")
	}
	if err := s.MarkDuplicates(ctx, alice, []sieve.DuplicateMark{{ID: "x", Period: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if !seen("x") {
		t.Fatal("not seen after marked")
	}
	if ok, _ := s.DuplicateSeen(ctx, bob, "x"); ok {
		t.Fatal("seen for another account")
	}
	// Without :last, marking again keeps the first expiry.
	c.add(50 * time.Minute)
	s.MarkDuplicates(ctx, alice, []sieve.DuplicateMark{{ID: "x", Period: time.Hour}})
	c.add(11 * time.Minute)
	if seen("x") {
		t.Fatal("expiry restarted without :last")
	}
	// With :last, it restarts.
	s.MarkDuplicates(ctx, alice, []sieve.DuplicateMark{{ID: "y", Period: time.Hour}})
	c.add(50 * time.Minute)
	s.MarkDuplicates(ctx, alice, []sieve.DuplicateMark{{ID: "y", Period: time.Hour, Last: true}})
	c.add(50 * time.Minute)
	if !seen("y") {
		t.Fatal(":last did not restart the expiry")
	}
}

func TestResponses(t *testing.T) { forBackends(t, testResponses) }

func testResponses(t *testing.T, open opener) {
	ctx := context.Background()
	c := &clock{t: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, _ := open(t, Options{Now: c.now, MaxTracked: 5})
	claim := func(handle, sender string, period time.Duration) bool {
		t.Helper()
		ok, err := s.ClaimResponse(ctx, alice, handle, sender, period)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	day := 24 * time.Hour
	if !claim("h", "a@x", day) || claim("h", "a@x", day) {
		t.Fatal("first claim must win, second lose")
	}
	if !claim("other", "a@x", day) {
		t.Fatal("another handle is another response")
	}
	if !claim("h", "b@x", 0) || !claim("h", "b@x", 0) {
		t.Fatal("period 0 answers every time")
	}
	c.add(day)
	if !claim("h", "a@x", day) {
		t.Fatal("not answered again after the period")
	}
	// Release after a failed send.
	if err := s.ReleaseResponse(ctx, alice, "h", "a@x"); err != nil {
		t.Fatal(err)
	}
	if !claim("h", "a@x", day) {
		t.Fatal("released claim still held")
	}

	// Bounded: a flood of senders keeps at most MaxTracked rows.
	for i := range 20 {
		c.add(time.Second)
		claim("h", strings.Repeat("s", i+1)+"@x", day)
	}
	if _, n, _ := s.Tracked(ctx, alice); n != 5 {
		t.Fatalf("%d response rows, want 5", n)
	}
	// Expired rows go at the next write.
	c.add(2 * day)
	claim("h", "late@x", day)
	if _, n, _ := s.Tracked(ctx, alice); n != 1 {
		t.Fatalf("%d response rows after expiry, want 1", n)
	}
	if err := s.DeleteAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if d, n, _ := s.Tracked(ctx, alice); d+n != 0 {
		t.Fatal("tracking kept after DeleteAccount")
	}
}

// TestConcurrentClaims: deliveries at once, through two Stores (two
// processes, or two nodes on PostgreSQL), answer a sender once.
func TestConcurrentClaims(t *testing.T) { forBackends(t, testConcurrentClaims) }

func testConcurrentClaims(t *testing.T, open opener) {
	ctx := context.Background()
	s, other := open(t, Options{})
	s2, err := other(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var mu sync.Mutex
	won := 0
	var wg sync.WaitGroup
	for i := range 8 {
		st := s
		if i%2 == 1 {
			st = s2
		}
		wg.Go(func() {
			ok, err := st.ClaimResponse(ctx, alice, "h", "a@x", time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d claims won", won)
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"main", "a/b", "ünï", "\x00", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		if len(name) == 0 || len(name) > MaxNameBytes || strings.ContainsAny(name, "/\r\n\x00\x7f") {
			t.Fatalf("accepted %q", name)
		}
	})
}

// TestCopyTo: sieve.sqlite copied into PostgreSQL (admin store copy) keeps
// the scripts, the active one, the out-of-office and the responses sent; a
// second copy changes nothing, and what the target had is kept.
func TestCopyTo(t *testing.T) {
	ctx := context.Background()
	src, _ := openSQLite(t, Options{})
	dst, _ := openPostgres(t, Options{})
	for _, sc := range []struct{ account, name, src string }{{alice, "a", scriptA}, {alice, "b", scriptB}, {bob, "z", scriptB}} {
		if err := src.Put(ctx, sc.account, sc.name, []byte(sc.src)); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.SetActive(ctx, alice, "a"); err != nil {
		t.Fatal(err)
	}
	if err := src.SetActive(ctx, bob, "z"); err != nil {
		t.Fatal(err)
	}
	if err := src.SetVacation(ctx, alice, Vacation{Subject: "away", Message: "back monday"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := src.ClaimResponse(ctx, alice, "h", "x@y.test", time.Hour); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// The target already has bob's own script active: it stays so.
	if err := dst.Put(ctx, bob, "mine", []byte(scriptB)); err != nil {
		t.Fatal(err)
	}
	if err := dst.SetActive(ctx, bob, "mine"); err != nil {
		t.Fatal(err)
	}
	res, err := src.CopyTo(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scripts != 3 || res.Vacations != 1 || res.Tracked != 1 || res.Kept != 0 {
		t.Errorf("first copy: %+v", res)
	}
	if name, sc, err := dst.Active(ctx, alice); err != nil || name != "a" || sc == nil {
		t.Errorf("alice's active script in the target: %q %v", name, err)
	}
	if name, _, _ := dst.Active(ctx, bob); name != "mine" {
		t.Errorf("bob's active script in the target: %q, want his own kept", name)
	}
	if v, err := dst.Vacation(ctx, alice); err != nil || v.Message != "back monday" {
		t.Errorf("out-of-office in the target: %+v %v", v, err)
	}
	if ok, err := dst.ClaimResponse(ctx, alice, "h", "x@y.test", time.Hour); ok || err != nil {
		t.Errorf("the target answers a sender answered before the copy: %v %v", ok, err)
	}
	res, err = src.CopyTo(ctx, dst)
	if err != nil || res.Changed() || res.Kept != 4 {
		t.Errorf("second copy: %+v %v; want nothing changed, 4 kept", res, err)
	}
}
