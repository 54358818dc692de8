package smtpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// maxHeaderBytes bounds how much of a message's header we parse (for the
// Message-ID in logs and, on submission, the missing Date and Message-ID).
// A longer header is stored untouched. It is the store's limit, so SMTP
// and the store (delivery and APPEND) read the same fields.
const maxHeaderBytes = mimeparse.MaxHeaderBytes

// spoolBufSize is the copy buffer from the connection to the spool file.
const spoolBufSize = 64 << 10

var spoolBufs = sync.Pool{New: func() any { b := make([]byte, spoolBufSize); return &b }}

// Data receives the message (in memory or a spool file, receive), then
// makes a durable copy in every local account and one queue entry for the
// foreign recipients. It returns a 250 reply (as an *smtp.SMTPError with
// code 250, so the reply can carry our message id) only when all of them
// are durable.
func (s *session) Data(r io.Reader) (err error) {
	defer s.observe("data", &err)
	if h := s.s.dataHook.Load(); h != nil {
		(*h)(s.conn)
	}
	s.mu.Lock()
	env := s.env
	helo := s.helo
	s.mu.Unlock()
	if !env.active || len(env.rcpts) == 0 {
		return errNeedRcpt
	}
	if s.conn.hangup.Load() {
		// Pipelined behind our last reply (a 421): nobody hears the
		// answer, so nothing may be accepted.
		return errShuttingDown
	}
	s.conn.advanced.Store(true)
	srv := s.s
	if !s.conn.joinBody() {
		// A transfer our edge did not see begin (a BDAT pipelined in
		// bulk behind a message): counted only while not shutting down.
		srv.mu.Lock()
		if srv.closed {
			srv.mu.Unlock()
			return errShuttingDown
		}
		srv.inflight.Add(1)
		srv.inflightN.Add(1)
		srv.mu.Unlock()
	}
	defer srv.inflight.Done()
	defer srv.inflightN.Add(-1)
	s.conn.setBusy(true)
	defer s.conn.setBusy(false)

	// DATA gets its own deadline for the whole upload; BDAT chunks (read
	// by go-smtp while we read the pipe) keep the per-command one.
	if _, isBDAT := r.(*io.PipeReader); !isBDAT {
		s.conn.setDataDeadline(srv.opts.DataTimeout)
	}
	start := time.Now()
	id := fmt.Sprintf("%s.%d", s.conn.id, s.conn.messages.Add(1))
	log := s.log.With("id", id)

	spool, size, done, err := s.receive(r)
	if done != nil {
		// Delivery and queueing are done with it when Data returns.
		defer done()
	}
	if err != nil {
		_, isBDAT := r.(*io.PipeReader)
		switch {
		case isTimeout(err):
			// The rest of the message is still on its way: hang up after
			// the reply rather than read it as commands.
			s.conn.closeAfterReply()
		case !isBDAT && (errors.Is(err, errBareLF) || errors.Is(err, errBareCR)):
			// A client that ends lines with a bare LF or CR may end the
			// data with one too ("<LF>.<CRLF>"), which is no end for us:
			// waiting for <CRLF>.<CRLF> would hold both sides until the
			// data timeout, and reading on risks taking what a smuggler
			// hid after it as commands. Answer now and hang up.
			s.conn.stopReading()
		}
		reply, internal := toSMTPError(err)
		switch {
		case internal:
			log.Error("receiving message", "err", err)
		case reply == errLocal || reply == errDataTimeout:
			log.Warn("message not received", "err", err, "size", size)
		default:
			log.Warn("message refused", "reason", reply.Message, "size", size)
		}
		return reply
	}

	if s.conn.readErr.Load() || s.conn.hangup.Load() {
		// go-smtp ends a BDAT chunk cut short by EOF as if it were
		// complete: a read error on the way means the body is not whole.
		log.Warn("message not received", "err", "connection lost", "size", size)
		return errLocal
	}

	hdr := readHeaderInfo(io.NewSectionReader(spool, 0, size))
	if hdr.messageID != "" {
		log = log.With("msgid", hdr.messageID)
	}
	addFrom, err := s.checkHeaderSender(hdr, env.from, log)
	if err != nil {
		return err
	}
	d := accepted{s: s, env: &env, log: log, spool: spool, size: size, id: id, helo: helo}
	txCtx := env.ctx
	if txCtx == nil {
		txCtx = s.ctx
	}
	ctx, cancel := context.WithTimeout(txCtx, srv.opts.DeliveryTimeout)
	defer cancel()
	d.trace = s.traceHeader(id, helo, hdr, &env) + addFrom
	if srv.opts.Mode == ModeMTA {
		d.skip = forgedAuthResults(spool, size, srv.opts.Hostname)
		if len(d.skip) > 0 {
			log.Warn("removed Authentication-Results fields claiming to be ours", "count", len(d.skip))
		}
	}
	if err := d.run(ctx); err != nil {
		return err
	}
	s.conn.junk.Store(0)
	log.Info("message accepted", "from", env.from, "size", size,
		"rcpts", len(env.rcpts), "accounts", d.accounts, "remote", len(env.remote),
		"dur", time.Since(start).Round(time.Millisecond))
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Message accepted for delivery, id " + id}
}

