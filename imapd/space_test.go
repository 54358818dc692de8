package imapd

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/posthouse/posthouse/mailstore"
)

type fakeSpace struct{ low atomic.Bool }

func (f *fakeSpace) Low() bool { return f.low.Load() }

// TestDiskReserve: below the disk reserve APPEND is refused with NO
// [OVERQUOTA] and its literal is never asked for, while reading, flagging,
// moving and expunging go on; above it, APPEND works again.
func TestDiskReserve(t *testing.T) {
	space := &fakeSpace{}
	ts := newTestServer(t, func(o *Options) { o.Space = space })
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	for i := range 3 {
		body := fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)
		rc.mustOK("APPEND INBOX {%d+}\r\n%s", len(body), body)
	}

	space.low.Store(true)
	// A synchronizing literal: the refusal comes instead of "+".
	rc.send("A1 APPEND INBOX {10}\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "A1 NO [OVERQUOTA]") || !strings.Contains(l, "deleting") {
		t.Fatalf("APPEND below the reserve: %q", l)
	}
	if _, done := rc.cmd("APPEND INBOX {5+}\r\nx\r\n\r\n"); !strings.HasPrefix(done, "NO [OVERQUOTA]") {
		t.Fatalf("non-synchronizing APPEND below the reserve: %q", done)
	}
	rc.mustOK("SELECT INBOX")
	if u := rc.mustOK("FETCH 1 BODY[]"); !hasLine(u, "Subject: 0") {
		t.Errorf("FETCH below the reserve: %q", u)
	}
	rc.mustOK("STORE 1 +FLAGS (\\Seen)")
	rc.mustOK("MOVE 2 Archive")
	rc.mustOK("STORE 1 +FLAGS (\\Deleted)")
	rc.mustOK("EXPUNGE")
	if u := rc.mustOK("STATUS Archive (MESSAGES)"); !hasLine(u, "MESSAGES 1") {
		t.Errorf("STATUS Archive: %q", u)
	}

	space.low.Store(false)
	rc.mustOK("APPEND INBOX {5+}\r\nx\r\n\r\n")
	if u := rc.mustOK("STATUS INBOX (MESSAGES)"); !hasLine(u, "MESSAGES 2") {
		t.Errorf("STATUS INBOX after recovery: %q", u)
	}
}

// TestNoSpaceReply: a write that finds the disk full is NO [OVERQUOTA]
// with the reserve's text, not [UNAVAILABLE].
func TestNoSpaceReply(t *testing.T) {
	err := mapError(slog.New(slog.DiscardHandler), "append", fmt.Errorf("append: %w", &fs.PathError{Op: "write", Path: "tmp/x", Err: syscall.ENOSPC}), errDest)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeOverQuota || strings.Contains(ie.Text, "tmp/x") {
		t.Fatalf("mapError(ENOSPC) = %v", err)
	}
	if err := mapError(slog.New(slog.DiscardHandler), "append", mailstore.ErrOverQuota, errDest); err == errNoSpace {
		t.Fatal("a user's quota is reported as the disk reserve")
	}
}
