package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/server"
)

// conn is our edge: the net.Conn go-smtp reads commands from and writes
// replies to. It sits above TLS (it runs the handshake itself, on 465 at
// once and on 587/25 at STARTTLS), so it sees the plain text both ways and
// does what go-smtp's Session interface cannot:
//
//   - STARTTLS. go-smtp has no TLS config of ours; its "TLS not supported"
//     reply to STARTTLS is our cue to answer 220 and hand-shake. A read
//     never goes past a STARTTLS line, so go-smtp holds nothing the client
//     pipelined after it, and what we hold is dropped (RFC 3207 §4.2,
//     command injection). STARTTLS is added to the EHLO reply.
//   - Reply codes. A few of go-smtp's replies are rewritten to what RFC
//     5321 and RFC 4954 ask for (libraryReplies).
//   - Session caps. Commands that do not advance a mail transaction are
//     counted (junk); past Options.MaxJunkCommands the reply is 421 4.7.0
//     and the connection ends. At each command boundary the session age
//     (Options.MaxSessionDuration), an eviction by the connection limits
//     (auth/limit's fair share) and Shutdown are checked, never while a
//     message is being received: from the 354 we send, or the BDAT command
//     we pass on, to the transaction's final reply (beginBody).
//   - Command framing. Outside a message each read passes go-smtp at most
//     one command line, so that go-smtp never holds a command we have not
//     seen arrive: a BDAT line is seen before its chunk is read, and each
//     command meets the cuts above.
//   - A bare CR or LF in DATA: the bytes up to it are passed on and then
//     EOF, and the connection ends after the refusal (stopReading, linger):
//     go-smtp's DATA reader would hold them until 64 KiB or <CRLF>.<CRLF>,
//     which such a client may never send.
//   - DATA lines starting "<CR><LF>.<CR>" followed by anything but LF: go-smtp's
//     dot-unstuffing would drop the CR; we turn the dot into a CR so the
//     bare CR reaches the body filter and the message is refused.
//
// go-smtp calls Read, Write and SetReadDeadline from the connection's
// goroutine only (BDAT's Data goroutine reads through a pipe), so the fields
// marked "conn goroutine" need no lock.
type conn struct {
	raw    *server.Conn // as accepted
	s      *Server
	id     string
	remote netip.Addr
	start  time.Time // wall clock, for the disconnect log
	born   time.Time // Options.Now, for MaxSessionDuration
	log    *slog.Logger
	slot   *limit.Slot // nil when the Server has no connection limits

	// conn goroutine only
	tr        net.Conn      // raw, or the *tls.Conn over it
	br        *bufio.Reader // over tr
	lineStart bool          // the next byte read begins a line
	stopAtEOL bool          // in a STARTTLS line: the read stops at its end
	tlsLine   []byte        // that line, for its syntax check
	sawBDAT   bool          // the line just passed on is a BDAT command
	wbuf      []byte        // a reply line not yet complete
	greeted   bool
	awaitCmd  bool // go-smtp is reading a command line (SetReadDeadline)
	hsFailed  bool // implicit TLS handshake failed
	inData    bool // from DATA's 354 to its final reply
	dataCR    bool // in DATA, the last byte passed on was a CR

	tlsState atomic.Pointer[tls.ConnectionState]
	hangup   atomic.Bool  // our last reply is sent: reads give EOF, writes are dropped
	readErr  atomic.Bool  // a read failed (EOF, timeout): a body may be cut short
	advanced atomic.Bool  // the command being answered advanced a transaction
	junk     atomic.Int64 // commands without a transaction since the last message
	needHelo atomic.Bool  // TLS started: EHLO again before MAIL or AUTH
	closing  atomic.Bool  // after the next final reply, hang up
	// deaf: DATA was refused for a bare CR or LF, so the client's idea
	// of where the message ends may not be ours: nothing more is read
	// (go-smtp's drain of the rest sees EOF), the reply goes out at once
	// and the connection ends after it.
	deaf     atomic.Bool
	txActive atomic.Bool // MAIL accepted, transaction open
	evicted  atomic.Bool
	messages atomic.Int64
	badRcpts int // refused RCPTs, counted across sessions (conn goroutine only)

	// gate is Options.Gate's checks for this connection, nil for none
	// (gate.go); set before the handoff, read by the sessions.
	gate GateConn

	mu       sync.Mutex
	deadline time.Time // the read deadline go-smtp or Data asked for
	woken    bool      // the raw deadline was moved to now by wake
	busy     bool      // inside Data: nothing cuts the connection
	// body: a message transfer the client was told to make (354) or has
	// started (BDAT) and that has not had its final reply: nothing cuts the
	// connection, and it holds one count of Server.inflight (beginBody).
	body bool

	closeOnce sync.Once

	// spool is the connection's spool file, kept between messages.
	spool spool
}

