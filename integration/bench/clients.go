package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// password is every benchmark user's password.
const password = "bench-password-1"

// imapLogin dials addr and logs in. Loopback counts as secure on both
// systems, so LOGIN works without TLS.
func imapLogin(addr, user string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{Dialer: &net.Dialer{Timeout: 10 * time.Second}})
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login %s: %w", user, err)
	}
	return c, nil
}

// imapExamine logs in to s as userIMAP and selects mailbox read-only.
func imapExamine(s server, mailbox string) (*imapclient.Client, error) {
	c, err := imapLogin(s.Addr("imap"), userIMAP)
	if err != nil {
		return nil, err
	}
	if _, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// imapCount returns the number of messages in a mailbox by STATUS.
func imapCount(c *imapclient.Client, mailbox string) (uint32, error) {
	d, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, err
	}
	if d.NumMessages == nil {
		return 0, errors.New("STATUS without MESSAGES")
	}
	return *d.NumMessages, nil
}

// imapAppend appends msgs to mailbox over one connection, pipelining up to
// window commands (LITERAL+ lets the client send without waiting for a
// continuation; without it the library waits for each "+").
func imapAppend(c *imapclient.Client, mailbox string, msgs func(i int) []byte, from, to, window int) error {
	pending := make([]*imapclient.AppendCommand, 0, window)
	flush := func(keep int) error {
		for len(pending) > keep {
			if _, err := pending[0].Wait(); err != nil {
				return fmt.Errorf("append to %s: %w", mailbox, err)
			}
			pending = pending[1:]
		}
		return nil
	}
	for i := from; i < to; i++ {
		m := msgs(i)
		cmd := c.Append(mailbox, int64(len(m)), nil)
		if _, err := cmd.Write(m); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		pending = append(pending, cmd)
		if err := flush(window - 1); err != nil {
			return err
		}
	}
	return flush(0)
}

// pop3Client is a small RFC 1939 client: enough for USER/PASS, STAT,
// RETR, DELE and QUIT, with multi-line replies un-stuffed and counted.
type pop3Client struct {
	conn net.Conn
	r    *bufio.Reader
}

func pop3Dial(addr string) (*pop3Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &pop3Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	if _, err := c.status(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("pop3 greeting: %w", err)
	}
	return c, nil
}

func (c *pop3Client) Close() error { return c.conn.Close() }

// status reads one status line and fails on -ERR.
func (c *pop3Client) status() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "+OK") {
		return "", fmt.Errorf("pop3: %q", line)
	}
	return line, nil
}

// cmd sends one command and reads its status line.
func (c *pop3Client) cmd(format string, args ...any) (string, error) {
	c.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", args...); err != nil {
		return "", err
	}
	return c.status()
}

func (c *pop3Client) Login(user, pass string) error {
	if _, err := c.cmd("USER %s", user); err != nil {
		return err
	}
	_, err := c.cmd("PASS %s", pass)
	return err
}

// Stat returns the message count and maildrop size.
func (c *pop3Client) Stat() (n int, size int64, err error) {
	line, err := c.cmd("STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("pop3 STAT: %q", line)
	}
	n, _ = strconv.Atoi(f[1])
	size, _ = strconv.ParseInt(f[2], 10, 64)
	return n, size, nil
}

// Retr reads message i and returns its size as sent (un-stuffed, CRLF).
func (c *pop3Client) Retr(i int) (int64, error) {
	if _, err := c.cmd("RETR %d", i); err != nil {
		return 0, err
	}
	var n int64
	start := true // at the start of a line
	for {
		c.conn.SetReadDeadline(time.Now().Add(time.Minute))
		line, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if start && len(line) > 0 && line[0] == '.' {
				line = line[1:]
			}
			n += int64(len(line))
			start = false
			continue
		}
		if err != nil {
			return n, err
		}
		if start && bytes.Equal(line, []byte(".\r\n")) {
			return n, nil
		}
		if start && line[0] == '.' {
			line = line[1:]
		}
		n += int64(len(line))
		start = true
	}
}

func (c *pop3Client) Dele(i int) error {
	_, err := c.cmd("DELE %d", i)
	return err
}

// Quit enters the UPDATE state; the server applies deletions before +OK.
func (c *pop3Client) Quit() error {
	_, err := c.cmd("QUIT")
	c.conn.Close()
	return err
}

// drain reads a literal to the end.
func drain(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

// rawIMAP is a minimal IMAP client: tagged commands out, lines in, no
// parsing beyond what a caller asks for. The IDLE rows hold 10,000 of
// them; the QRESYNC row and the timed SELECT and UID FETCH FLAGS use one,
// so that those figures are the server's and the transfer's, not a client
// library's (go-imap's client spent more CPU reading 100,000 FETCH
// responses than either server spent writing them).
type rawIMAP struct {
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

func newRawIMAP(conn net.Conn, bufSize int) *rawIMAP {
	return &rawIMAP{conn: conn, r: bufio.NewReaderSize(conn, bufSize)}
}

// dialRawIMAP connects to addr and logs in as userIMAP, with a 2-minute
// deadline for the whole session.
func dialRawIMAP(addr string) (*rawIMAP, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := newRawIMAP(conn, 64<<10)
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.line(); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := c.do(fmt.Sprintf("LOGIN %s %s", userIMAP, password)); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *rawIMAP) line() (string, error) {
	l, err := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// do sends one command and returns its untagged lines (the commands used
// with it get no literals back).
func (c *rawIMAP) do(cmd string) ([]string, error) {
	var lines []string
	err := c.each(cmd, func(l []byte) { lines = append(lines, string(bytes.TrimRight(l, "\r\n"))) })
	return lines, err
}

// each sends one command and hands each untagged line, CRLF included, to
// fn as the reader's slice (valid until the next read), up to the tagged
// OK.
func (c *rawIMAP) each(cmd string, fn func(line []byte)) error {
	c.tag++
	tag := "R" + strconv.Itoa(c.tag) + " "
	if _, err := fmt.Fprintf(c.conn, "%s%s\r\n", tag, cmd); err != nil {
		return err
	}
	for {
		l, err := c.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("%s: a line over %d bytes", cmd, c.r.Size())
		}
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		if rest, ok := bytes.CutPrefix(l, []byte(tag)); ok {
			if !bytes.HasPrefix(rest, []byte("OK")) {
				return fmt.Errorf("%s: %s", cmd, bytes.TrimRight(rest, "\r\n"))
			}
			return nil
		}
		fn(l)
	}
}

func (c *rawIMAP) find(lines []string, re *regexp.Regexp) string {
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	return ""
}

func (c *rawIMAP) close() {
	fmt.Fprintf(c.conn, "Z LOGOUT\r\n")
	c.conn.Close()
}
