package auth

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func TestLookupMemo(t *testing.T) { forEachBackend(t, testLookupMemo) }

// testLookupMemo: under WithLookupMemo a user, domain and alias are read
// once and the first answer is kept (a change made meanwhile applies from
// the next memo); without one every call reads the database; a login
// under a memo still sees a password just changed.
func testLookupMemo(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, map[string][]string{"team@example.com": {"bob@example.com"}})
	must(t, db.SetQuota(ctx, "bob@example.com", 1000))

	memo := WithLookupMemo(ctx)
	if WithLookupMemo(memo) != memo {
		t.Error("a second WithLookupMemo replaced the memo")
	}
	if q, err := db.Quota(memo, "bob@example.com"); err != nil || q != 1000 {
		t.Fatalf("quota %d, %v", q, err)
	}
	res, err := db.Resolve(memo, "team@example.com")
	if err != nil || !slices.Equal(res.Local, []string{"bob@example.com"}) {
		t.Fatalf("resolve team: %+v, %v", res, err)
	}
	if _, err := db.Resolve(memo, "carol@example.com"); err == nil {
		t.Fatal("carol resolved before she exists")
	}

	must(t, db.SetQuota(ctx, "bob@example.com", 2000))
	must(t, db.SetPassword(ctx, "bob@example.com", "new-secret-pw"))
	if _, err := db.AddUser(ctx, "carol@example.com", "pw-carol", 0); err != nil {
		t.Fatal(err)
	}
	must(t, db.AddAlias(ctx, "sales@example.com", []string{"carol@example.com"}))

	// Under the memo: the first answers.
	var wg sync.WaitGroup
	for range 4 { // a delivery reads from several goroutines
		wg.Add(1)
		go func() {
			defer wg.Done()
			if q, err := db.Quota(memo, "bob@example.com"); err != nil || q != 1000 {
				t.Errorf("quota under the memo: %d, %v; want the first answer, 1000", q, err)
			}
		}()
	}
	wg.Wait()
	if _, err := db.Resolve(memo, "carol@example.com"); err == nil {
		t.Error("carol resolved under the memo that had found no carol")
	}
	// A login reads afresh.
	if _, err := db.Authenticate(memo, "bob@example.com", "new-secret-pw", netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("login with the new password under a memo: %v", err)
	}

	// Without a memo, and under a new one: the current state.
	for name, c := range map[string]context.Context{"no memo": ctx, "new memo": WithLookupMemo(ctx)} {
		if q, err := db.Quota(c, "bob@example.com"); err != nil || q != 2000 {
			t.Errorf("%s: quota %d, %v; want 2000", name, q, err)
		}
		res, err := db.Resolve(c, "sales@example.com")
		if err != nil || !slices.Equal(res.Local, []string{"carol@example.com"}) {
			t.Errorf("%s: resolve sales: %+v, %v", name, res, err)
		}
	}
}
