package storetest

import (
	"context"
	"io"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
)

// Stored is one message of an account as Messages reads it back.
type Stored struct {
	Mailbox string
	Flags   []string
	Body    string
}

// Messages reads back every message of an account, mailbox by mailbox in
// the order ListMailboxes gives, by ascending UID: what tests of the
// store's users (the delivery pipeline, its filters) check landed.
func Messages(t testing.TB, s mailstore.Store, account string) []Stored {
	t.Helper()
	ctx := context.Background()
	a, err := s.Open(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mbs, err := a.ListMailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []Stored
	for _, mb := range mbs {
		snap, err := a.Snapshot(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range snap.Messages {
			r, _, err := a.OpenMessage(ctx, mb.ID, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			var flags []string
			for _, f := range m.Flags {
				flags = append(flags, string(f))
			}
			out = append(out, Stored{Mailbox: mb.Name, Flags: flags, Body: string(b)})
		}
	}
	return out
}
