package maildir

import (
	"context"
	"reflect"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// TestFetchSummaryOnly: a FETCH of flags alone, answered from the
// mailbox's list (cached or read whole), gives exactly the UIDs, modseqs
// and flags the row path gives, before and after changes.
func TestFetchSummaryOnly(t *testing.T) {
	acc, id := bigMailbox(t, 5000)
	ctx := context.Background()
	sets := []imap.UIDSet{
		{imap.UIDRange{Start: 1, Stop: 0}},
		{imap.UIDRange{Start: 10, Stop: 20}, imap.UIDRange{Start: 4990, Stop: 6000}},
		{imap.UIDRange{Start: 7, Stop: 7}},
		{imap.UIDRange{Start: 6000, Stop: 0}}, // n:* above max is max:n
		{imap.UIDRange{Start: 9000, Stop: 9100}},
	}
	check := func(when string) {
		t.Helper()
		for _, set := range sets {
			rows, err := acc.Fetch(ctx, id, set, mailstore.FetchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sums, err := acc.Fetch(ctx, id, set, mailstore.FetchOptions{SummaryOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(sums) {
				t.Fatalf("%s, %v: %d rows, %d summaries", when, set, len(rows), len(sums))
			}
			for i := range rows {
				r, s := rows[i], sums[i]
				if r.UID != s.UID || r.ModSeq != s.ModSeq || !reflect.DeepEqual(r.Flags, s.Flags) {
					t.Fatalf("%s, %v, #%d: row %d %d %v, summary %d %d %v", when, set, i, r.UID, r.ModSeq, r.Flags, s.UID, s.ModSeq, s.Flags)
				}
			}
		}
	}
	check("cold")
	if _, err := acc.Snapshot(ctx, id); err != nil { // cached now
		t.Fatal(err)
	}
	check("cached")
	if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(8, 4999), mailstore.FlagsAdd, []imap.Flag{imap.FlagFlagged, "Later"}, 0); err != nil {
		t.Fatal(err)
	}
	check("after a flag change")
	gone := imap.UIDSetNum(10, 11)
	acc.StoreFlags(ctx, id, gone, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0)
	if _, err := acc.Expunge(ctx, id, &gone); err != nil {
		t.Fatal(err)
	}
	check("after an expunge")
	// A deleted mailbox is an error on both paths.
	if _, err := acc.Fetch(ctx, 999, sets[0], mailstore.FetchOptions{SummaryOnly: true}); err == nil {
		t.Fatal("fetch of a missing mailbox succeeded")
	}
}