func newConn(s *Server, raw *server.Conn) *conn {
	c := &conn{
		raw:       raw,
		s:         s,
		id:        raw.ID(),
		remote:    raw.Remote(),
		start:     time.Now(),
		born:      s.opts.Now(),
		log:       s.log.With("conn", raw.ID(), "remote", raw.RemoteAddr().String()),
		tr:        raw,
		lineStart: true,
	}
	c.br = bufio.NewReaderSize(raw, 4096)
	if c.slot = raw.Slot(); c.slot != nil {
		c.slot.SetEvict(c.evict)
	}
	return c
}

// tls returns the TLS state, nil before TLS.
func (c *conn) tls() *tls.ConnectionState { return c.tlsState.Load() }

// closeAfterReply makes the next final reply the last one.
func (c *conn) closeAfterReply() { c.closing.Store(true) }

// stopReading ends the conversation at the reply being prepared: no more
// input is read, and the connection closes after that reply (deaf).
func (c *conn) stopReading() {
	c.deaf.Store(true)
	c.closing.Store(true)
}

// --- reading ---------------------------------------------------------------

func (c *conn) Read(b []byte) (int, error) {
	if err := c.implicitTLS(); err != nil {
		return 0, err
	}
	for {
		if c.hangup.Load() || c.deaf.Load() {
			return 0, io.EOF
		}
		n, err := c.fill(b)
		if err != nil && isTimeout(err) && c.takeWake() {
			// Woken by Shutdown or an eviction: say so at this boundary,
			// or, inside Data, go on reading under the real deadline.
			if c.cutAtBoundary() {
				return 0, io.EOF
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			c.readErr.Store(true)
			return n, err
		}
		if c.awaitCmd {
			// A command arrives on a connection that was idle: check
			// the cuts before go-smtp runs it.
			c.awaitCmd = false
			if c.cutAtBoundary() {
				return 0, io.EOF
			}
		}
		if c.sawBDAT {
			// The chunk follows the command without a go-ahead: the
			// transfer starts now.
			c.sawBDAT = false
			if !c.beginBody() {
				c.say(errShuttingDown)
				return 0, io.EOF
			}
		}
		return n, nil
	}
}

// fill copies buffered input into b, never past the end of a STARTTLS line
// or, outside a message, of any line, with the dot of a "<CRLF>.<CR>x" line
// turned into a CR.
func (c *conn) fill(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	cmd := !c.inBody()
	if err := c.peekDecidable(cmd); err != nil {
		return 0, err
	}
	buf, _ := c.br.Peek(c.br.Buffered())
	n := min(len(buf), len(b))
	copy(b, buf[:n])
	i := 0
	for i < n {
		if c.lineStart {
			if !decidable(buf[i:], cmd) {
				break // i > 0: peekDecidable covered the first line
			}
			c.lineStart = false
			switch {
			case isDotCR(buf[i:]):
				b[i] = '\r'
			case isStartTLS(buf[i:]):
				c.stopAtEOL = true
				c.tlsLine = c.tlsLine[:0]
			case cmd && isBDAT(buf[i:]):
				c.sawBDAT = true
			}
		}
		end, eol := n, false
		if j := bytes.IndexByte(buf[i:n], '\n'); j >= 0 {
			end, eol = i+j+1, true
		}
		if c.stopAtEOL && len(c.tlsLine) < 1024 {
			c.tlsLine = append(c.tlsLine, buf[i:min(end, i+1024)]...)
		}
		i = end
		if eol {
			c.lineStart = true
			if c.stopAtEOL {
				c.stopAtEOL = false
				break
			}
			if cmd {
				break // one command line per read
			}
		}
	}
	if c.inData && !c.deaf.Load() {
		if k := c.bareLineEnd(b[:i]); k >= 0 {
			// go-smtp's DATA reader hands nothing on before 64 KiB or
			// the end of the data: pass on up to the bare CR or LF and
			// then EOF, so the body filter sees it now (see stopReading).
			i = k + 1
			c.stopReading()
		}
	}
	c.br.Discard(i)
	return i, nil
}

// bareLineEnd returns the index in p, DATA bytes as passed on, at which a
// bare LF or a CR not followed by LF shows, or -1.
func (c *conn) bareLineEnd(p []byte) int {
	for k, ch := range p {
		if c.dataCR != (ch == '\n') {
			return k
		}
		c.dataCR = ch == '\r'
	}
	return -1
}

// peekDecidable waits until there is input and, at a line start, enough of
// it to tell a STARTTLS line, a BDAT command (cmd: outside a message) or a
// "." + CR line from others. It only waits for bytes the client must send
// anyway to finish its line.
func (c *conn) peekDecidable(cmd bool) error {
	k := max(c.br.Buffered(), 1)
	for {
		p, err := c.br.Peek(k)
		if err != nil {
			return err
		}
		if !c.lineStart || decidable(p, cmd) {
			return nil
		}
		k = len(p) + 1
	}
}

const (
	startTLSCmd = "STARTTLS"
	bdatCmd     = "BDAT "
)

// decidable reports whether p, the start of a line, says enough; cmd: the
// line is a command, which may be BDAT.
func decidable(p []byte, cmd bool) bool {
	if len(p) == 0 {
		return false
	}
	if p[0] == '.' {
		return len(p) >= 3 || len(p) == 2 && p[1] != '\r'
	}
	if bytes.IndexByte(p, '\n') >= 0 {
		return true
	}
	// Could it still become STARTTLS (go-smtp takes any line starting so)
	// or BDAT?
	if len(p) < len(startTLSCmd) && strings.EqualFold(string(p), startTLSCmd[:len(p)]) {
		return false
	}
	return !cmd || len(p) >= len(bdatCmd) || !strings.EqualFold(string(p), bdatCmd[:len(p)])
}

// isDotCR reports a line that starts with a dot and a CR not followed by
// LF: go-smtp's DATA reader would drop both, hiding the bare CR.
func isDotCR(p []byte) bool {
	return len(p) >= 3 && p[0] == '.' && p[1] == '\r' && p[2] != '\n'
}

func isStartTLS(p []byte) bool {
	return len(p) >= len(startTLSCmd) && strings.EqualFold(string(p[:len(startTLSCmd)]), startTLSCmd)
}

func isBDAT(p []byte) bool {
	return len(p) >= len(bdatCmd) && strings.EqualFold(string(p[:len(bdatCmd)]), bdatCmd)
}

// --- deadlines and boundaries ------------------------------------------------

// SetReadDeadline is called by go-smtp before it reads each command line
// (and each AUTH response): a command boundary. Cuts due here (session age,
// eviction, Shutdown) are made now, unless a message is being received.
func (c *conn) SetReadDeadline(t time.Time) error {
	if c.slot != nil {
		c.slot.Touch()
	}
	if c.cutAtBoundary() {
		return nil
	}
	c.awaitCmd = true
	return c.setDeadline(t)
}

func (c *conn) setDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.woken {
		return nil
	}
	return c.raw.SetReadDeadline(t)
}

