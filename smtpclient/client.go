package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Default timeouts, RFC 5321 §4.5.3.2, and the limits on replies.
const (
	DefaultGreeting   = 5 * time.Minute  // §4.5.3.2.1 initial 220
	DefaultCommand    = 5 * time.Minute  // EHLO, STARTTLS, RSET, QUIT: like MAIL
	DefaultMail       = 5 * time.Minute  // §4.5.3.2.2
	DefaultRcpt       = 5 * time.Minute  // §4.5.3.2.3
	DefaultDataInit   = 2 * time.Minute  // §4.5.3.2.4
	DefaultDataBlock  = 3 * time.Minute  // §4.5.3.2.5, each block written
	DefaultDataDone   = 10 * time.Minute // §4.5.3.2.6
	DefaultConnection = 30 * time.Minute // the whole connection, every message on it
	timeoutTLS        = 1 * time.Minute
	timeoutQuit       = 30 * time.Second
	// maxReplyLine is twice RFC 5321 §4.5.3.1.5's 512-octet reply line;
	// maxReplyLines bounds a multi-line reply (an EHLO list is ~20), and
	// maxReplyBytes all its lines together (a long banner is ~2 KiB).
	maxReplyLine  = 2048
	maxReplyLines = 100
	maxReplyBytes = 16 << 10
	// MaxRcptsPerTransaction: RFC 5321 §4.5.3.1.8 requires servers to
	// accept at least 100.
	MaxRcptsPerTransaction = 100
)

// Timeouts bound each wait of a conversation. Each is a deadline for the
// whole reply (or the whole block written), not an idle time between
// reads: a server that sends one byte a second gets no longer than one
// that sends nothing. Connection bounds the whole connection, every
// message on it included. Zero fields take the defaults above.
type Timeouts struct {
	Greeting   time.Duration
	Command    time.Duration
	Mail       time.Duration
	Rcpt       time.Duration
	DataInit   time.Duration
	DataBlock  time.Duration
	DataDone   time.Duration
	Connection time.Duration
}

// withDefaults fills the zero fields.
func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Greeting, DefaultGreeting)
	def(&t.Command, DefaultCommand)
	def(&t.Mail, DefaultMail)
	def(&t.Rcpt, DefaultRcpt)
	def(&t.DataInit, DefaultDataInit)
	def(&t.DataBlock, DefaultDataBlock)
	def(&t.DataDone, DefaultDataDone)
	def(&t.Connection, DefaultConnection)
	return t
}

// TimeoutError says what the client was waiting for when a deadline
// passed: "greeting", "reply to MAIL", "reply to end of data", "sending
// message data". Connection is set when the connection's overall limit
// (Timeouts.Connection) ran out rather than the step's own.
type TimeoutError struct {
	Waiting    string
	Connection bool
}

func (e *TimeoutError) Error() string {
	if e.Connection {
		return "connection time limit reached waiting for " + e.Waiting
	}
	return "timeout waiting for " + e.Waiting
}

// Timeout lets net-style checks see the error as a timeout.
func (e *TimeoutError) Timeout() bool { return true }

// Reply is an SMTP reply.
type Reply struct {
	Code     int
	Enhanced string // "5.1.1", "" when absent
	Text     string // lines joined with "; ", enhanced code removed
}

func (r Reply) String() string {
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if r.Text != "" {
		s += " " + r.Text
	}
	return s
}

// Positive reports a 2xx or 3xx reply.
func (r Reply) Positive() bool { return r.Code >= 200 && r.Code < 400 }

// Permanent reports a 5xx reply. Anything else that is not positive,
// including codes outside the RFC, is temporary.
func (r Reply) Permanent() bool { return r.Code >= 500 && r.Code < 600 }

// ErrProtocol is a reply we cannot parse, or one past the bounds on its
// size.
var ErrProtocol = errors.New("malformed SMTP reply")

// ParseReplyLine splits one reply line: code, whether more lines follow
// ("250-"), and the text. RFC 5321 §4.2.
func ParseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", ErrProtocol
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", ErrProtocol
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if code < 200 || code > 599 {
		return 0, false, "", ErrProtocol
	}
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case '-':
		more = true
	case ' ':
	default:
		return 0, false, "", ErrProtocol
	}
	return code, more, line[4:], nil
}

