package imapd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// APPEND (RFC 9051 §6.3.12) with MULTIAPPEND (RFC 3502) and CATENATE
// (RFC 4469). The library hands the session each message of the command
// in turn (a patch); every message is spooled (in memory, then in one
// temporary file per command), and only once the command has ended
// correctly are they appended, in order. A dropped connection, a syntax error, a message over
// a limit or a bad URL therefore stores nothing. If the store fails part
// way (quota reached meanwhile, I/O), the messages already appended are
// flagged \Deleted and expunged by UID, and the command answers NO.

// Limits of one APPEND command (the RFCs set none).
const (
	// maxAppendMessages bounds the messages of one MULTIAPPEND.
	maxAppendMessages = 1000
	// maxCatenateParts bounds the parts of one CATENATE message.
	maxCatenateParts = 1000
	// maxCatenateURLs bounds the URL parts of one command: each opens a
	// stored message.
	maxCatenateURLs = 10000
	// minAppendCommandBytes: one command spools at most this many bytes,
	// or MaxAppendSize if that is more.
	minAppendCommandBytes = 1 << 30
)

var (
	errTooManyMessages = no(imap.ResponseCodeLimit, fmt.Sprintf("At most %d messages in one APPEND", maxAppendMessages))
	errTooManyParts    = no(imap.ResponseCodeLimit, fmt.Sprintf("At most %d parts in one CATENATE", maxCatenateParts))
	errTooManyURLs     = no(imap.ResponseCodeLimit, fmt.Sprintf("At most %d URLs in one APPEND", maxCatenateURLs))
	errMessageTooBig   = no(imap.ResponseCodeTooBig, "Message over the APPEND size limit")
	errCommandTooBig   = no(imap.ResponseCodeTooBig, "Messages over the size limit of one APPEND command")
)

// spooled is one message of the command, at [off, off+size) in the spool.
type spooled struct {
	off, size int64
	binary    bool // a literal8 (or a CATENATE with one): binary.go
	opts      mailstore.AppendOptions
}

// appendSpool holds the messages of one command: in memory while they
// fit in spoolInMemory, then in one temporary file.
type appendSpool struct {
	mem    []byte   // the spool until it outgrows spoolInMemory
	pooled *[]byte  // mem's buffer when it came from spoolBufs
	tried  bool     // spoolBufs was asked (once per command)
	f      *os.File // the spool once it did (nil until then)
	size   int64
	msgs   []spooled
}

// spoolInMemory is how much of a command's messages are spooled in memory
// before a temporary file takes them all: most mail is smaller, and
// creating, writing, reading and closing a file was a tenth of what an
// APPEND cost the server under imaptest's stress load.
const spoolInMemory = 128 << 10

