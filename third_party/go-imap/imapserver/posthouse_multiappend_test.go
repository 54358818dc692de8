package imapserver_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// multiSession reads every message of an APPEND before storing any, and
// refuses a command with more than max messages.
type multiSession struct {
	*imapmemserver.UserSession
	max    int
	done   chan error    // AppendMessages's result
	stored chan []string // the messages a command stored
}

type bytesLiteral struct{ *bytes.Reader }

func (b bytesLiteral) Size() int64 { return b.Reader.Size() }

func (s *multiSession) AppendMessages(mailbox string, r *imapserver.AppendReader) (*imap.AppendData, error) {
	data, err := s.appendMessages(mailbox, r)
	s.done <- err
	return data, err
}

func (s *multiSession) appendMessages(mailbox string, r *imapserver.AppendReader) (*imap.AppendData, error) {
	type msg struct {
		body []byte
		opts imap.AppendOptions
	}
	var msgs []msg
	for {
		m, err := r.Next(0)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(msgs) == s.max {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many messages"}
		}
		var b []byte
		if m.Catenate {
			b, err = readCatenate(m)
		} else {
			b, err = io.ReadAll(m.Literal)
		}
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, msg{b, m.Options})
	}
	var data imap.AppendData
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, string(m.body))
		d, err := s.UserSession.Append(mailbox, bytesLiteral{bytes.NewReader(m.body)}, &m.opts)
		if err != nil {
			return nil, err
		}
		data.UIDValidity = d.UIDValidity
		data.UIDs.AddNum(d.UID)
	}
	s.stored <- bodies
	return &data, nil
}

// readCatenate builds a CATENATE message: TEXT parts as sent, each URL
// as "<url>"; the URL "bad" fails.
func readCatenate(m *imapserver.AppendMessage) ([]byte, error) {
	var b []byte
	for {
		p, err := m.NextPart(0)
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if p.URL == "bad" {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: "BADURL bad", Text: "Bad URL"}
		}
		if p.URL != "" {
			b = append(b, "<"+p.URL+">"...)
			continue
		}
		t, err := io.ReadAll(p.Text)
		if err != nil {
			return nil, err
		}
		b = append(b, t...)
	}
}