// splitEnhanced removes an RFC 3463 enhanced status code that matches the
// reply's class from the start of text.
func splitEnhanced(code int, text string) (enh, rest string) {
	f, rest, _ := strings.Cut(text, " ")
	parts := strings.Split(f, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || int(parts[0][0]-'0') != code/100 {
		return "", text
	}
	for _, p := range parts {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 || len(p) > 3 {
			return "", text
		}
	}
	return f, rest
}

// ParseReply reads back a reply written by Reply.String (the queue stores
// replies that way): the code, the enhanced code when there is one, and the
// rest as Text. A string that does not start with a code gives Code 0.
func ParseReply(s string) Reply {
	if len(s) < 3 {
		return Reply{}
	}
	code, err := strconv.Atoi(s[:3])
	if err != nil {
		return Reply{}
	}
	enh, rest := splitEnhanced(code, strings.TrimPrefix(s[3:], " "))
	return Reply{Code: code, Enhanced: enh, Text: rest}
}

// Client is a minimal RFC 5321 client with PIPELINING (RFC 2920), written
// for the queue because go-smtp's client sends commands one at a time and
// cannot say EHLO with our name before STARTTLS. One goroutine uses it.
type Client struct {
	// ctx is the attempt's context. Its cancellation sets a past deadline
	// on the connection (the caller's job, see New); every deadline we set is followed by
	// a check of ctx, so a later deadline never undoes the cancellation.
	ctx    context.Context
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	ext    map[string]string
	tls    bool
	remote string // host name for logs and DSNs
	to     Timeouts
	// end is the connection's overall deadline (Timeouts.Connection
	// after New); no step's deadline goes past it.
	end time.Time
	// stepEnd is the deadline of the step under way, to tell a step's
	// timeout from the connection's.
	stepEnd time.Time
}

// New returns a client on conn, a connection to the host named remote,
// with timeouts to (zero fields: the RFC 5321 defaults); the connection's
// overall limit starts now. ctx is the attempt's context: the caller sets a
// past deadline on conn when ctx ends (context.AfterFunc), and the client
// checks ctx after every deadline it sets, so a later deadline never undoes
// the cancellation.
func New(ctx context.Context, conn net.Conn, remote string, to Timeouts) *Client {
	to = to.withDefaults()
	c := &Client{ctx: ctx, remote: remote, to: to, end: time.Now().Add(to.Connection)}
	c.setConn(conn)
	return c
}

// Remaining returns how much of the connection's time limit is left, and
// the limit: a caller reusing the connection for more messages stops
// while there is time to finish one.
func (c *Client) Remaining() (left, limit time.Duration) {
	return time.Until(c.end), c.to.Connection
}

// deadline returns the deadline of a step that may take d: now + d, or
// the connection's end if that comes first.
func (c *Client) deadline(d time.Duration) time.Time {
	c.stepEnd = time.Now().Add(d)
	if c.stepEnd.After(c.end) {
		return c.end
	}
	return c.stepEnd
}

// timeout turns a deadline error into a TimeoutError naming what we
// waited for; other errors (cancellation included) pass unchanged.
func (c *Client) timeout(err error, waiting string) error {
	if err == nil || c.ctx.Err() != nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	return &TimeoutError{Waiting: waiting, Connection: c.stepEnd.After(c.end)}
}

func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	c.br = bufio.NewReaderSize(conn, 4096)
	c.bw = bufio.NewWriterSize(conn, 32<<10)
}

// readReply reads one reply within timeout (a deadline for the whole
// reply, however slowly its bytes come); waiting names it in a timeout
// error.
func (c *Client) readReply(timeout time.Duration, waiting string) (Reply, error) {
	c.conn.SetReadDeadline(c.deadline(timeout))
	if err := c.ctx.Err(); err != nil {
		return Reply{}, err
	}
	r, err := c.parseReply()
	return r, c.timeout(err, waiting)
}

func (c *Client) parseReply() (Reply, error) {
	var r Reply
	var texts []string
	total := 0
	for i := 0; ; i++ {
		if i >= maxReplyLines {
			return Reply{}, fmt.Errorf("%w: too many lines", ErrProtocol)
		}
		line, err := c.readLine()
		if err != nil {
			return Reply{}, err
		}
		if total += len(line) + 2; total > maxReplyBytes {
			return Reply{}, fmt.Errorf("%w: reply too long", ErrProtocol)
		}
		code, more, text, err := ParseReplyLine(line)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: %q", err, truncate(line, 64))
		}
		if i == 0 {
			r.Code = code
		} else if code != r.Code {
			return Reply{}, fmt.Errorf("%w: code changed within reply", ErrProtocol)
		}
		texts = append(texts, text)
		if !more {
			break
		}
	}
	r.Enhanced, texts[0] = splitEnhanced(r.Code, texts[0])
	if r.Enhanced != "" {
		for i := 1; i < len(texts); i++ {
			texts[i] = strings.TrimPrefix(texts[i], r.Enhanced+" ")
		}
	}
	r.Text = strings.Join(texts, "\n")
	return r, nil
}

