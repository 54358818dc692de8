package junk

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// junkOpener opens the statistics for a test: each call another process
// or node on the test's one database.
type junkOpener func(t *testing.T, opts DBOptions) *DB

// forJunkBackends runs test on junk.sqlite and on PostgreSQL (skipped,
// saying so, where PostgreSQL is not installed; never in CI).
func forJunkBackends(t *testing.T, test func(t *testing.T, open junkOpener)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "junk.sqlite")
		test(t, func(t *testing.T, o DBOptions) *DB { return openTestDB(t, path, o) })
	})
	t.Run("postgres", func(t *testing.T) { test(t, postgresJunk(t)) })
}

// postgresJunk makes a database for the test and returns an opener of
// nodes on it.
func postgresJunk(t *testing.T) junkOpener {
	dsn := pgtest.NewDatabase(t)
	return func(t *testing.T, o DBOptions) *DB {
		ctx := context.Background()
		pool, err := pgdb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		db, err := OpenDBPostgres(ctx, pool, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
}

// TestTwoNodes: with the postgres backend, what is learned through one
// node counts at the next classification on another, also when that one
// holds the account in its memory cache; removing the account on one
// forgets it for both, and learning there again starts afresh. (junk.sqlite
// has one serve process, whose cache learning itself drops.)
func TestTwoNodes(t *testing.T) {
	open := postgresJunk(t)
	ctx := context.Background()
	a, b := open(t, DBOptions{}), open(t, DBOptions{})
	const acct = "alice@example.org"
	feats := []uint64{21, 22, 23}
	if _, err := a.Learn(ctx, acct, key(1), Spam, feats); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the second classification loads B's cache
		if _, c, err := b.Counts(ctx, acct, feats); err != nil || c[0] != (Count{1, 0}) {
			t.Fatalf("B after A learned: %v %v", c, err)
		}
	}
	if _, err := a.Learn(ctx, acct, key(2), Ham, feats[:1]); err != nil {
		t.Fatal(err)
	}
	st, c, err := b.Counts(ctx, acct, feats)
	if err != nil || st.Ham != 1 || c[0] != (Count{1, 1}) {
		t.Fatalf("B after A learned again: %+v %v %v", st, c, err)
	}
	if err := b.AddCorrespondents(ctx, acct, []string{"bob@example.org"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.IsCorrespondent(ctx, acct, "bob@example.org"); !ok || err != nil {
		t.Fatalf("A does not know B's correspondent: %v %v", ok, err)
	}
	if err := b.RemoveAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Learn(ctx, acct, key(3), Spam, feats[:2]); err != nil {
		t.Fatalf("A learning after B removed the account: %v", err)
	}
	if st, _ := b.Stats(ctx, acct); st.Spam != 1 || st.Ham != 0 || st.Tokens != 2 {
		t.Fatalf("after removal and a new learning: %+v", st)
	}
}

// TestCopyTo: junk.sqlite copied into PostgreSQL (admin store copy) gives
// the same counts; a second copy keeps what is there.
func TestCopyTo(t *testing.T) {
	ctx := context.Background()
	src := openTestDB(t, "", DBOptions{})
	dst := postgresJunk(t)(t, DBOptions{})
	const acct = "alice@example.org"
	feats := []uint64{31, 32, 33}
	if _, err := src.Learn(ctx, acct, key(1), Spam, feats); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Learn(ctx, acct, key(2), Ham, feats[:1]); err != nil {
		t.Fatal(err)
	}
	if err := src.AddCorrespondents(ctx, acct, []string{"bob@example.org"}); err != nil {
		t.Fatal(err)
	}
	res, err := src.CopyTo(ctx, dst)
	if err != nil || res.Accounts != 1 || res.Tokens != 3 || res.Kept != 0 {
		t.Fatalf("first copy: %+v %v", res, err)
	}
	want, wantC, _ := src.Counts(ctx, acct, feats)
	got, gotC, err := dst.Counts(ctx, acct, feats)
	if err != nil || got != want || len(gotC) != 3 || gotC[0] != wantC[0] || gotC[2] != wantC[2] {
		t.Fatalf("copied counts %+v %v, want %+v %v (%v)", got, gotC, want, wantC, err)
	}
	if c, _ := dst.LearnedClass(ctx, acct, key(2)); c != Ham {
		t.Errorf("learned class in the copy: %v", c)
	}
	if ok, _ := dst.IsCorrespondent(ctx, acct, "bob@example.org"); !ok {
		t.Error("correspondent not copied")
	}
	res, err = src.CopyTo(ctx, dst)
	if err != nil || res.Accounts != 0 || res.Kept != 1 {
		t.Fatalf("second copy: %+v %v", res, err)
	}
}
