package queue

import (
	"strings"
	"testing"
	"time"
)

// TestLocalRecipientRetriedIntoMailbox: a recipient in our own domain (what
// smtpd queues when a local copy failed) is delivered into the mailstore,
// never through MX. A full mailbox is a temporary failure that is retried;
// the message lands once there is room. An unknown local user fails
// permanently.
func TestLocalRecipientRetriedIntoMailbox(t *testing.T) {
	e := newEnv(t, newFakeRemote(t), func(o *Options) {
		o.Locals = fakeLocals{users: map[string]bool{"carol@a.test": true}}
	})
	e.quota.Store(10) // smaller than any message: full

	id := e.enqueue("bob@b.test", "carol@a.test", "nobody@a.test")
	waitFor(t, "the first local attempt", func() bool {
		st, reply := e.rcptState(id, "carol@a.test")
		return st == StatePending && strings.Contains(reply, "4.2.2")
	})
	waitFor(t, "the unknown local user to fail", func() bool {
		st, reply := e.rcptState(id, "nobody@a.test")
		return st == StateFailed && strings.Contains(reply, "5.1.1") || st == ""
	})
	e.quota.Store(0) // room again
	e.advance(time.Hour)
	waitFor(t, "carol's copy to be delivered", func() bool {
		st, _ := e.rcptState(id, "carol@a.test")
		return st == StateDelivered || st == ""
	})

	for _, rcpt := range []string{"carol@a.test", "nobody@a.test"} {
		if n := e.remote.count(rcpt); n != 0 {
			t.Fatalf("%s went out over the network %d times", rcpt, n)
		}
	}

	inbox := e.inbox("carol@a.test")
	if len(inbox) != 1 {
		t.Fatalf("carol's INBOX: %d messages", len(inbox))
	}
	if b := inbox[0]; !strings.HasPrefix(string(b), "Return-Path: <bob@b.test>\r\n") || !strings.HasSuffix(string(b), testBody) {
		t.Fatalf("stored message:\n%s", b)
	}
}
