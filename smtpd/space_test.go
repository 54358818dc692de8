package smtpd

import (
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/posthouse/posthouse/delivery"
)

// fakeSpace is a disk whose "below the reserve" the test sets.
type fakeSpace struct{ low atomic.Bool }

func (f *fakeSpace) Low() bool { return f.low.Load() }

// TestDiskReserve: below the disk reserve, MAIL and RCPT get 452 4.3.1 on
// port 25 and on submission, before any message is sent; a transaction
// already past RCPT finishes; above the reserve again, mail flows.
func TestDiskReserve(t *testing.T) {
	space := &fakeSpace{}
	withSpace := func(o *Options) { o.Space = space }
	mta := newTestServer(t, withSpace)
	subs := newTestServer(t, withSpace, withMode(ModeSubmissions))

	c := dialRaw(t, mta.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.org>", "250 ")
	space.low.Store(true)
	c.cmd("RCPT TO:<alice@example.org>", "452 4.3.1 ")
	// Past RCPT: the reserve takes the message.
	c.cmd("DATA", "354 ")
	c.write("Subject: in flight\r\n\r\nx\r\n.\r\n")
	c.expect("250 ")
	c.cmd("MAIL FROM:<x@remote.test>", "452 4.3.1 ")
	c.cmd("RCPT TO:<bob@example.org>", "503 5.5.1 ")

	s := dialRawTLS(t, subs.addr)
	s.ehlo()
	s.authPlain("alice@example.org", "alice-secret", "235 ")
	s.cmd("MAIL FROM:<alice@example.org>", "452 4.3.1 ")

	space.low.Store(false)
	c.deliver("after")
	s.deliverFrom("alice@example.org", "after, submitted")
	if n := len(mta.messages("bob@example.org")); n != 2 {
		t.Errorf("bob has %d messages, want 2 (in flight, after)", n)
	}
	if !strings.Contains(mta.logs.String(), "free disk space below the reserve") {
		t.Errorf("refusal not logged:\n%s", mta.logs.String())
	}
}

// TestNoSpaceAtWrite: a disk that fills anyway (ENOSPC, SQLITE_FULL at the
// store) gets 452 4.3.1, not the generic 451 4.3.0.
func TestNoSpaceAtWrite(t *testing.T) {
	enospc := fmt.Errorf("deliver: %w", &fs.PathError{Op: "write", Path: "tmp/x", Err: syscall.ENOSPC})
	d := &scriptedDelivery{results: []delivery.Result{{Rcpt: "bob@example.org", Err: enospc}}}
	ts := newTestServer(t, withDelivery(d))
	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.org>", "250 ")
	c.cmd("DATA", "354 ")
	c.write("Subject: p\r\n\r\nx\r\n.\r\n")
	if line := c.expect("452 4.3.1 "); strings.Contains(line, "tmp/x") {
		t.Errorf("internal error on the wire: %q", line)
	}
}