// setDataDeadline replaces the per-command deadline for the message upload.
func (c *conn) setDataDeadline(d time.Duration) { c.setDeadline(time.Now().Add(d)) }

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.setDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// wake interrupts a read waiting for the next command, so that Read checks
// for a cut. A connection inside Data is left alone: the check happens at
// its next boundary.
func (c *conn) wake() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy || c.body {
		return
	}
	c.woken = true
	c.raw.SetReadDeadline(time.Now())
}

// takeWake reports whether a read timeout was caused by wake, and puts the
// real deadline back.
func (c *conn) takeWake() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.woken {
		return false
	}
	c.woken = false
	c.raw.SetReadDeadline(c.deadline)
	return true
}

// evict is called by auth/limit when our slot was handed to another client.
func (c *conn) evict() {
	c.evicted.Store(true)
	c.wake()
}

func (c *conn) setBusy(busy bool) {
	c.mu.Lock()
	c.busy = busy
	busy = c.busy || c.body
	c.mu.Unlock()
	if c.slot != nil {
		c.slot.SetBusy(busy)
	}
}

// beginBody marks the start of a message transfer: we are about to send
// 354, or have read a BDAT command. From here to the transaction's final
// reply (endBody) nothing cuts the connection, and the transfer counts in
// Server.inflight, so that Shutdown's first phase lets the message finish
// whenever it begins: before Data runs, or after Data returned and before
// its reply. It reports false, starting nothing, once Shutdown has begun:
// the command is then answered 421 instead.
func (c *conn) beginBody() bool {
	c.mu.Lock()
	if c.body {
		c.mu.Unlock()
		return true
	}
	if c.s.life.Stopping() {
		c.mu.Unlock()
		return false
	}
	// The connection's goroutine is running, so Shutdown has not reached
	// its inflight.Wait: the Add is safe even though Shutdown may begin.
	c.s.inflight.Add(1)
	c.body = true
	c.mu.Unlock()
	if c.slot != nil {
		c.slot.SetBusy(true)
	}
	return true
}