// spoolBufs are in-memory spools of spoolInMemory bytes, reused from one
// command to the next: growing a fresh buffer for each message (and
// io.Copy's own buffer on the way) was a quarter of the bytes the server
// allocated under imaptest's stress load. At most maxMemSpools are out at
// once (32 MiB); past that a command's spool grows as it needs.
var (
	spoolBufs     = sync.Pool{New: func() any { b := make([]byte, 0, spoolInMemory); return &b }}
	memSpools     atomic.Int64
	spoolCopyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

const maxMemSpools = 256

func newAppendSpool() (*appendSpool, error) {
	return &appendSpool{}, nil
}

func (sp *appendSpool) close() {
	sp.release()
	if sp.f != nil {
		sp.f.Close()
	}
}

// grab takes a pooled buffer for the spool's first bytes, if one is free.
func (sp *appendSpool) grab() {
	if sp.tried {
		return
	}
	sp.tried = true
	if memSpools.Add(1) > maxMemSpools {
		memSpools.Add(-1)
		return
	}
	sp.pooled = spoolBufs.Get().(*[]byte)
	sp.mem = (*sp.pooled)[:0]
}

// release gives the pooled buffer back; nothing reads mem afterwards.
func (sp *appendSpool) release() {
	if sp.pooled == nil {
		return
	}
	*sp.pooled = (*sp.pooled)[:0]
	spoolBufs.Put(sp.pooled)
	memSpools.Add(-1)
	sp.pooled, sp.mem = nil, nil
}

// Write appends to the spool; a failure is ours, not the client's.
func (sp *appendSpool) Write(p []byte) (int, error) {
	if sp.f == nil && sp.size+int64(len(p)) <= spoolInMemory {
		sp.grab()
		sp.mem = append(sp.mem, p...)
		sp.size += int64(len(p))
		return len(p), nil
	}
	if sp.f == nil {
		f, err := os.CreateTemp("", "posthouse-append-*")
		if err != nil {
			return 0, &spoolError{err}
		}
		// Unlinked at once: the file goes away with the descriptor.
		os.Remove(f.Name())
		if _, err := f.Write(sp.mem); err != nil {
			f.Close()
			return 0, &spoolError{err}
		}
		sp.f = f
		sp.release()
		sp.mem = nil
	}
	n, err := sp.f.Write(p)
	sp.size += int64(n)
	if err != nil {
		err = &spoolError{err}
	}
	return n, err
}

// ReadFrom spools r to its end (io.Copy's path): into the pooled buffer's
// free room directly, the rest through Write with a pooled copy buffer. A
// read error is the client's, as r returned it.
func (sp *appendSpool) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	if sp.f == nil {
		sp.grab()
	}
	for sp.f == nil && sp.pooled != nil && len(sp.mem) < cap(sp.mem) {
		m, err := r.Read(sp.mem[len(sp.mem):cap(sp.mem)])
		sp.mem = sp.mem[:len(sp.mem)+m]
		sp.size += int64(m)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
	buf := spoolCopyBufs.Get().(*[]byte)
	defer spoolCopyBufs.Put(buf)
	m, err := io.CopyBuffer(spoolWriter{sp}, r, *buf)
	return n + m, err
}

// spoolWriter is the spool's Write alone, so that io.CopyBuffer uses the
// buffer it is given.
type spoolWriter struct{ sp *appendSpool }

func (w spoolWriter) Write(p []byte) (int, error) { return w.sp.Write(p) }

// readerAt reads the spool.
func (sp *appendSpool) readerAt() io.ReaderAt {
	if sp.f != nil {
		return sp.f
	}
	return bytes.NewReader(sp.mem)
}

// spoolError is a failure to write the spool (ours, logged); any other
// error while copying into it is the client's (the connection).
type spoolError struct{ err error }

func (e *spoolError) Error() string { return "spool: " + e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

// body is message i as the store gets it: binary parts base64-encoded.
func (sp *appendSpool) body(m spooled) (io.Reader, func(), error) {
	sec := io.NewSectionReader(sp.readerAt(), m.off, m.size)
	if m.binary {
		conv, err := binaryToBase64(sec, m.size)
		if err != nil {
			return nil, nil, err
		}
		if conv != nil {
			return conv, func() { conv.Close() }, nil
		}
	}
	return sec, func() {}, nil
}

// Append stores one message read by the library itself. The library
// hands every APPEND of a logged-in session to AppendMessages instead;
// this is the same path for one message.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	mb, err := s.appendTarget(name)
	if err != nil {
		return nil, err
	}
	sp, err := newAppendSpool()
	if err != nil {
		return nil, mapError(s.log, "append", err, errDest)
	}
	defer sp.close()
	if _, err := io.Copy(sp, r); err != nil {
		return nil, s.spoolFailed(err)
	}
	sp.msgs = append(sp.msgs, spooled{size: sp.size, binary: options.Binary, opts: mailstore.AppendOptions{
		Flags:        storableFlags(options.Flags),
		InternalDate: options.Time,
	}})
	return s.storeSpooled(mb, sp)
}

// appendTarget is the mailbox an APPEND names. RFC 3502 §6.3.11: a
// missing one is [TRYCREATE], before any message is read.
func (s *session) appendTarget(name string) (mailstore.Mailbox, error) {
	name = canonName(name)
	if err := checkName(name); err != nil {
		return mailstore.Mailbox{}, err
	}
	if sp := s.srv.opts.Space; sp != nil && sp.Low() {
		s.log.Info("append refused: free disk space below the reserve")
		return mailstore.Mailbox{}, errNoSpace
	}
	ctx, cancel := s.op()
	defer cancel()
	mb, err := s.acct.Mailbox(ctx, name)
	if err != nil {
		return mailstore.Mailbox{}, mapError(s.log, "append", err, errDest)
	}
	return mb, nil
}

// AppendMessages reads every message of an APPEND into the spool, then
// stores them all, or none.
func (s *session) AppendMessages(name string, r *imapserver.AppendReader) (*imap.AppendData, error) {
	mb, err := s.appendTarget(name)
	if err != nil {
		return nil, err
	}
	sp, err := newAppendSpool()
	if err != nil {
		return nil, mapError(s.log, "append", err, errDest)
	}
	defer sp.close()

	maxMsg := s.srv.opts.MaxAppendSize
	maxCmd := max(maxMsg, minAppendCommandBytes)
	urls := 0
	for {
		// A literal exactly at what is left is accepted; past the end
		// of the command's budget, the check below refuses it.
		left := max(maxCmd-sp.size, 1)
		m, err := r.Next(min(maxMsg, left))
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(sp.msgs) == maxAppendMessages {
			return nil, errTooManyMessages
		}
		msg := spooled{off: sp.size, binary: m.Options.Binary, opts: mailstore.AppendOptions{
			Flags:        storableFlags(m.Options.Flags),
			InternalDate: m.Options.Time,
		}}
		if m.Catenate {
			msg.binary, err = s.spoolCatenate(sp, m, min(maxMsg, left), &urls)
		} else {
			_, err = io.Copy(sp, m.Literal)
		}
		if err != nil {
			return nil, s.spoolFailed(err)
		}
		msg.size = sp.size - msg.off
		if sp.size > maxCmd {
			return nil, errCommandTooBig
		}
		sp.msgs = append(sp.msgs, msg)
	}
	return s.storeSpooled(mb, sp)
}

// spoolFailed sorts a failure while spooling: ours (logged, UNAVAILABLE),
// or the client's and the reply's as it is (the connection dropped,
// BADURL, TOOBIG).
func (s *session) spoolFailed(err error) error {
	var se *spoolError
	if errors.As(err, &se) {
		return mapError(s.log, "append spool", err, errDest)
	}
	return err
}

// spoolCatenate spools the parts of a CATENATE message (RFC 4469 §5), at
// most limit bytes, and says whether a TEXT part was a literal8.
func (s *session) spoolCatenate(sp *appendSpool, m *imapserver.AppendMessage, limit int64, urls *int) (binary bool, err error) {
	start := sp.size
	for parts := 0; ; parts++ {
		left := limit - (sp.size - start)
		// A literal exactly at the limit is accepted; one byte more
		// than the limit is refused below.
		p, err := m.NextPart(max(left, 1))
		if err == io.EOF {
			return binary, nil
		}
		if err != nil {
			return false, err
		}
		if parts == maxCatenateParts {
			return false, errTooManyParts
		}
		if p.URL != "" {
			if *urls++; *urls > maxCatenateURLs {
				return false, errTooManyURLs
			}
			if err := s.catenateURL(p.URL, &capWriter{w: sp, left: left}); err != nil {
				return false, err
			}
			continue
		}
		binary = binary || p.Binary
		if _, err := io.Copy(sp, p.Text); err != nil {
			return false, err
		}
		if sp.size-start > limit {
			return false, errMessageTooBig
		}
	}
}

// capWriter fails a write that would take it over left bytes.
type capWriter struct {
	w    io.Writer
	left int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, errMessageTooBig
	}
	n, err := c.w.Write(p)
	c.left -= int64(n)
	return n, err
}