// memSpools counts the messages held whole in a spoolBufs buffer rather
// than a spool file; past maxMemSpools at once (16 MiB), messages go to
// files whatever their size.
var memSpools atomic.Int64

const maxMemSpools = 256

// receive reads the body, checked by bodyFilter, for delivery to read back:
// a message that fits one spoolBufs buffer (64 KiB, most mail) stays in
// it; a larger one, or any while maxMemSpools are held, goes to the
// connection's anonymous spool file (spool.go). Either way nothing is left
// behind by a vanished client or a crash. done gives the buffer or file
// back once nothing reads the body (nil when there is nothing to give).
func (s *session) receive(r io.Reader) (body io.ReaderAt, size int64, done func(), err error) {
	fr := &bodyFilter{r: r, max: s.s.opts.MaxMessageBytes}
	buf := spoolBufs.Get().(*[]byte)
	n := 0
	if memSpools.Add(1) <= maxMemSpools {
		for n < len(*buf) && err == nil {
			var m int
			m, err = fr.Read((*buf)[n:])
			n += m
		}
		if err == io.EOF {
			release := func() {
				spoolBufs.Put(buf)
				memSpools.Add(-1)
			}
			if err = fr.finish(); err != nil {
				release()
				return nil, int64(n), nil, err
			}
			return bytes.NewReader((*buf)[:n]), int64(n), release, nil
		}
	}
	memSpools.Add(-1)
	if err != nil {
		spoolBufs.Put(buf)
		return nil, int64(n), nil, err
	}
	f, err := s.conn.spool.take(s.s.opts.SpoolDir)
	if err != nil {
		spoolBufs.Put(buf)
		return nil, int64(n), nil, err
	}
	written := int64(0)
	if n > 0 {
		var w int
		w, err = f.Write((*buf)[:n])
		written = int64(w)
	}
	if err == nil {
		// Hidden from CopyBuffer as a ReaderFrom: *os.File's ReadFrom
		// would copy through a 32 KB buffer of its own, allocated per
		// message.
		var c int64
		c, err = io.CopyBuffer(struct{ io.Writer }{f}, fr, *buf)
		written += c
	}
	spoolBufs.Put(buf)
	if err == nil {
		err = fr.finish()
	}
	if err != nil {
		s.conn.spool.give(f, written)
		return nil, written, nil, err
	}
	return f, written, func() { s.conn.spool.give(f, written) }, nil
}

// bodyFilter passes the dot-unstuffed body through and refuses what we
// must not store: bare CR or LF (RFC 5321 §2.3.8; see the package doc for
// why we refuse rather than normalize), NUL, and more than max octets.
//
// go-smtp only ends DATA at <CRLF>.<CRLF> and only starts a line after
// CRLF, so <LF>.<LF> and <CR>.<CR> reach us as ordinary bytes; refusing
// bare line endings here means such a message is never stored or relayed.
type bodyFilter struct {
	r      io.Reader
	max    int64
	n      int64
	prevCR bool
}

func (f *bodyFilter) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if n > 0 {
		if ferr := f.check(b[:n]); ferr != nil {
			return 0, ferr
		}
	}
	f.n += int64(n)
	if f.n > f.max {
		return 0, errBodyTooBig
	}
	return n, err
}

// check scans p, the next bytes of the body. The common case, a clean
// chunk, is decided with the vectorised byte searches (bytes.IndexByte,
// bytes.Count), several times faster than a loop over each byte; a chunk
// that is not clean is scanned byte by byte (checkSlow) for its first
// offence, so the error is the same either way.
func (f *bodyFilter) check(p []byte) error {
	if f.clean(p) {
		f.prevCR = p[len(p)-1] == '\r'
		return nil
	}
	return f.checkSlow(p)
}

// clean reports whether p (non-empty, following a CR if f.prevCR) holds no
// NUL and no bare LF, and no bare CR but for one at its very end, whose LF
// may come with the next read.
func (f *bodyFilter) clean(p []byte) bool {
	if f.prevCR && p[0] != '\n' || bytes.IndexByte(p, 0) >= 0 {
		return false
	}
	// Every LF must follow a CR; those CRs are paired. Any other CR is
	// bare unless it ends p.
	paired := 0
	for i := 0; ; {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			break
		}
		k := i + j
		switch {
		case k > 0 && p[k-1] == '\r':
			paired++
		case k == 0 && f.prevCR:
		default:
			return false
		}
		i = k + 1
	}
	trailing := 0
	if p[len(p)-1] == '\r' {
		trailing = 1
	}
	return bytes.Count(p, crByte) == paired+trailing
}