// endBody ends the transfer beginBody started, at its final reply or when
// the connection closes.
func (c *conn) endBody() {
	c.mu.Lock()
	if !c.body {
		c.mu.Unlock()
		return
	}
	c.body = false
	c.s.inflight.Done()
	busy := c.busy
	c.mu.Unlock()
	if c.slot != nil {
		c.slot.SetBusy(busy)
	}
}

// inBody reports whether a message transfer is under way.
func (c *conn) inBody() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.body
}

// joinBody counts Data in Server.inflight if its transfer was started here
// (the count held by the transfer makes the Add safe even after Shutdown
// began). It reports false when there is no such transfer.
func (c *conn) joinBody() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.body {
		return false
	}
	c.s.inflight.Add(1)
	c.s.inflightN.Add(1)
	return true
}

// cutAtBoundary ends the connection with a 421 if it must end: Shutdown, an
// eviction or the session's age. It reports whether it did.
func (c *conn) cutAtBoundary() bool {
	if c.hangup.Load() {
		return true
	}
	c.mu.Lock()
	busy := c.busy || c.body
	c.mu.Unlock()
	if busy {
		return false
	}
	var reply *smtp.SMTPError
	switch {
	case c.s.life.Stopping():
		reply = errShuttingDown
	case c.evicted.Load():
		c.log.Warn("idle connection closed to make room for another client")
		reply = errEvicted
	case c.s.opts.MaxSessionDuration > 0 && c.s.opts.Now().Sub(c.born) >= c.s.opts.MaxSessionDuration:
		c.log.Warn("session time limit reached, closing", "dur", c.s.opts.MaxSessionDuration)
		reply = errSessionTooLong
	default:
		return false
	}
	c.say(reply)
	return true
}

// say writes reply as our last word; reads then give EOF (go-smtp closes
// quietly) and go-smtp's own replies are dropped.
func (c *conn) say(reply *smtp.SMTPError) {
	if c.hangup.Swap(true) {
		return
	}
	if c.s.opts.Mode == ModeSubmissions && c.tls() == nil {
		return // no plain text where the client expects a handshake
	}
	c.raw.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	io.WriteString(c.tr, formatReply(reply))
}

func formatReply(r *smtp.SMTPError) string {
	e := r.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", r.Code, e[0], e[1], e[2], r.Message)
}

// --- TLS ------------------------------------------------------------------------

// implicitTLS runs the handshake of port 465 before the first byte either
// way. A failed handshake ends the connection without a word.
func (c *conn) implicitTLS() error {
	if c.s.opts.Mode != ModeSubmissions || c.tls() != nil {
		return nil
	}
	if c.hsFailed || c.hangup.Load() {
		return io.EOF
	}
	if err := c.handshake(); err != nil {
		c.hsFailed = true
		c.hangup.Store(true)
		c.log.Info("tls handshake failed", "err", err)
		return io.EOF
	}
	return nil
}

// handshake runs a server handshake on raw, bounded by CommandTimeout, and
// switches reading and writing to TLS.
func (c *conn) handshake() error {
	tc := tls.Server(c.raw, c.s.tls)
	c.raw.SetDeadline(time.Now().Add(c.s.opts.CommandTimeout))
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.mu.Lock()
	c.raw.SetReadDeadline(c.deadline)
	c.mu.Unlock()
	c.raw.SetWriteDeadline(time.Time{})
	c.tr = tc
	c.br.Reset(tc)
	c.lineStart = true
	cs := tc.ConnectionState()
	c.tlsState.Store(&cs)
	v, cipher := tlsSummary(&cs)
	c.log.Info("tls up", "version", v, "cipher", cipher)
	return nil
}

