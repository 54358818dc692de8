package sieve

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// Env is what a run sees of the world: the message, its envelope, the
// clock, the spam verdict, and the state the caller keeps (duplicate
// tracking, other scripts, mailboxes). Nil interfaces mean "none": no
// duplicate is ever seen, include finds nothing, no mailbox exists.
type Env struct {
	// Header is the message header, fields in order, as the message has
	// them (HeaderFields and ReadHeader build it).
	Header []Field
	// Content is the whole message, header and body. Body tests read at
	// most Options.MaxBodyBytes of it; size tests use its Size. Nil
	// means an empty body.
	Content *io.SectionReader

	Envelope Envelope

	// Now is the time of the run: currentdate's value and, with its
	// Location, the local time zone of date tests (RFC 5260 §4.1).
	Now time.Time

	// Spam is the spam classifier's verdict for spamtest.
	Spam Spam

	// Addresses are the recipient's own addresses, besides Envelope.To
	// and OriginalTo, for vacation's check that the message was sent to
	// the user (RFC 5230 §4.5).
	Addresses []string

	Duplicates Duplicates
	Scripts    Scripts
	Mailboxes  Mailboxes
}

// Field is a header field: Value is everything after the colon, folding
// included (Header tests unfold, trim and decode it).
type Field struct {
	Name, Value string
}

// HeaderFields lists a parsed header's fields in order.
func HeaderFields(h textproto.Header) []Field {
	var out []Field
	for f := h.Fields(); f.Next(); {
		out = append(out, Field{Name: f.Key(), Value: f.Value()})
	}
	return out
}

// ReadHeader reads a message header from r by the rule the store and
// smtpd use (mimeparse.ReadHeader: the fields in the first 256 KiB).
func ReadHeader(r io.Reader) ([]Field, error) {
	h, _, err := mimeparse.ReadHeader(r)
	if err != nil {
		return nil, err
	}
	return HeaderFields(h), nil
}

// Envelope is the SMTP envelope of this delivery (RFC 5228 §5.4).
type Envelope struct {
	From string // MAIL FROM, "" for the null reverse-path
	// To is the final recipient: the address of the account the script
	// runs for.
	To string
	// OriginalTo is the address the message was sent to, before alias
	// and +tag resolution ("" when the same as To).
	OriginalTo string
	// Auth is the authenticated submitter, if any ("auth" envelope part).
	Auth string
}

// Spam is the spam verdict spamtest reads (RFC 5235): Score from 0 (not
// spam) to 1 (spam). The caller derives it from the junk filter's
// X-Posthouse-Junk field (junk.ParseHeader), topmost field only.
type Spam struct {
	Tested bool
	Score  float64
}

// Duplicates is the duplicate-tracking list (RFC 7352). Seen says
// whether id was recorded by an earlier run and has not expired. The
// caller records Result.Duplicates after it carried out the actions.
type Duplicates interface {
	Seen(ctx context.Context, id string) (bool, error)
}

// Location is where an included script lives (RFC 6609 §3.2).
type Location uint8

const (
	Personal Location = iota // the user's own scripts
	Global                   // the administrator's shared scripts
)

func (l Location) String() string {
	if l == Global {
		return "global"
	}
	return "personal"
}

// ErrNoSuchScript is what Scripts returns for a script that does not
// exist.
var ErrNoSuchScript = errors.New("sieve: no such script")

// Scripts finds scripts to include, compiled (the caller compiles and
// caches them; Compile is deterministic, so a cache keyed by the script's
// text is safe).
type Scripts interface {
	Script(ctx context.Context, loc Location, name string) (*Script, error)
}

// Mailboxes answers mailboxexists (RFC 5490 §3.1).
type Mailboxes interface {
	MailboxExists(ctx context.Context, name string) (bool, error)
}
