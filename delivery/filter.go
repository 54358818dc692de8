package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/posthouse/posthouse/internal/mailaddr"
)

// Filter looks at a message on its way to the store and decides what
// becomes of it: a junk filter, a DMARC policy, a user's Sieve script.
type Filter interface {
	// Name identifies the filter in logs and errors.
	Name() string
	// Check is called once per message, with every recipient in
	// m.Recipients. It must not modify m or keep it, its header or its
	// readers after returning. An error (or a panic) fails the whole
	// message temporarily: nobody gets a copy, the sender retries.
	Check(ctx context.Context, m *Message) (Decision, error)
}

// Decision is a filter's answer: a verdict for every recipient, and
// verdicts for some of them, by Recipient.Account, applied after All.
type Decision struct {
	All  Verdict
	Rcpt map[string]Verdict
}

// Action is what a verdict does with the local copy.
type Action int

const (
	// Keep: no objection; the copy is stored unless another filter
	// discards or rejects it. The zero value.
	Keep Action = iota
	// Discard: no local copy (redirects still go out); the sender is told
	// the message was delivered.
	Discard
	// Reject: no copy and no redirect; the sender gets Verdict.Reply.
	Reject
)

// Verdict is one filter's decision for one recipient. The zero Verdict
// changes nothing.
type Verdict struct {
	Action Action
	// Reply is what the sender is told with Reject (4xx: try again later;
	// 5xx: refused). The zero Reply means defaultReject.
	Reply Reply
	// Mailbox is where the copy goes ("" leaves it: INBOX unless an earlier
	// filter chose). A mailbox the account does not have means INBOX.
	Mailbox string
	// Flags replaces the flags and keywords the copy is stored with; nil
	// leaves them. System flags (\Seen, \Flagged, …) and keywords ($Junk).
	Flags []string
	// Headers are prepended to the stored and the redirected copies.
	Headers []Field
	// Remove takes header fields out of the stored and the redirected
	// copies: the message's own or ones earlier filters added, counted
	// over the header this filter was shown (see FieldRef). To change a
	// field, remove it and add the new one to Headers: it moves to the top.
	Remove []FieldRef
	// Redirect sends a copy to these addresses through the queue, with
	// the original envelope sender. It does not cancel the local copy:
	// redirect and Discard together forward only.
	Redirect []string

	// Copies, when not nil, replaces the one stored copy with these (a
	// Sieve script's keep and fileinto actions): one copy each, in order.
	// A Copy with Mailbox "" is the copy the account would get without
	// this verdict: in Mailbox (or an earlier filter's), with Flags (or an
	// earlier filter's) and its own flags besides. Copies that end up in
	// the same mailbox are stored once, their flags united. An empty
	// non-nil list is no copy at all: use Discard. The last filter that
	// sets Copies decides.
	Copies []Copy
	// Append are added after the message's last header field, in order,
	// in the stored and the redirected copies (Sieve's addheader :last,
	// RFC 5293 §4). A header that does not end within MaxHeaderBytes gets
	// them on top with Headers.
	Append []Field
	// Committed, when set, is called once after the account's share was
	// carried out: err is nil when every copy and redirect is durable,
	// else the account's Result error (a *RejectError when a filter
	// rejected it). It is not called when the whole message failed
	// (ErrFilter) or when an earlier filter had rejected the recipient.
	// A filter acts on a delivery here (a Sieve vacation response,
	// duplicate tracking: RFC 7352 §3 records only delivered messages).
	// It runs before Deliver returns; it must not block for long.
	Committed func(ctx context.Context, err error)
}

// Copy is one stored copy of a message (Verdict.Copies).
type Copy struct {
	// Mailbox is where it goes: "" is the default place (see
	// Verdict.Copies). A mailbox the account does not have means INBOX,
	// unless Create.
	Mailbox string
	// Flags the copy is stored with.
	Flags []string
	// Create makes a missing Mailbox (RFC 5490 §3.2, fileinto :create),
	// when the store can (an Account that is a MailboxCreator). A name
	// the store refuses means INBOX.
	Create bool
}

// Reply is an SMTP reply (RFC 5321 §4.2, RFC 3463 enhanced code).
type Reply struct {
	Code     int    // 4xx or 5xx
	Enhanced [3]int // class matches Code: 4.x.x or 5.x.x
	Text     string // printable ASCII, one line
}