// startTLS answers STARTTLS (go-smtp, which has no TLS config, has just
// refused it) and returns the line to send instead of go-smtp's.
func (c *conn) startTLS() error {
	var refuse *smtp.SMTPError
	switch {
	case c.tls() != nil:
		refuse = errTLSActive
	case c.s.tls == nil:
		refuse = errNoTLS
	case !strings.EqualFold(strings.TrimSpace(string(c.tlsLine)), startTLSCmd):
		refuse = errStartTLSSyntax // RFC 3207 §4: no parameters
	case c.txActive.Load():
		refuse = errTLSInTransaction
	}
	if refuse != nil {
		return c.sendFinal(formatReply(refuse))
	}
	if err := c.send("220 2.0.0 Ready to start TLS\r\n"); err != nil {
		return err
	}
	// RFC 3207 §4.2: what the client sent after STARTTLS in plain text is
	// not part of the TLS session. go-smtp holds none of it (fill stops at
	// the end of the STARTTLS line); drop ours.
	c.br.Discard(c.br.Buffered())
	if err := c.handshake(); err != nil {
		c.log.Info("tls handshake failed", "err", err)
		c.hangup.Store(true)
		return nil
	}
	// RFC 3207 §4.2: forget what the client said before: EHLO again.
	c.needHelo.Store(true)
	return nil
}

// --- writing ----------------------------------------------------------------

// libraryReplies are go-smtp's replies we answer differently.
var libraryReplies = map[string]*smtp.SMTPError{
	// RFC 5321 §4.3.2 and §4.2.4: a command out of sequence is 503 (502
	// is "not implemented").
	"502 5.5.1 Missing MAIL FROM command.":               errNeedMail,
	"502 5.5.1 Missing RCPT TO command.":                 errNeedRcpt,
	"502 5.5.1 Please introduce yourself first.":         errHeloFirst,
	"502 5.5.1 MAIL not allowed during message transfer": errInTransfer,
	"502 5.5.1 RCPT not allowed during message transfer": errInTransfer,
	"502 5.5.1 DATA not allowed during message transfer": errInTransfer,
	// RFC 4954 §4: an undecodable response is 501 5.5.2.
	"454 4.7.0 Invalid base64 data": errBadBase64,
	"502 5.5.4 Missing parameter":   errAuthSyntax,
	// RFC 5321 §4.2.3: 555 for MAIL and RCPT parameters we do not know;
	// a malformed one is a syntax error, 501.
	"500 5.5.4 Unknown MAIL FROM argument":       errUnknownMailParam,
	"500 5.5.4 Unknown RCPT TO argument":         errUnknownRcptParam,
	"500 5.5.4 Malformed AUTH parameter value":   errBadAuthParam,
	"500 5.5.4 Malformed AUTH parameter mailbox": errBadAuthParam,
	// go-smtp closes after this one: say 421 (RFC 5321 §3.8).
	"500 5.5.1 Too many errors. Quiting now": errTooManyErrors,
	// RFC 3463: an over-long line is a syntax error (5.5.2), not a
	// network status (5.4.0).
	"500 5.4.0 Too long line, closing connection": errCommandTooLong,
}

// dataErrPrefix starts go-smtp's reply to a body read that failed for a
// reason of its own (a BDAT chunk cut by a timeout); its text names the
// error and the code says permanent.
const dataErrPrefix = "554 5.0.0 Error: transaction failed: "