// catenateURL writes the message or section a CATENATE URL names
// (RFC 4469 §5) to w. The URL must name a message of this user on this
// server; one that does not, or names no message or section, gets
// NO [BADURL]. The section is located by mimeparse, as for FETCH
// BODY[section]<partial>, and streamed.
func (s *session) catenateURL(raw string, w io.Writer) error {
	u, err := parseIMAPURL(raw)
	if err != nil {
		return badURL(raw, "Not an IMAP URL naming a message part")
	}
	if u.absolute {
		if s.srv.opts.Hostname == "" || !strings.EqualFold(u.host, s.srv.opts.Hostname) {
			return badURL(raw, "URL names another server")
		}
		if !strings.EqualFold(u.user, s.user) {
			return badURL(raw, "URL names another user")
		}
	}
	ctx, cancel := s.op()
	defer cancel()
	var mb mailstore.Mailbox
	if u.mailbox == "" {
		if s.sel == nil {
			return badURL(raw, "Relative URL without a selected mailbox")
		}
		mb = s.sel.mailbox
	} else {
		name := canonName(u.mailbox)
		if checkName(name) != nil {
			return badURL(raw, "No such mailbox")
		}
		mb, err = s.acct.Mailbox(ctx, name)
		if errors.Is(err, mailstore.ErrNoSuchMailbox) || errors.Is(err, mailstore.ErrBadMailboxName) {
			return badURL(raw, "No such mailbox")
		}
		if err != nil {
			return mapError(s.log, "catenate", err, errSource)
		}
	}
	if u.uidValidity != 0 && u.uidValidity != mb.UIDValidity {
		return badURL(raw, "UIDVALIDITY differs")
	}
	f, size, err := s.acct.OpenMessage(ctx, mb.ID, u.uid)
	if errors.Is(err, mailstore.ErrNoSuchMessage) || errors.Is(err, mailstore.ErrNoSuchMailbox) {
		return badURL(raw, "No such message")
	}
	if err != nil {
		return mapError(s.log, "catenate", err, errSource)
	}
	defer f.Close()
	sec, err := mimeparse.NewMessage(f, size).BodySection(&u.section)
	if errors.Is(err, mimeparse.ErrNotFound) {
		return badURL(raw, "No such section")
	}
	if err != nil {
		return mapError(s.log, "catenate", err, errSource)
	}
	if _, err := sec.WriteTo(w); err != nil {
		var se *spoolError
		if errors.Is(err, errMessageTooBig) || errors.As(err, &se) {
			return err
		}
		return mapError(s.log, "catenate", err, errSource)
	}
	return nil
}