// readLine reads one line through its LF. A line cut short by a deadline
// or the end of the connection is an error, never a reply (bufio's
// ReadLine would hand such a fragment over as a complete line).
func (c *Client) readLine() (string, error) {
	var line []byte
	for {
		frag, err := c.br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxReplyLine+2 {
			return "", fmt.Errorf("%w: line too long", ErrProtocol)
		}
		switch {
		case err == nil:
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return string(line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// write queues a command line; flush sends what is queued.
func (c *Client) write(format string, args ...any) error {
	_, err := fmt.Fprintf(c.bw, format+"\r\n", args...)
	return err
}

func (c *Client) flush(timeout time.Duration, sending string) error {
	c.conn.SetWriteDeadline(c.deadline(timeout))
	if err := c.ctx.Err(); err != nil {
		return err
	}
	return c.timeout(c.bw.Flush(), "the server to read "+sending)
}

// cmd sends one command and reads its reply; verb names it in errors.
func (c *Client) cmd(timeout time.Duration, verb, format string, args ...any) (Reply, error) {
	if err := c.write(format, args...); err != nil {
		return Reply{}, err
	}
	if err := c.flush(timeout, verb); err != nil {
		return Reply{}, err
	}
	return c.readReply(timeout, "reply to "+verb)
}

// Greeting reads the server's greeting (220 when it will talk to us).
func (c *Client) Greeting() (Reply, error) {
	return c.readReply(c.to.Greeting, "greeting")
}

// Hello reads nothing: it sends EHLO (HELO when EHLO is refused as unknown)
// and records the extensions.
func (c *Client) Hello(name string) (Reply, error) {
	r, err := c.cmd(c.to.Command, "EHLO", "EHLO %s", name)
	if err != nil {
		return r, err
	}
	if r.Code == 500 || r.Code == 502 {
		r, err = c.cmd(c.to.Command, "HELO", "HELO %s", name)
		c.ext = map[string]string{}
		return r, err
	}
	if r.Code != 250 {
		return r, nil
	}
	c.ext = map[string]string{}
	lines := strings.Split(r.Text, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return r, nil
}

// Has reports whether the server's EHLO reply listed ext (upper case).
func (c *Client) Has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// MaxSize returns the server's SIZE limit, 0 when none.
func (c *Client) MaxSize() int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(c.ext["SIZE"]), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// errTLS marks a STARTTLS failure.
var errTLS = errors.New("STARTTLS failed")

// StartTLS upgrades the connection. Any failure leaves the connection
// unusable: the caller closes it and never goes on in plaintext on it.
func (c *Client) StartTLS(cfg *tls.Config, serverName string) error {
	r, err := c.cmd(c.to.Command, "STARTTLS", "STARTTLS")
	if err != nil {
		return fmt.Errorf("%w: %v", errTLS, err)
	}
	if r.Code != 220 {
		return fmt.Errorf("%w: server replied %s", errTLS, r)
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	tc := tls.Client(c.conn, cfg)
	tc.SetDeadline(c.deadline(timeoutTLS))
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("%w: %v", errTLS, c.timeout(err, "the TLS handshake"))
	}
	tc.SetDeadline(time.Time{})
	c.setConn(tc)
	c.tls = true
	return nil
}

// MailParams says which MAIL FROM parameters to send.
type MailParams struct {
	Size     int64
	EightBit bool // BODY=8BITMIME
	SMTPUTF8 bool
}

// Transaction runs MAIL, RCPT for each recipient and DATA, pipelined when
// the server offers PIPELINING: MAIL and the RCPTs go in one write, DATA
// after their replies (so a transaction whose recipients were all refused
// never reaches DATA). It returns one reply per recipient: the RCPT reply
// when refused, else the reply to the end of data. A non-nil error means
// the connection broke; replies gathered so far are still returned, with
// the zero Reply for recipients without one.
func (c *Client) Transaction(from string, rcpts []string, p MailParams, body io.Reader) (replies []Reply, err error) {
	replies = make([]Reply, len(rcpts))
	defer func() {
		if err != nil {
			// A recipient accepted at RCPT has no result until the reply
			// to the end of data: the connection broke before it.
			for i := range replies {
				if replies[i].Positive() {
					replies[i] = Reply{}
				}
			}
		}
	}()
	mail := "MAIL FROM:<" + from + ">"
	if p.Size > 0 && c.Has("SIZE") {
		mail += " SIZE=" + strconv.FormatInt(p.Size, 10)
	}
	if p.EightBit && c.Has("8BITMIME") {
		mail += " BODY=8BITMIME"
	}
	if p.SMTPUTF8 && c.Has("SMTPUTF8") {
		mail += " SMTPUTF8"
	}
	pipelining := c.Has("PIPELINING")
	if err := c.write("%s", mail); err != nil {
		return replies, err
	}
	var mailReply Reply
	if !pipelining {
		r, err := c.readAfterFlush(c.to.Mail, "MAIL")
		if err != nil {
			return replies, err
		}
		mailReply = r
		if !r.Positive() {
			for i := range replies {
				replies[i] = r
			}
			return replies, nil
		}
	}
	accepted := 0
	for i, rcpt := range rcpts {
		if err := c.write("RCPT TO:<%s>", rcpt); err != nil {
			return replies, err
		}
		if !pipelining {
			r, err := c.readAfterFlush(c.to.Rcpt, "RCPT")
			if err != nil {
				return replies, err
			}
			replies[i] = r
			if r.Positive() {
				accepted++
			}
		}
	}
	if pipelining {
		if err := c.flush(c.to.Mail, "MAIL"); err != nil {
			return replies, err
		}
		r, err := c.readReply(c.to.Mail, "reply to MAIL")
		if err != nil {
			return replies, err
		}
		mailReply = r
		for i := range rcpts {
			r, err := c.readReply(c.to.Rcpt, "reply to RCPT")
			if err != nil {
				return replies, err
			}
			replies[i] = r
			if r.Positive() {
				accepted++
			}
		}
		if !mailReply.Positive() {
			// RCPT replies after a refused MAIL are 503s; the MAIL reply
			// is the one that explains.
			for i := range replies {
				replies[i] = mailReply
			}
			return replies, nil
		}
	}
	if accepted == 0 {
		return replies, nil
	}
	r, err := c.cmd(c.to.DataInit, "DATA", "DATA")
	if err != nil {
		return replies, err
	}
	if r.Code != 354 {
		setAccepted(replies, r)
		return replies, nil
	}
	if err := c.sendData(body); err != nil {
		return replies, err
	}
	r, err = c.readReply(c.to.DataDone, "reply to end of data")
	if err != nil {
		return replies, err
	}
	setAccepted(replies, r)
	return replies, nil
}

func (c *Client) readAfterFlush(timeout time.Duration, verb string) (Reply, error) {
	if err := c.flush(timeout, verb); err != nil {
		return Reply{}, err
	}
	return c.readReply(timeout, "reply to "+verb)
}

func setAccepted(replies []Reply, r Reply) {
	for i := range replies {
		if replies[i].Positive() {
			replies[i] = r
		}
	}
}

// deadlineWriter renews the write deadline before every block written
// (within the connection's limit), so a slow but moving peer is not cut
// off while a stuck one is.
type deadlineWriter struct{ c *Client }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.c.conn.SetWriteDeadline(d.c.deadline(d.c.to.DataBlock))
	if err := d.c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := d.c.conn.Write(p)
	return n, d.c.timeout(err, "the server to read message data")
}

// sendData writes the dot-stuffed body and the final ".".
func (c *Client) sendData(body io.Reader) error {
	c.bw.Reset(deadlineWriter{c})
	dw := newDotWriter(c.bw)
	if _, err := io.Copy(dw, body); err != nil {
		return err
	}
	if err := dw.Close(); err != nil { // writes ".\r\n" and flushes
		return err
	}
	c.bw.Reset(c.conn)
	return nil
}

// Reset sends RSET between two transactions on one connection.
func (c *Client) Reset() (Reply, error) {
	return c.cmd(c.to.Command, "RSET", "RSET")
}

// Quit says QUIT and closes the connection.
func (c *Client) Quit() {
	c.cmd(min(timeoutQuit, c.to.Command), "QUIT", "QUIT")
	c.conn.Close()
}