// Write takes go-smtp's replies, a line per call in practice, and sends
// them line by line through reply.
func (c *conn) Write(b []byte) (int, error) {
	if err := c.implicitTLS(); err != nil {
		return 0, err
	}
	c.wbuf = append(c.wbuf, b...)
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := string(c.wbuf[:i+1])
		c.wbuf = c.wbuf[:copy(c.wbuf, c.wbuf[i+1:])]
		if err := c.reply(line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// reply sends one line of go-smtp's, translated, and counts commands.
func (c *conn) reply(line string) error {
	if c.hangup.Load() {
		return nil
	}
	text := strings.TrimRight(line, "\r\n")
	if !c.greeted {
		c.greeted = true
		return c.send(line)
	}
	if text == "502 5.5.1 TLS not supported" {
		if c.countJunk() {
			return c.sendFinal(formatReply(errTooManyJunk))
		}
		return c.startTLS()
	}
	if r, ok := libraryReplies[text]; ok {
		line = formatReply(r)
		if r.Code == 421 {
			c.closing.Store(true)
		}
	} else if strings.HasPrefix(text, dataErrPrefix) {
		c.log.Warn("message not received", "err", strings.TrimPrefix(text, dataErrPrefix))
		line = formatReply(errDataRead)
		c.closing.Store(true) // the rest of the chunk would be read as commands
	}
	if strings.HasPrefix(text, "250-Hello ") || strings.HasPrefix(text, "250 2.0.0 Hello ") {
		c.needHelo.Store(false) // EHLO or HELO answered
		if strings.HasPrefix(text, "250-") && c.offerSTARTTLS() {
			if err := c.send(line); err != nil {
				return err
			}
			line = "250-STARTTLS\r\n"
		}
	}
	if len(text) < 4 || text[3] != ' ' {
		return c.send(line) // not the last line of a reply
	}
	// Intermediate replies (AUTH challenges, DATA's go-ahead, BDAT's
	// per-chunk one) answer no new command.
	code := text[:3]
	final := code != "334" && code != "354" && text != "250 2.0.0 Continue"
	if code == "354" && !c.beginBody() {
		// Shutdown began after DATA was read: answer it 421 rather
		// than invite a message. go-smtp's Data then reads EOF.
		c.say(errShuttingDown)
		return nil
	}
	if code == "354" {
		c.inData, c.dataCR = true, false
	}
	if final && c.countJunk() {
		line = formatReply(errTooManyJunk)
	}
	err := c.sendFinal(line)
	if final {
		c.endBody()
		c.inData = false
	}
	return err
}

// countJunk counts the command being answered unless it advanced a mail
// transaction, and reports whether that was one too many (the connection
// then closes after the reply).
func (c *conn) countJunk() bool {
	if c.advanced.Swap(false) || c.junk.Add(1) <= int64(c.s.opts.MaxJunkCommands) {
		return false
	}
	c.log.Warn("too many commands without a mail transaction, closing", "count", c.junk.Load())
	c.closing.Store(true)
	return true
}

// sendFinal sends the last line of a reply; after it the connection may
// end (closeAfterReply).
func (c *conn) sendFinal(line string) error {
	err := c.send(line)
	if c.closing.Load() {
		c.hangup.Store(true)
	}
	return err
}

func (c *conn) send(line string) error {
	_, err := io.WriteString(c.tr, line)
	return err
}

// offerSTARTTLS reports whether EHLO lists STARTTLS.
func (c *conn) offerSTARTTLS() bool {
	return c.s.tls != nil && c.s.opts.Mode != ModeSubmissions && c.tls() == nil
}

// Lingering close after a refusal that stopped reading mid-DATA.
const (
	lingerTimeout = 2 * time.Second
	lingerMax     = 1 << 20
)

// linger sends our side's end and reads (and drops) what the client is
// still sending, for a little while: closing with unread input pending
// resets the connection, and a reset can destroy the reply before the
// client, still busy writing its message, reads it.
func (c *conn) linger() {
	if tc, ok := c.tr.(*tls.Conn); ok {
		c.raw.SetWriteDeadline(time.Now().Add(time.Second))
		tc.CloseWrite()
	}
	// *net.TCPConn, or a connection behind a PROXY header that passes
	// CloseWrite on to its socket.
	if cw, ok := c.raw.NetConn().(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.raw.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c.raw, lingerMax)
}

// --- the rest of net.Conn ---------------------------------------------------

func (c *conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.hangup.Store(true)
		c.endBody()
		if c.deaf.Load() {
			c.linger()
		}
		tc, isTLS := c.tr.(*tls.Conn)
		if isTLS {
			c.raw.SetWriteDeadline(time.Now().Add(time.Second))
			err = tc.Close()
		}
		c.spool.close()
		c.log.Info("disconnect", "dur", time.Since(c.start).Round(time.Millisecond), "messages", c.messages.Load())
		// Last: this ends the connection's life (server.Conn.Done).
		if rerr := c.raw.Close(); !isTLS {
			err = rerr
		}
	})
	return err
}