// maxBadURLEcho bounds the URL echoed in [BADURL url].
const maxBadURLEcho = 1024

// badURL is NO [BADURL url] (RFC 4469 §6): the URL is echoed as
// url-resp-text, without CR, LF, "]" or non-ASCII bytes.
func badURL(raw, text string) error {
	echo := strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == ']' {
			return -1
		}
		return r
	}, raw)
	if len(echo) > maxBadURLEcho {
		echo = echo[:maxBadURLEcho]
	}
	return no(imap.ResponseCode("BADURL "+echo), text)
}

// storeSpooled appends the spooled messages in order. When the account
// cannot hold them all, nothing is stored; when a store call fails part
// way, the messages it already stored are expunged again.
func (s *session) storeSpooled(mb mailstore.Mailbox, sp *appendSpool) (*imap.AppendData, error) {
	// The command reads the account's quotas once (the store asks the
	// directory at the usage check and again for each message).
	base := auth.WithLookupMemo(s.ctx)
	ctx, cancel := context.WithTimeout(base, opTimeout)
	used, limit, err := s.acct.Usage(ctx)
	cancel()
	if err != nil {
		return nil, mapError(s.log, "append", err, errDest)
	}
	if limit > 0 && used+sp.size > limit {
		return nil, mapError(s.log, "append", mailstore.ErrOverQuota, errDest)
	}
	stored := make([]mailstore.AppendResult, 0, len(sp.msgs))
	// Into the mailbox this session has selected read-write, the append
	// itself claims each message for \Recent when it can (saving the
	// poll's write after every APPEND); the claims are taken only once
	// the command succeeds.
	sel := s.sel
	claim := sel != nil && sel.mailbox.ID == mb.ID && sel.recentMode == recentClaim
	for _, m := range sp.msgs {
		m.opts.ClaimRecent = claim
		res, err := s.storeOne(base, mb.Name, sp, m)
		if err == nil && len(stored) > 0 && res.MailboxID != stored[0].MailboxID {
			// The mailbox was deleted and made again meanwhile.
			stored = append(stored, res)
			err = errors.New("imapd: append target replaced during MULTIAPPEND")
		}
		if err != nil {
			s.unstore(stored)
			return nil, mapError(s.log, "append", err, errDest)
		}
		stored = append(stored, res)
	}
	if len(stored) == 0 {
		return nil, nil
	}
	if claim {
		for _, res := range stored {
			if res.Recent && res.MailboxID == sel.mailbox.ID {
				// What claimRecent up to UID+1 would have done: every
				// UID below was claimed when the append took it.
				sel.recent.AddNum(res.UID)
				sel.claimedTo = max(sel.claimedTo, res.UID+1)
			}
		}
	}
	s.log.Debug("append", "mailbox", mb.Name, "count", len(stored), "size", sp.size)
	data := &imap.AppendData{UIDValidity: stored[0].UIDValidity, UID: stored[0].UID}
	if len(stored) > 1 {
		for _, res := range stored {
			data.UIDs.AddNum(res.UID)
		}
	}
	return data, nil
}

func (s *session) storeOne(base context.Context, name string, sp *appendSpool, m spooled) (mailstore.AppendResult, error) {
	ctx, cancel := context.WithTimeout(base, opTimeout)
	defer cancel()
	body, done, err := sp.body(m)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	defer done()
	return s.acct.Append(ctx, name, body, m.opts)
}

// unstore expunges the messages a failed MULTIAPPEND stored (RFC 3502
// §6.3.11: all or none), by UID, whatever the session's state.
func (s *session) unstore(stored []mailstore.AppendResult) {
	if len(stored) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), opTimeout)
	defer cancel()
	byMailbox := map[int64][]imap.UID{}
	for _, res := range stored {
		byMailbox[res.MailboxID] = append(byMailbox[res.MailboxID], res.UID)
	}
	for id, uids := range byMailbox {
		set := mailstore.UIDSetOf(uids)
		_, err := s.acct.StoreFlags(ctx, id, set, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0)
		if err == nil {
			_, err = s.acct.Expunge(ctx, id, &set)
		}
		if err != nil {
			s.log.Error("append rollback failed", "err", err, "count", len(uids))
		}
	}
}