// TestAppendMessages (Posthouse patch): SessionAppendMessages gets every
// message of a MULTIAPPEND, and nothing is stored unless the whole command
// arrived and parsed.
func TestAppendMessages(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	user.Create("INBOX", nil)
	done := make(chan error, 100)
	stored := make(chan []string, 100)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &multiSession{UserSession: imapmemserver.NewUserSession(user), max: 3, done: done, stored: stored}, &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapLiteralPlus: {}, imap.CapUIDPlus: {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		r.ReadString('\n')
		return conn, r
	}
	// tagged reads up to the tagged reply of tag, answering "+" requests
	// with the next of conts.
	tagged := func(t *testing.T, conn net.Conn, r *bufio.Reader, tag string, conts ...string) string {
		t.Helper()
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading the reply to %s: %v", tag, err)
			}
			if strings.HasPrefix(l, "+") {
				if len(conts) == 0 {
					t.Fatalf("unexpected continuation request for %s", tag)
				}
				conn.Write([]byte(conts[0]))
				conts = conts[1:]
				continue
			}
			if strings.HasPrefix(l, tag+" ") {
				return l
			}
		}
	}
	count := func(t *testing.T) uint32 {
		t.Helper()
		conn, r := dial(t)
		conn.Write([]byte("S STATUS INBOX (MESSAGES)\r\n"))
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		var n uint32
		i := strings.Index(l, "MESSAGES ")
		if i < 0 {
			t.Fatalf("STATUS: %q", l)
		}
		for _, c := range l[i+len("MESSAGES "):] {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + uint32(c-'0')
		}
		tagged(t, conn, r, "S")
		return n
	}

	for _, tc := range []struct {
		name   string
		cmd    string
		conts  []string
		reply  string // prefix of the tagged reply after the tag
		stored uint32 // messages added
		next   bool   // the connection still serves a command
		bodies []string
	}{
		{name: "two messages", cmd: "A APPEND INBOX {3+}\r\na\r\n (\\Seen) {3+}\r\nb\r\n\r\n",
			reply: "OK [APPENDUID 1 ", stored: 2, next: true},
		{name: "sync literals", cmd: "A APPEND INBOX {3}\r\n", conts: []string{"a\r\n {3}\r\n", "b\r\n\r\n"},
			reply: "OK [APPENDUID 1 ", stored: 2, next: true},
		{name: "junk after the second", cmd: "A APPEND INBOX {3+}\r\na\r\n {3+}\r\nb\r\n junk\r\n",
			reply: "BAD", next: true},
		{name: "second too big, sync", cmd: "A APPEND INBOX {3+}\r\na\r\n {999999999}\r\n",
			reply: "NO [TOOBIG]", next: true},
		{name: "over the session's count", cmd: "A APPEND INBOX {1+}\r\na {1+}\r\nb {1+}\r\nc {1+}\r\nd {1+}\r\ne\r\n",
			reply: "NO [LIMIT]", next: true},
		{name: "session fails, sync literal refused", cmd: "A APPEND INBOX {1+}\r\na {1+}\r\nb {1+}\r\nc {1+}\r\nd {1}\r\n",
			reply: "NO [LIMIT]", next: true},
		{name: "catenate then literal", cmd: "A APPEND INBOX CATENATE (TEXT {3+}\r\nab\n URL \"/INBOX/;UID=1\" TEXT {1+}\r\nc) {1+}\r\nx\r\n",
			reply: "OK", stored: 2, next: true, bodies: []string{"ab\n</INBOX/;UID=1>c", "x"}},
		{name: "catenate sync literal", cmd: "A APPEND INBOX CATENATE (URL /INBOX/;UID=1 TEXT {1}\r\n", conts: []string{"c)\r\n"},
			reply: "OK", stored: 1, next: true},
		{name: "catenate empty", cmd: "A APPEND INBOX CATENATE ()\r\n", reply: "BAD", next: true},
		{name: "catenate unknown part", cmd: "A APPEND INBOX CATENATE (TEXT {1+}\r\na FOO x)\r\n", reply: "BAD", next: true},
		{name: "catenate no parenthesis", cmd: "A APPEND INBOX CATENATE TEXT {1+}\r\na\r\n", reply: "BAD", next: true},
		{name: "catenate bad url, sync literal refused", cmd: "A APPEND INBOX CATENATE (TEXT {1+}\r\na URL bad TEXT {1}\r\n",
			reply: "NO [BADURL bad]", next: true},
		{name: "catenate bad url, rest skipped", cmd: "A APPEND INBOX CATENATE (URL bad TEXT {1+}\r\na) CATENATE (TEXT {1+}\r\nb) {1+}\r\nc\r\n",
			reply: "NO [BADURL bad]", next: true},
		{name: "utf8 then literal", cmd: "A APPEND INBOX UTF8 (~{3+}\r\na\r\n) {3+}\r\nb\r\n\r\n",
			reply: "OK", stored: 2, next: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t)
			conn, r := dial(t)
			conn.Write([]byte(tc.cmd))
			l := tagged(t, conn, r, "A", tc.conts...)
			if !strings.HasPrefix(l, "A "+tc.reply) {
				t.Fatalf("reply %q, want %q", l, tc.reply)
			}
			if tc.stored == 2 && strings.Contains(l, "APPENDUID") && !strings.Contains(l, ":") && !strings.Contains(l, ",") {
				t.Errorf("APPENDUID without a UID set: %q", l)
			}
			if tc.next {
				conn.Write([]byte("N NOOP\r\n"))
				if l := tagged(t, conn, r, "N"); !strings.HasPrefix(l, "N OK") {
					t.Errorf("next command: %q", l)
				}
			}
			if got := count(t) - before; got != tc.stored {
				t.Errorf("%d messages stored, want %d", got, tc.stored)
			}
			if tc.bodies != nil {
				if got := <-stored; strings.Join(got, "|") != strings.Join(tc.bodies, "|") {
					t.Errorf("stored %q, want %q", got, tc.bodies)
				}
			}
			for len(stored) > 0 {
				<-stored
			}
		})
	}

	t.Run("dropped mid-command", func(t *testing.T) {
		before := count(t)
		for len(done) > 0 {
			<-done
		}
		conn, _ := dial(t)
		conn.Write([]byte("A APPEND INBOX {3+}\r\na\r\n {10+}\r\nbb"))
		conn.Close()
		if err := <-done; !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			t.Logf("AppendMessages: %v", err)
		}
		if got := count(t) - before; got != 0 {
			t.Fatalf("%d messages stored", got)
		}
	})
}