var crByte = []byte{'\r'}

// checkSlow scans p byte by byte and returns its first offence.
func (f *bodyFilter) checkSlow(p []byte) error {
	for _, c := range p {
		if f.prevCR && c != '\n' {
			return errBareCR
		}
		switch c {
		case '\n':
			if !f.prevCR {
				return errBareLF
			}
		case 0:
			return errNUL
		}
		f.prevCR = c == '\r'
	}
	return nil
}

// finish checks the end of the body.
func (f *bodyFilter) finish() error {
	if f.prevCR {
		return errBareCR
	}
	return nil
}

// headerInfo is what we learn from the message header.
type headerInfo struct {
	known        bool // the whole header was parsed
	messageID    string
	hasMessageID bool
	hasDate      bool
	from, sender []string // the From and Sender field values (sendas.go)
}

// readHeaderInfo parses the message header by the store's rule
// (mimeparse.ReadHeader: at most maxHeaderBytes).
func readHeaderInfo(r io.Reader) headerInfo {
	h, complete, err := mimeparse.ReadHeader(r)
	if err != nil || !complete {
		// The header may go on past what we read.
		return headerInfo{}
	}
	mid := strings.TrimSpace(h.Get("Message-Id"))
	return headerInfo{
		known:        true,
		messageID:    sanitizeLogValue(mid, 200),
		hasMessageID: mid != "",
		hasDate:      h.Has("Date"),
		from:         h.Values("From"),
		sender:       h.Values("Sender"),
	}
}

// sanitizeLogValue keeps a client-supplied value printable and short.
func sanitizeLogValue(v string, max int) string {
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
	if len(v) > max {
		v = v[:max]
	}
	return v
}

// Delivery is the local delivery pipeline (*delivery.Pipeline): it
// resolves the local recipients to accounts, runs the filters, and stores
// one durable copy per account with its Return-Path. Deliver returns when
// every copy it reports as delivered is durable. A Result's Err is one
// toSMTPError translates: a full mailbox, an unknown user, a filter's
// reply (*delivery.RejectError), or an internal failure.
type Delivery interface {
	Deliver(ctx context.Context, req *delivery.Request) delivery.Outcome
}

// accepted makes one accepted message durable for every recipient.
type accepted struct {
	s        *session
	env      *envelope // Data's copy of the transaction
	log      *slog.Logger
	spool    io.ReaderAt // the message as received (receive)
	size     int64
	trace    string     // our trace (and, on submission, added) header fields
	skip     [][2]int64 // byte ranges of the message left out (forged fields)
	id       string     // our message id
	helo     string     // the client's EHLO name
	accounts int        // local accounts, for the log
}

// message returns the message as we pass it on: our trace fields and the
// spooled message without the skipped ranges, re-readable.
func (d *accepted) message() *io.SectionReader {
	return readerat.Concat(readerat.String(d.trace), readerat.Cut(io.NewSectionReader(d.spool, 0, d.size), d.skip))
}

// client describes the session's client for the delivery filters.
func (s *session) client(helo string) delivery.Client {
	user, _ := s.authenticated()
	c := delivery.Client{IP: s.conn.remote, Helo: helo, User: user}
	if t := s.tls(); t != nil {
		c.TLSVersion, c.TLSCipher = t.Version, t.CipherSuite
	}
	return c
}

