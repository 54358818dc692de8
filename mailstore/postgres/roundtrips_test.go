package postgres

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
)

// TestRoundTrips pins the statements (each one round trip) of the hot
// paths, counted by a tracer on the pool: a delivery is BEGIN, the body,
// one statement for the row, its usage and its notification, and COMMIT
// (one more, a look at the usage, with a quota); a FETCH of flags and a
// Snapshot are one statement whatever the mailbox's size; opening a
// message of one body chunk and reading it is one statement, and a
// SEARCH TEXT reads the bodies in batches.
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	var stmts stmtCounter
	cfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = &stmts
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var quota int64
	s := openTestStore(t, Options{Pool: pool, Quota: func(context.Context, string) (int64, error) { return quota, nil }})
	t.Cleanup(func() { s.Close() })
	acc := openAccount(t, s, "alice@example.org")

	count := func(what string, want int64, f func()) {
		t.Helper()
		before := stmts.n.Load()
		f()
		if got := stmts.n.Load() - before; got != want {
			t.Errorf("%s: %d statements, want %d", what, got, want)
		}
	}
	var res mailstore.AppendResult
	deliver := func() {
		var err error
		if res, err = acc.Deliver(ctx, strings.NewReader(testMsg), mailstore.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	count("Deliver", 4, deliver)
	quota = 1 << 30
	count("Deliver with a quota", 5, deliver)
	for range 20 {
		deliver()
	}
	count("Fetch 1:* FLAGS", 1, func() {
		if infos, err := acc.Fetch(ctx, res.MailboxID, imap.UIDSet{{Start: 1, Stop: 0}}, mailstore.FetchOptions{SummaryOnly: true}); err != nil || len(infos) != 22 {
			t.Fatalf("Fetch: %d, %v", len(infos), err)
		}
	})
	count("Fetch 3,5:7,9 FLAGS", 1, func() {
		set := imap.UIDSet{{Start: 3, Stop: 3}, {Start: 5, Stop: 7}, {Start: 9, Stop: 9}}
		if infos, err := acc.Fetch(ctx, res.MailboxID, set, mailstore.FetchOptions{SummaryOnly: true}); err != nil || len(infos) != 5 {
			t.Fatalf("Fetch: %d, %v", len(infos), err)
		}
	})
	count("Snapshot", 1, func() {
		if snap, err := acc.Snapshot(ctx, res.MailboxID); err != nil || len(snap.Messages) != 22 {
			t.Fatalf("Snapshot: %d, %v", len(snap.Messages), err)
		}
	})
	count("OpenMessage and read it whole", 1, func() {
		r, size, err := acc.OpenMessage(ctx, res.MailboxID, res.UID)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if b, err := io.ReadAll(r); err != nil || int64(len(b)) != size || string(b) != testMsg {
			t.Fatalf("OpenMessage: %d of %d bytes, %v", len(b), size, err)
		}
	})
	// The list, then the bodies in batches read ahead (8, then the
	// other 14: every one was needed, so the window doubled).
	count("SEARCH TEXT over 22 messages", 3, func() {
		uids, err := acc.Search(ctx, res.MailboxID, &imap.SearchCriteria{Text: []string{"hello"}})
		if err != nil || len(uids) != 22 {
			t.Fatalf("Search: %d, %v", len(uids), err)
		}
	})
	count("Status", 1, func() {
		if _, err := acc.Status(ctx, res.MailboxID); err != nil {
			t.Fatal(err)
		}
	})
}
