package postgres

import (
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// TestPublishInModSeqOrder: events of a later modseq of a mailbox wait for
// those of the modseq before (a notification still on its way), so that
// watchers see each mailbox's changes in order; other mailboxes do not
// wait for them.
func TestPublishInModSeqOrder(t *testing.T) {
	a := &account{log: slog.New(slog.DiscardHandler)}
	var (
		mu  sync.Mutex
		got []uint64
	)
	a.addWatcher(func(e mailstore.Event) {
		mu.Lock()
		got = append(got, uint64(e.MailboxID)*100+e.ModSeq)
		mu.Unlock()
	})
	ev := func(mb int64, modseq uint64) []mailstore.Event {
		return []mailstore.Event{{Kind: mailstore.EventAppend, MailboxID: mb, UID: imap.UID(modseq), ModSeq: modseq}}
	}
	a.publish(ev(1, 1))
	done := make(chan struct{})
	go func() {
		a.publish(ev(1, 3)) // waits for 2
		close(done)
	}()
	a.publish(ev(2, 7)) // another mailbox: never waits
	a.publish(ev(1, 2))
	<-done
	a.publish(ev(1, 3)) // a repeat of what was published does not wait
	mu.Lock()
	defer mu.Unlock()
	var mb1 []uint64
	for _, g := range got {
		if g < 200 {
			mb1 = append(mb1, g)
		}
	}
	if want := []uint64{101, 102, 103, 103}; !slices.Equal(mb1, want) {
		t.Errorf("mailbox 1 events in modseq order %v, want %v (all: %v)", mb1, want, got)
	}
	if !slices.Contains(got, 207) {
		t.Errorf("mailbox 2's event missing: %v", got)
	}
}

// TestPublishGapGivesUp: an earlier change that never arrives (a lost
// notification) holds later events back only for gapWait.
func TestPublishGapGivesUp(t *testing.T) {
	old := gapWait
	gapWait = 1 // a nanosecond: the test checks that publish gives up, not when
	t.Cleanup(func() { gapWait = old })
	a := &account{log: slog.New(slog.DiscardHandler)}
	var got []uint64
	a.addWatcher(func(e mailstore.Event) { got = append(got, e.ModSeq) })
	a.publish([]mailstore.Event{{Kind: mailstore.EventAppend, MailboxID: 1, UID: 1, ModSeq: 4}})
	a.publish([]mailstore.Event{{Kind: mailstore.EventAppend, MailboxID: 1, UID: 3, ModSeq: 9}})
	if !slices.Equal(got, []uint64{4, 9}) {
		t.Errorf("published %v, want [4 9]", got)
	}
}
