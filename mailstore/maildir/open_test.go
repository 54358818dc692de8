package maildir

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/mailstore"
)

// TestConcurrentFirstOpens: many sessions log in at once to accounts that
// do not exist yet (a burst of first IMAP logins), each opening and
// delivering; among them, openers whose context is already cancelled (a
// client that gave up). Every live opener must get the account, every
// delivery must land once, and a cancelled opener must never leave the
// account unopenable for the others. The test's context turns a deadlock
// into a failure instead of a hang.
func TestConcurrentFirstOpens(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dead, kill := context.WithCancel(ctx)
	kill()

	const accounts, openers = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, accounts*openers*2)
	for a := 0; a < accounts; a++ {
		name := fmt.Sprintf("user%d@example.com", a)
		for o := 0; o < openers; o++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				// A client that gave up: its open fails or succeeds, but
				// must not break the account for the others.
				if acc, err := s.Open(dead, name); err == nil {
					acc.Close()
				}
			}()
			go func(o int) {
				defer wg.Done()
				acc, err := s.Open(ctx, name)
				if err != nil {
					errs <- fmt.Errorf("open %s: %w", name, err)
					return
				}
				defer acc.Close()
				msg := fmt.Sprintf("From: a@b\r\nSubject: %d\r\n\r\nbody %d\r\n", o, o)
				if _, err := acc.Deliver(ctx, strings.NewReader(msg), mailstore.DeliverOptions{}); err != nil {
					errs <- fmt.Errorf("deliver %s: %w", name, err)
				}
			}(o)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for a := 0; a < accounts; a++ {
		acc := openAccount(t, s, fmt.Sprintf("user%d@example.com", a))
		snap, err := acc.Snapshot(ctx, inboxID(t, acc))
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Messages) != openers {
			t.Errorf("%s has %d messages, want %d", acc.Name(), len(snap.Messages), openers)
		}
		mbs, err := acc.ListMailboxes(ctx)
		if err != nil || len(mbs) != len(mailstore.DefaultMailboxes) {
			t.Errorf("%s: %d mailboxes (%v), want the defaults once", acc.Name(), len(mbs), err)
		}
	}
}