// defaultReject is a Reject verdict's reply when it names none.
var defaultReject = Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: "Message refused by the recipient's filter"}

// Field is a header field a filter adds, e.g. Authentication-Results or
// X-Spam-Status. Value may be folded ("\r\n" followed by a space or tab).
type Field struct {
	Name  string
	Value string
}

// RejectError is a Result's error when a filter rejected the copy; smtpd
// and the queue give the sender its Reply.
type RejectError struct {
	Filter string
	Reply  Reply
}

func (e *RejectError) Error() string {
	r := e.Reply
	return fmt.Sprintf("delivery: rejected by filter %s: %d %d.%d.%d %s", e.Filter, r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// SMTPReply returns the reply the sender should get (smtpd answers any
// error with this method with its reply: filters' and the gate's).
func (e *RejectError) SMTPReply() (code int, enhanced [3]int, text string) {
	return e.Reply.Code, e.Reply.Enhanced, e.Reply.Text
}

// Temporary reports whether the sender should try again later (4xx).
func (e *RejectError) Temporary() bool { return e.Reply.Code/100 == 4 }

// Bounds on what a filter may hand back. A filter's output goes into
// every stored copy and onto the wire: it is checked like input.
const (
	// maxAddedHeaderBytes bounds the fields all filters add to one copy;
	// it stays well under the slack the queue allows above the message
	// size limit for trace fields (cmd/posthouse traceHeaderSlack).
	maxAddedHeaderBytes = 16 << 10
	// maxFieldLine is RFC 5322 §2.1.1's line limit without CRLF.
	maxFieldLine   = 998
	maxReplyText   = 400
	maxFlagLen     = 100
	maxFlags       = 50
	maxRedirects   = 20
	maxMailboxName = 1000
	// maxCopies bounds the copies one account gets (Sieve's actions are
	// bounded lower).
	maxCopies = 50
)

// plan is the composition of every filter's verdicts for one recipient.
type plan struct {
	action   Action
	reply    Reply
	by       string // the filter that rejected or discarded
	mailbox  string
	flags    []string
	fields   []block // in filter order
	redirect []string
	copies   []Copy  // nil: one copy
	bottom   []Field // Verdict.Append, in filter order
	// committed are the filters' Committed hooks, in filter order.
	committed []func(ctx context.Context, err error)
	added     int // bytes of fields
	// drop holds the indices in Message.added of added fields removed;
	// remove the message's own fields removed; refs counts the refs given.
	drop   []int
	remove []FieldRef
	refs   int
}

// block is the fields one verdict added. all is the index in
// Message.added of the first one for a verdict for all recipients
// (Decision.All), -1 for one recipient's.
type block struct {
	fields []Field
	all    int
}

// merge applies one filter's verdict. A reject wins over everything and
// is final; a discard is final but for a later reject; mailbox and flags
// come from the last filter that set them; fields, removals and redirects
// add up. shown are the added fields the filter was shown (Message.Added
// when it ran); all is where v's fields go in Message.added when v is the
// verdict for all recipients, else -1.
func (pl *plan) merge(filter string, v Verdict, shown []Field, all int) error {
	if pl.action == Reject {
		return nil
	}
	switch v.Action {
	case Reject:
		pl.action, pl.by, pl.reply = Reject, filter, v.Reply
		if pl.reply == (Reply{}) {
			pl.reply = defaultReject
		}
		if v.Committed != nil {
			pl.committed = append(pl.committed, v.Committed)
		}
		return nil
	case Discard:
		if pl.action != Discard {
			pl.action, pl.by = Discard, filter
		}
	}
	if v.Mailbox != "" {
		pl.mailbox = v.Mailbox
	}
	if v.Flags != nil {
		pl.flags = v.Flags
	}
	if len(v.Headers) > 0 {
		pl.fields = append(pl.fields, block{fields: v.Headers, all: all})
		for _, f := range v.Headers {
			pl.added += len(f.Name) + len(f.Value) + 4
		}
		if pl.added > maxAddedHeaderBytes {
			return fmt.Errorf("header fields of more than %d bytes in all", maxAddedHeaderBytes)
		}
	}
	if v.Copies != nil {
		pl.copies = v.Copies
	}
	if len(v.Append) > 0 {
		pl.bottom = append(pl.bottom, v.Append...)
		for _, f := range v.Append {
			pl.added += len(f.Name) + len(f.Value) + 4
		}
		if pl.added > maxAddedHeaderBytes {
			return fmt.Errorf("header fields of more than %d bytes in all", maxAddedHeaderBytes)
		}
	}
	if v.Committed != nil {
		pl.committed = append(pl.committed, v.Committed)
	}
	if len(v.Remove) > 0 {
		pl.refs += len(v.Remove)
		if pl.refs > maxRemoveRefs {
			return fmt.Errorf("more than %d header fields to remove", maxRemoveRefs)
		}
		drop, own := splitRefs(v.Remove, shown)
		pl.drop = append(pl.drop, drop...)
		pl.remove = append(pl.remove, own...)
	}
	for _, a := range v.Redirect {
		if !slices.Contains(pl.redirect, a) {
			pl.redirect = append(pl.redirect, a)
		}
	}
	if len(pl.redirect) > maxRedirects {
		return fmt.Errorf("more than %d redirect addresses", maxRedirects)
	}
	return nil
}

// header renders the added fields: each filter's block in front of the
// earlier ones', as if each had prepended its own (trace order, newest on
// top); within a block, in the order given. Added fields a later filter
// removed are left out.
func (pl *plan) header() string {
	var b strings.Builder
	for i := len(pl.fields) - 1; i >= 0; i-- {
		blk := pl.fields[i]
		for j, f := range blk.fields {
			if blk.all >= 0 && slices.Contains(pl.drop, blk.all+j) {
				continue
			}
			b.WriteString(f.Name)
			b.WriteString(": ")
			b.WriteString(f.Value)
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

// topFields lists the added fields in the order header renders them.
func (pl *plan) topFields() []PlannedField {
	var out []PlannedField
	for i := len(pl.fields) - 1; i >= 0; i-- {
		blk := pl.fields[i]
		for j, f := range blk.fields {
			idx := -1
			if blk.all >= 0 {
				idx = blk.all + j
				if slices.Contains(pl.drop, idx) {
					continue
				}
			}
			out = append(out, PlannedField{Field: f, Added: idx})
		}
	}
	return out
}

// filter runs every filter once, in order, and composes their verdicts
// into one plan per recipient. It stops early once every recipient is
// rejected: nothing a later filter says could change that.
func (p *Pipeline) filter(ctx context.Context, m *Message, log *slog.Logger) ([]plan, error) {
	plans := make([]plan, len(m.Recipients))
	m.plans = plans
	for _, f := range p.opts.Filters {
		if !slices.ContainsFunc(plans, func(pl plan) bool { return pl.action != Reject }) {
			break
		}
		name := f.Name()
		d, err := check(ctx, f, m, log)
		if err == nil {
			err = apply(plans, m.Recipients, name, d, m.added)
		}
		if err == nil {
			m.added = append(m.added, d.All.Headers...)
		}
		if err != nil {
			if !errors.Is(err, ErrFilter) {
				log.Error("filter failed", "filter", name, "err", err)
				err = fmt.Errorf("%w: %s: %w", ErrFilter, name, err)
			}
			return nil, err
		}
	}
	return plans, nil
}

// check calls one filter, turning a panic into an error: a filter bug
// fails the message temporarily and keeps the process (and the other
// messages) going.
func check(ctx context.Context, f Filter, m *Message, log *slog.Logger) (d Decision, err error) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("filter panicked", "filter", f.Name(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			d, err = Decision{}, fmt.Errorf("%w: %s panicked: %v", ErrFilter, f.Name(), v)
		}
	}()
	return f.Check(ctx, m)
}

// apply checks a decision and merges it into the plans. shown are the
// added fields the filter was shown; d.All's fields follow them.
func apply(plans []plan, rcpts []Recipient, filter string, d Decision, shown []Field) error {
	if err := d.All.validate(); err != nil {
		return err
	}
	for acct, v := range d.Rcpt {
		if !slices.ContainsFunc(rcpts, func(r Recipient) bool { return r.Account == acct }) {
			return fmt.Errorf("verdict for %q, not a recipient of this message", acct)
		}
		if err := v.validate(); err != nil {
			return fmt.Errorf("verdict for %s: %w", acct, err)
		}
	}
	for i, r := range rcpts {
		if err := plans[i].merge(filter, d.All, shown, len(shown)); err != nil {
			return err
		}
		if v, ok := d.Rcpt[r.Account]; ok {
			if err := plans[i].merge(filter, v, shown, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// validate checks what a filter produced before any of it is used.
func (v *Verdict) validate() error {
	switch v.Action {
	case Keep, Discard:
	case Reject:
		if v.Reply != (Reply{}) {
			if err := v.Reply.validate(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown action %d", v.Action)
	}
	if err := validateCopy(v.Mailbox, v.Flags); err != nil {
		return err
	}
	if len(v.Copies) > maxCopies {
		return fmt.Errorf("more than %d copies", maxCopies)
	}
	for _, c := range v.Copies {
		if err := validateCopy(c.Mailbox, c.Flags); err != nil {
			return err
		}
	}
	for _, f := range v.Headers {
		if err := f.validate(); err != nil {
			return err
		}
	}
	for _, f := range v.Append {
		if err := f.validate(); err != nil {
			return err
		}
	}
	if len(v.Remove) > maxRemoveRefs {
		return fmt.Errorf("more than %d header fields to remove", maxRemoveRefs)
	}
	for _, r := range v.Remove {
		if err := r.validate(); err != nil {
			return err
		}
	}
	for _, a := range v.Redirect {
		if _, ok := mailaddr.Domain(a); !ok {
			return fmt.Errorf("bad redirect address %q", a)
		}
	}
	return nil
}

// validateCopy checks a mailbox name and flags.
func validateCopy(mailbox string, flags []string) error {
	if len(mailbox) > maxMailboxName || strings.ContainsFunc(mailbox, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("bad mailbox name %q", mailbox)
	}
	if len(flags) > maxFlags {
		return fmt.Errorf("more than %d flags", maxFlags)
	}
	for _, f := range flags {
		if !validFlag(f) {
			return fmt.Errorf("bad flag %q", f)
		}
	}
	return nil
}

func (r Reply) validate() error {
	if r.Code < 400 || r.Code > 599 || r.Enhanced[0] != r.Code/100 ||
		r.Enhanced[1] < 0 || r.Enhanced[1] > 999 || r.Enhanced[2] < 0 || r.Enhanced[2] > 999 {
		return fmt.Errorf("bad reply code %d %d.%d.%d", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2])
	}
	if r.Text == "" || len(r.Text) > maxReplyText || strings.ContainsFunc(r.Text, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
		return fmt.Errorf("bad reply text %q", r.Text)
	}
	return nil
}

// Check reports whether the pipeline accepts f in a verdict, so that a
// filter can leave out a field it built from its input (a Sieve script's
// addheader) rather than fail the message.
func (f Field) Check() error { return f.validate() }

// validate accepts a field name of printable ASCII without a colon (RFC
// 5322 §2.2) and a value whose only line breaks are folds (CRLF before a
// space or tab, §2.2.3), with no NUL and no line over 998 octets.
func (f Field) validate() error {
	if f.Name == "" || len(f.Name) > 76 || strings.ContainsFunc(f.Name, func(c rune) bool { return c <= ' ' || c >= 0x7f || c == ':' }) {
		return fmt.Errorf("bad header field name %q", f.Name)
	}
	line := len(f.Name) + 2
	v := f.Value
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case 0, '\n':
			return fmt.Errorf("bad header field %s: NUL or bare LF", f.Name)
		case '\r':
			if i+2 >= len(v) || v[i+1] != '\n' || (v[i+2] != ' ' && v[i+2] != '\t') {
				return fmt.Errorf("bad header field %s: line break that is not a fold", f.Name)
			}
			i++
			line = -1
		}
		line++
		if line > maxFieldLine {
			return fmt.Errorf("bad header field %s: line longer than %d octets", f.Name, maxFieldLine)
		}
	}
	return nil
}

// validFlag accepts the system flags a message may be stored with and
// keywords that are IMAP atoms (RFC 9051 §9 flag-keyword).
func validFlag(f string) bool {
	if f == "" || len(f) > maxFlagLen {
		return false
	}
	if f[0] == '\\' {
		switch strings.ToLower(f) {
		case `\seen`, `\answered`, `\flagged`, `\deleted`, `\draft`:
			return true
		}
		return false
	}
	return !strings.ContainsFunc(f, func(c rune) bool {
		return c <= ' ' || c >= 0x7f || strings.ContainsRune(`(){%*"\]`, c)
	})
}