// run has the local copies made and queues foreign recipients, then
// decides the single DATA reply; see the package doc, "Partial failure".
func (d *accepted) run(ctx context.Context) error {
	s := d.s
	env := d.env
	msg := d.message()

	// failed: temporary trouble, retried; refused: a filter's permanent
	// verdict, which a retry through the queue must not undo.
	var failed, refused []delivery.Result
	delivered := 0
	if len(env.local) > 0 {
		out := s.s.opts.Delivery.Deliver(ctx, &delivery.Request{
			Envelope: delivery.Envelope{
				Source: delivery.Source(s.s.opts.Mode.String()),
				ID:     d.id,
				From:   env.from,
				UTF8:   env.utf8,
				Client: s.client(d.helo),
			},
			Rcpts: env.local,
			Body:  msg,
			Log:   d.log,
		})
		d.accounts = len(out.Results)
		for _, r := range out.Results {
			switch {
			case r.Err == nil:
				delivered++
			case refusal(r.Err):
				refused = append(refused, r)
			default:
				failed = append(failed, r)
			}
		}
		if len(refused) > 0 && delivered == 0 && len(failed) == 0 {
			// Every local copy was refused by a filter (a DMARC reject,
			// say): the verdict is the message's. The foreign targets of
			// aliases among the recipients do not get it either, and the
			// client gets the refusal.
			d.log.Info("refused by the delivery filters", "accounts", len(refused), "aliases_not_queued", len(out.Remote))
			return replyFor(refused, nil)
		}
		var extra []string
		for _, r := range out.Remote {
			if !env.remoteSet[r] && !slices.Contains(extra, r) {
				extra = append(extra, r)
			}
		}
		if len(extra) > 0 {
			// Clipped: the session's envelope shares the array.
			env.remote = append(slices.Clip(env.remote), extra...)
		}
	}

	var queueErr error
	if len(env.remote) > 0 {
		id, err := s.s.opts.Queue.Enqueue(ctx, env.from, env.remote, io.NewSectionReader(msg, 0, msg.Size()))
		if err != nil {
			queueErr = err
			d.log.Error("queueing for foreign recipients", "rcpts", len(env.remote), "err", err)
		} else {
			delivered++
			d.log.Info("queued", "queueid", id, "rcpts", len(env.remote), "size", d.size)
		}
	}

	if len(failed) == 0 && len(refused) == 0 && queueErr == nil {
		return nil
	}
	if delivered == 0 {
		// Nothing was stored: the client may retry the whole message.
		return replyFor(append(failed, refused...), queueErr)
	}

	// Partial refusal: the sender learns of it from a DSN, sent now; a
	// retry would run the filters again, or (through the queue) not all.
	if len(refused) > 0 {
		if err := s.s.opts.Queue.Bounce(ctx, env.from, d.id, io.NewSectionReader(msg, 0, msg.Size()), refused); err != nil {
			d.log.Error("partial refusal: no DSN for the refused recipients", "rcpts", len(refused), "err", err)
		}
		if len(failed) == 0 && queueErr == nil {
			return nil
		}
	}

	// Partial failure: some copies are durable, so a retry by the client
	// would duplicate them. Hand the failed accounts to the queue, which
	// retries and, in the end, bounces them.
	var retry []string
	for _, r := range failed {
		retry = append(retry, r.Rcpt)
	}
	if queueErr != nil {
		retry = append(retry, env.remote...)
	}
	if s.s.opts.Queue != nil && len(retry) > 0 {
		id, err := s.s.opts.Queue.Enqueue(ctx, env.from, retry, io.NewSectionReader(msg, 0, msg.Size()))
		if err == nil {
			d.log.Warn("partial delivery, failed recipients queued for retry", "queueid", id, "rcpts", len(retry))
			return nil
		}
		d.log.Error("queueing failed recipients", "rcpts", len(retry), "err", err)
	}
	// Last resort: a duplicate is better than a loss.
	d.log.Error("partial delivery, asking the client to retry the whole message", "failed", len(retry), "delivered", delivered)
	return errLocal
}

// replyFor is the one DATA reply when nothing was stored or queued: the
// client may retry the whole message. A temporary failure wins over a
// permanent one.
func replyFor(failed []delivery.Result, queueErr error) *smtp.SMTPError {
	var reply *smtp.SMTPError
	errs := []error{queueErr}
	for _, r := range failed {
		errs = append(errs, r.Err)
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		r, _ := toSMTPError(err)
		if reply == nil || (reply.Code/100 == 5 && r.Code/100 == 4) {
			reply = r
		}
	}
	return reply
}

// refusal reports whether a local copy's error is a filter's permanent
// verdict (5xx).
func refusal(err error) bool {
	var re *delivery.RejectError
	return errors.As(err, &re) && re.Reply.Code/100 == 5
}

// traceHeader builds the fields we add in front of the message: Received
// (RFC 5321 §4.4) and, on submission, Message-ID and Date when the client
// left them out (RFC 6409 §8.2, §8.3).
func (s *session) traceHeader(id, helo string, hdr headerInfo, env *envelope) string {
	now := s.s.opts.Now()
	user, _ := s.authenticated()
	var b strings.Builder
	b.WriteString(receivedHeader(receivedInfo{
		helo:     helo,
		remote:   s.conn.remote,
		hostname: s.s.opts.Hostname,
		tls:      s.tls(),
		user:     user,
		utf8:     env.utf8,
		id:       id,
		rcpts:    env.rcpts,
		date:     now,
	}))
	if s.s.opts.Mode.submission() && hdr.known {
		if !hdr.hasMessageID {
			var r [12]byte
			rand.Read(r[:])
			fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(r[:]), s.s.opts.Hostname)
		}
		if !hdr.hasDate {
			fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
		}
	}
	return b.String()
}
