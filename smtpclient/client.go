package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Timeouts of the SMTP client, RFC 5321 §4.5.3.2.
const (
	timeoutGreeting = 5 * time.Minute
	timeoutCommand  = 5 * time.Minute // EHLO, MAIL, RCPT, RSET, QUIT
	timeoutDataInit = 2 * time.Minute
	timeoutDataSend = 3 * time.Minute // each block written
	timeoutDataEnd  = 10 * time.Minute
	timeoutTLS      = 1 * time.Minute
	// maxReplyLine is twice RFC 5321 §4.5.3.1.5's 512-octet reply line;
	// maxReplyLines bounds a multi-line reply (an EHLO list is ~20).
	maxReplyLine  = 2048
	maxReplyLines = 100
	// MaxRcptsPerTransaction: RFC 5321 §4.5.3.1.8 requires servers to
	// accept at least 100.
	MaxRcptsPerTransaction = 100
)

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

// errProtocol is a reply we cannot parse.
var errProtocol = errors.New("malformed SMTP reply")

// ParseReplyLine splits one reply line: code, whether more lines follow
// ("250-"), and the text. RFC 5321 §4.2.
func ParseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", errProtocol
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", errProtocol
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if code < 200 || code > 599 {
		return 0, false, "", errProtocol
	}
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case '-':
		more = true
	case ' ':
	default:
		return 0, false, "", errProtocol
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
}

// New returns a client on conn, a connection to the host named remote.
// ctx is the attempt's context: the caller sets a past deadline on conn when
// ctx ends (context.AfterFunc), and the client checks ctx after every
// deadline it sets, so a later deadline never undoes the cancellation.
func New(ctx context.Context, conn net.Conn, remote string) *Client {
	c := &Client{ctx: ctx, remote: remote}
	c.setConn(conn)
	return c
}

func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	c.br = bufio.NewReaderSize(conn, 4096)
	c.bw = bufio.NewWriterSize(conn, 32<<10)
}

func (c *Client) readReply(timeout time.Duration) (Reply, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	if err := c.ctx.Err(); err != nil {
		return Reply{}, err
	}
	var r Reply
	var texts []string
	for i := 0; ; i++ {
		if i >= maxReplyLines {
			return Reply{}, fmt.Errorf("%w: too many lines", errProtocol)
		}
		line, err := c.readLine()
		if err != nil {
			return Reply{}, err
		}
		code, more, text, err := ParseReplyLine(line)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: %q", err, truncate(line, 64))
		}
		if i == 0 {
			r.Code = code
		} else if code != r.Code {
			return Reply{}, fmt.Errorf("%w: code changed within reply", errProtocol)
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

func (c *Client) readLine() (string, error) {
	var line []byte
	for {
		frag, isPrefix, err := c.br.ReadLine()
		if err != nil {
			return "", err
		}
		line = append(line, frag...)
		if len(line) > maxReplyLine {
			return "", fmt.Errorf("%w: line too long", errProtocol)
		}
		if !isPrefix {
			return string(line), nil
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

func (c *Client) flush(timeout time.Duration) error {
	c.conn.SetWriteDeadline(time.Now().Add(timeout))
	if err := c.ctx.Err(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// cmd sends one command and reads its reply.
func (c *Client) cmd(timeout time.Duration, format string, args ...any) (Reply, error) {
	if err := c.write(format, args...); err != nil {
		return Reply{}, err
	}
	if err := c.flush(timeout); err != nil {
		return Reply{}, err
	}
	return c.readReply(timeout)
}

// Greeting reads the server's greeting (220 when it will talk to us).
func (c *Client) Greeting() (Reply, error) {
	return c.readReply(timeoutGreeting)
}

// Hello reads nothing: it sends EHLO (HELO when EHLO is refused as unknown)
// and records the extensions.
func (c *Client) Hello(name string) (Reply, error) {
	r, err := c.cmd(timeoutCommand, "EHLO %s", name)
	if err != nil {
		return r, err
	}
	if r.Code == 500 || r.Code == 502 {
		r, err = c.cmd(timeoutCommand, "HELO %s", name)
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
	r, err := c.cmd(timeoutCommand, "STARTTLS")
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
	tc.SetDeadline(time.Now().Add(timeoutTLS))
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("%w: %v", errTLS, err)
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
		r, err := c.readAfterFlush(timeoutCommand)
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
			r, err := c.readAfterFlush(timeoutCommand)
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
		if err := c.flush(timeoutCommand); err != nil {
			return replies, err
		}
		r, err := c.readReply(timeoutCommand)
		if err != nil {
			return replies, err
		}
		mailReply = r
		for i := range rcpts {
			r, err := c.readReply(timeoutCommand)
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
	r, err := c.cmd(timeoutDataInit, "DATA")
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
	r, err = c.readReply(timeoutDataEnd)
	if err != nil {
		return replies, err
	}
	setAccepted(replies, r)
	return replies, nil
}

func (c *Client) readAfterFlush(timeout time.Duration) (Reply, error) {
	if err := c.flush(timeout); err != nil {
		return Reply{}, err
	}
	return c.readReply(timeout)
}

func setAccepted(replies []Reply, r Reply) {
	for i := range replies {
		if replies[i].Positive() {
			replies[i] = r
		}
	}
}

// deadlineWriter renews the write deadline before every write, so a slow
// but moving peer is not cut off while a stuck one is.
type deadlineWriter struct {
	ctx  context.Context
	conn net.Conn
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.conn.SetWriteDeadline(time.Now().Add(timeoutDataSend))
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	return d.conn.Write(p)
}

// sendData writes the dot-stuffed body and the final ".".
func (c *Client) sendData(body io.Reader) error {
	c.bw.Reset(deadlineWriter{c.ctx, c.conn})
	dw := textproto.NewWriter(c.bw).DotWriter()
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
	return c.cmd(timeoutCommand, "RSET")
}

// Quit says QUIT and closes the connection.
func (c *Client) Quit() {
	c.cmd(30*time.Second, "QUIT")
	c.conn.Close()
}
