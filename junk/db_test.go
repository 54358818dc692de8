package junk

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestLearnOncePerClassAndUnlearn(t *testing.T) {
	forJunkBackends(t, testLearnOncePerClassAndUnlearn)
}

func testLearnOncePerClassAndUnlearn(t *testing.T, open junkOpener) {
	ctx := context.Background()
	db := open(t, DBOptions{})
	const acct = "alice@example.org"
	feats := []uint64{11, 12, 13}
	learn := func(k MessageKey, c Class, hashes []uint64, wantChanged bool) {
		t.Helper()
		changed, err := db.Learn(ctx, acct, k, c, hashes)
		if err != nil || changed != wantChanged {
			t.Fatalf("Learn(%v): changed %v, %v; want %v", c, changed, err, wantChanged)
		}
	}
	counts := func() []Count {
		t.Helper()
		_, c, err := db.Counts(ctx, acct, []uint64{11, 12, 13, 14})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	learn(key(1), Spam, feats, true)
	learn(key(1), Spam, feats, false) // once per class
	learn(key(2), Spam, []uint64{11, 14}, true)
	if st, _ := db.Stats(ctx, acct); st.Spam != 2 || st.Ham != 0 || st.Tokens != 4 {
		t.Fatalf("stats %+v", st)
	}
	if c := counts(); c[0] != (Count{2, 0}) || c[1] != (Count{1, 0}) || c[3] != (Count{1, 0}) {
		t.Fatalf("counts %v", c)
	}
	// Re-classified: unlearned as spam, learned as ham.
	learn(key(1), Ham, feats, true)
	if st, _ := db.Stats(ctx, acct); st.Spam != 1 || st.Ham != 1 || st.Tokens != 4 {
		t.Fatalf("after re-classification: stats %+v", st)
	}
	if c := counts(); c[0] != (Count{1, 1}) || c[1] != (Count{0, 1}) || c[2] != (Count{0, 1}) || c[3] != (Count{1, 0}) {
		t.Fatalf("after re-classification: counts %v", c)
	}
	if c, _ := db.LearnedClass(ctx, acct, key(1)); c != Ham {
		t.Fatalf("learned class %v", c)
	}
	learn(key(1), Ham, feats, false)
	// And back.
	learn(key(1), Spam, feats, true)
	if c := counts(); c[0] != (Count{2, 0}) || c[1] != (Count{1, 0}) {
		t.Fatalf("back to spam: counts %v", c)
	}
	// Other accounts see nothing of it.
	if st, c, err := db.Counts(ctx, "bob@example.org", feats); err != nil || st.Spam != 0 || c != nil {
		t.Fatalf("bob: %+v %v %v", st, c, err)
	}
}

func TestPersistence(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "junk.sqlite")
	db, err := OpenDB(ctx, path, DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok := &Tokenizer{}
	spam, ham := corpus(5, 25)
	for i := range spam {
		for j, m := range [][]byte{spam[i], ham[i]} {
			f := tokenize(t, tok, m)
			if _, err := db.Learn(ctx, "alice@example.org", key(i*2+j), Class(2-j), f.Hashes()); err != nil {
				t.Fatal(err)
			}
			f.release()
		}
	}
	if err := db.AddCorrespondents(ctx, "alice@example.org", []string{"friend@remote.example"}); err != nil {
		t.Fatal(err)
	}
	probe, _ := corpus(6, 1)
	before := scoreOf(t, db, tok, "alice@example.org", probe[0])
	st1, _ := db.Stats(ctx, "alice@example.org")
	db.Close()

	db = openTestDB(t, path, DBOptions{})
	st2, _ := db.Stats(ctx, "alice@example.org")
	if st1 != st2 || st2.Spam != 25 || st2.Ham != 25 {
		t.Fatalf("stats %+v before, %+v after reopening", st1, st2)
	}
	if after := scoreOf(t, db, tok, "alice@example.org", probe[0]); after != before {
		t.Errorf("score %v before, %v after reopening", before, after)
	}
	if ok, _ := db.IsCorrespondent(ctx, "alice@example.org", "friend@remote.example"); !ok {
		t.Error("correspondent forgotten")
	}
	if c, _ := db.LearnedClass(ctx, "alice@example.org", key(0)); c != Spam {
		t.Errorf("learned class %v after reopening", c)
	}
}

// TestBoundedGrowth: an account's features, learned messages and
// correspondents stay within their bounds however much is learned.
func TestBoundedGrowth(t *testing.T) { forJunkBackends(t, testBoundedGrowth) }

func testBoundedGrowth(t *testing.T, open junkOpener) {
	ctx := context.Background()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	db := open(t, DBOptions{MaxTokens: 1000, MaxLearned: 50, MaxCorrespondents: 20, Now: clk.Now})
	const acct = "alice@example.org"
	common := []uint64{1, 2, 3} // in every message: must survive pruning
	next := uint64(100)
	for i := range 200 {
		hashes := append([]uint64(nil), common...)
		for range 30 {
			hashes = append(hashes, next)
			next++
		}
		if _, err := db.Learn(ctx, acct, key(i), Class(1+i%2), hashes); err != nil {
			t.Fatal(err)
		}
		clk.now = clk.now.Add(time.Hour)
		st, err := db.Stats(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		if st.Tokens > 1000 {
			t.Fatalf("after %d messages: %d features, bound 1000", i+1, st.Tokens)
		}
	}
	var n, learned int64
	db.db.Read.QueryRow(`SELECT count(*) FROM tokens`).Scan(&n)
	db.db.Read.QueryRow(`SELECT count(*) FROM learned`).Scan(&learned)
	st, _ := db.Stats(ctx, acct)
	if n != st.Tokens || n > 1000 || learned > 50 {
		t.Errorf("%d feature rows (counter %d), %d learned rows", n, st.Tokens, learned)
	}
	if _, c, _ := db.Counts(ctx, acct, common); c[0].Spam+c[0].Ham != 200 {
		t.Errorf("a feature of every message was pruned: %v", c)
	}
	if st.Spam != 100 || st.Ham != 100 {
		t.Errorf("message counts %+v", st)
	}

	// Features seen once and long ago go first once over the bound.
	clk.now = clk.now.AddDate(1, 0, 0)
	hashes := []uint64{1}
	for range 100 {
		hashes = append(hashes, next)
		next++
	}
	if _, err := db.Learn(ctx, acct, key(10000), Spam, hashes); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.Stats(ctx, acct); st.Tokens > 1000-900+100+3 {
		t.Errorf("%d features after a year: the stale ones should be gone", st.Tokens)
	}

	for i := range 30 {
		clk.now = clk.now.Add(time.Hour * 24)
		if err := db.AddCorrespondents(ctx, acct, []string{"c" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "@x.example"}); err != nil {
			t.Fatal(err)
		}
	}
	var nc int64
	db.db.Read.QueryRow(`SELECT count(*) FROM correspondents`).Scan(&nc)
	if nc != 20 {
		t.Errorf("%d correspondents, bound 20", nc)
	}
	if ok, _ := db.IsCorrespondent(ctx, acct, "cdb@x.example"); !ok {
		t.Error("the latest correspondent was pruned")
	}
	if ok, _ := db.IsCorrespondent(ctx, acct, "caa@x.example"); ok {
		t.Error("the oldest correspondent was kept")
	}

	if err := db.RemoveAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	db.db.Read.QueryRow(`SELECT count(*) FROM tokens`).Scan(&n)
	if st, _ := db.Stats(ctx, acct); st != (Stats{}) || n != 0 {
		t.Errorf("after RemoveAccount: %+v, %d feature rows", st, n)
	}
}
