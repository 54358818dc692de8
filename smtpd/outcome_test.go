package smtpd

import (
	"slices"
	"sync"
	"testing"
)

// TestObserve: Options.Observe hears of accepted messages and of refused
// MAIL, RCPT and DATA, with fixed reason names; accepted MAIL and RCPT are
// not outcomes.
func TestObserve(t *testing.T) {
	var mu sync.Mutex
	var got []Outcome
	ts := newTestServer(t, func(o *Options) {
		o.Observe = func(oc Outcome) {
			mu.Lock()
			got = append(got, oc)
			mu.Unlock()
		}
	})
	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<a@remote.test>", "250 ")
	c.cmd("RCPT TO:<nobody@example.org>", "550 5.1.1")
	c.cmd("RCPT TO:<victim@elsewhere.test>", "554 5.7.1")
	c.cmd("RCPT TO:<alice@example.org>", "250 ")
	c.cmd("DATA", "354 ")
	c.cmd("Subject: hi\r\n\r\nhello\r\n.", "250 ")
	c.cmd("MAIL FROM:<a@remote.test>", "250 ")
	c.cmd("RCPT TO:<alice@example.org>", "250 ")
	c.cmd("DATA", "354 ")
	c.cmd("Subject: hi\r\n\r\nhel\x00lo\r\n.", "554 5.6.0")
	c.cmd("QUIT", "221 ")

	want := []Outcome{
		{Mode: ModeMTA, Stage: "rcpt", Reason: "unknown_user"},
		{Mode: ModeMTA, Stage: "rcpt", Reason: "relay_denied"},
		{Mode: ModeMTA, Accepted: true},
		{Mode: ModeMTA, Stage: "data", Reason: "malformed"},
	}
	waitFor(t, "outcomes", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= len(want) })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes:\n got %+v\nwant %+v", got, want)
	}
}
