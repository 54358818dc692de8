package maildir

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// TestScatteredSets: a set of several ranges (one statement through
// json_each) reads, changes and expunges exactly the messages a range at
// a time would, missing UIDs and "*" included.
func TestScatteredSets(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	inbox := inboxID(t, acc)
	for i := 0; i < 30; i++ {
		deliver(t, acc, testMessage(fmt.Sprintf("m %d", i), "body"))
	}
	set := imap.UIDSet{{Start: 1, Stop: 1}, {Start: 3, Stop: 3}, {Start: 5, Stop: 7}, {Start: 20, Stop: 22}, {Start: 29, Stop: 0}, {Start: 40, Stop: 41}}
	want := []imap.UID{1, 3, 5, 6, 7, 20, 21, 22, 29, 30}
	uidsOf := func(n int, at func(int) imap.UID) []imap.UID {
		var out []imap.UID
		for i := 0; i < n; i++ {
			out = append(out, at(i))
		}
		return out
	}

	rows, err := acc.Fetch(ctx, inbox, set, mailstore.FetchOptions{Envelope: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := uidsOf(len(rows), func(i int) imap.UID { return rows[i].UID }); !slices.Equal(got, want) {
		t.Errorf("Fetch: %v, want %v", got, want)
	}
	if rows[0].Envelope == nil || rows[0].Envelope.Subject != "m 0" {
		t.Errorf("Fetch envelope: %+v", rows[0].Envelope)
	}

	var events []imap.UID
	stop := acc.Watch(func(ev mailstore.Event) {
		if ev.Kind == mailstore.EventFlags {
			events = append(events, ev.UID)
		}
	})
	defer stop()
	for _, flags := range [][]imap.Flag{{imap.FlagDeleted}, {"$Label1"}} {
		res, err := acc.StoreFlags(ctx, inbox, set, mailstore.FlagsAdd, flags, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := uidsOf(len(res.Updated), func(i int) imap.UID { return res.Updated[i].UID }); !slices.Equal(got, want) {
			t.Errorf("StoreFlags %v: updated %v, want %v", flags, got, want)
		}
		if !slices.Equal(events, want) {
			t.Errorf("StoreFlags %v: events for %v, want %v", flags, events, want)
		}
		events = nil
	}
	rows, err = acc.Fetch(ctx, inbox, imap.UIDSet{{Start: 1, Stop: 0}}, mailstore.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if marked := slices.Contains(r.Flags, imap.FlagDeleted); marked != slices.Contains(want, r.UID) {
			t.Errorf("UID %d flags %v", r.UID, r.Flags)
		}
	}

	gone, err := acc.Expunge(ctx, inbox, &set)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gone, want) {
		t.Errorf("Expunge: %v, want %v", gone, want)
	}
	rows, err = acc.Fetch(ctx, inbox, imap.UIDSet{{Start: 1, Stop: 0}}, mailstore.FetchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 30-len(want) {
		t.Errorf("%d messages left, want %d", len(rows), 30-len(want))
	}
}

// TestScatteredForm: every statement eachInRanges runs has the one-range
// condition scatteredForm rewrites, so none silently keeps a statement
// per range.
func TestScatteredForm(t *testing.T) {
	for _, q := range []string{
		`SELECT uid FROM messages WHERE mailbox = ? AND uid BETWEEN ? AND ? ORDER BY uid`,
		`UPDATE messages SET flags = flags | ?4 WHERE mailbox = ?1 AND uid BETWEEN ?2 AND ?3 RETURNING uid`,
	} {
		if _, ok := scatteredForm(q); !ok {
			t.Errorf("not rewritten: %s", q)
		}
	}
	if u, ok := scatteredUIDs([]uidRange{{1, 1}, {3, 5}}); !ok || u != "[1,3,4,5]" {
		t.Errorf("scatteredUIDs: %q %v", u, ok)
	}
	if _, ok := scatteredUIDs([]uidRange{{1, 1}, {3, 5000}}); ok {
		t.Error("scatteredUIDs took a set over the limit")
	}
}
