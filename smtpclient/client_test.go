package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// step is one exchange of a scripted server: wait for a line starting with
// expect ("" reads nothing), then write reply (may hold several lines).
type step struct{ expect, reply string }

// scripted runs a raw SMTP server over a pipe and returns the client end
// and a channel that reports the first mismatch ("" when the script ran).
func scripted(t *testing.T, steps []step) (net.Conn, <-chan string) {
	t.Helper()
	cli, srv := net.Pipe()
	done := make(chan string, 1)
	go func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		for _, s := range steps {
			if s.expect != "" {
				srv.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := br.ReadString('\n')
				if err != nil {
					done <- "read: " + err.Error()
					return
				}
				if !strings.HasPrefix(line, s.expect) {
					done <- "got " + line + ", want " + s.expect
					return
				}
			}
			if s.reply != "" {
				srv.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := srv.Write([]byte(s.reply)); err != nil {
					done <- "write: " + err.Error()
					return
				}
			}
		}
		done <- ""
	}()
	t.Cleanup(func() { cli.Close() })
	return cli, done
}

// bodySteps consumes a DATA body line by line, each line checked by
// prefix ("\r\n" for an empty line).
func bodySteps(lines ...string) []step {
	var s []step
	for _, l := range lines {
		s = append(s, step{expect: l})
	}
	return s
}

func TestClientHELOFallbackAndLockstep(t *testing.T) {
	steps := []step{
		{"", "220 old.test ready\r\n"},
		{"EHLO mail.a.test", "502 5.5.1 what?\r\n"},
		{"HELO mail.a.test", "250 old.test\r\n"},
		{"MAIL FROM:<a@a.test>\r\n", "250 ok\r\n"}, // no SIZE/BODY without EHLO
		{"RCPT TO:<x@old.test>", "550 5.1.1 unknown\r\n"},
		{"RCPT TO:<y@old.test>", "250 ok\r\n"},
		{"DATA", "354 go\r\n"},
	}
	steps = append(steps, bodySteps("Subject: x", "\r\n", "..dot", ".")...)
	steps = append(steps, step{"", "250-2.0.0 queued as 1\r\n250 2.0.0 thanks\r\n"})
	conn, done := scripted(t, steps)
	c := New(context.Background(), conn, "old.test", Timeouts{})
	if r, err := c.readReply(time.Second, "reply"); err != nil || r.Code != 220 {
		t.Fatalf("greeting %v %v", r, err)
	}
	if r, err := c.Hello("mail.a.test"); err != nil || r.Code != 250 {
		t.Fatalf("hello %v %v", r, err)
	}
	replies, err := c.Transaction("a@a.test", []string{"x@old.test", "y@old.test"}, MailParams{Size: 20, EightBit: true}, strings.NewReader("Subject: x\r\n\r\n.dot\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if replies[0].String() != "550 5.1.1 unknown" || replies[1].String() != "250 2.0.0 queued as 1\nthanks" {
		t.Errorf("replies %q", replies)
	}
	if msg := <-done; msg != "" {
		t.Error(msg)
	}
}

func TestClientPipelinedAllRefused(t *testing.T) {
	conn, done := scripted(t, []step{
		{"", "220 mx ready\r\n"},
		{"EHLO", "250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"},
		{"MAIL FROM:<> SIZE=5 BODY=8BITMIME", ""},
		{"RCPT TO:<x@b.test>", "250 ok\r\n452 4.5.3 too many\r\n"},
		// no DATA: nothing was accepted
		{"QUIT", "221 bye\r\n"},
	})
	c := New(context.Background(), conn, "mx", Timeouts{})
	c.readReply(time.Second, "reply")
	c.Hello("mail.a.test")
	if c.MaxSize() != 1000 {
		t.Errorf("SIZE %d", c.MaxSize())
	}
	replies, err := c.Transaction("", []string{"x@b.test"}, MailParams{Size: 5, EightBit: true}, strings.NewReader("x\r\n"))
	if err != nil || replies[0].Code != 452 || replies[0].Permanent() {
		t.Errorf("%v %v", replies, err)
	}
	c.Quit()
	if msg := <-done; msg != "" {
		t.Error(msg)
	}
}

func TestClientRefusedMAILExplainsAll(t *testing.T) {
	conn, done := scripted(t, []step{
		{"", "220 mx\r\n"},
		{"EHLO", "250-mx\r\n250 PIPELINING\r\n"},
		{"MAIL FROM:<a@a.test>", ""},
		{"RCPT TO:<x@b.test>", ""},
		{"RCPT TO:<y@b.test>", "550 5.7.1 sender blocked\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"},
	})
	c := New(context.Background(), conn, "mx", Timeouts{})
	c.readReply(time.Second, "reply")
	c.Hello("mail.a.test")
	replies, err := c.Transaction("a@a.test", []string{"x@b.test", "y@b.test"}, MailParams{}, strings.NewReader("x\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range replies {
		if r.String() != "550 5.7.1 sender blocked" {
			t.Errorf("reply %q, want the MAIL reply", r)
		}
	}
	if msg := <-done; msg != "" {
		t.Error(msg)
	}
}

func TestClientConnectionLostAfterData(t *testing.T) {
	steps := []step{
		{"", "220 mx\r\n"},
		{"EHLO", "250 mx\r\n"},
		{"MAIL", "250 ok\r\n"},
		{"RCPT", "250 ok\r\n"},
		{"DATA", "354 go\r\n"},
	}
	steps = append(steps, bodySteps("hello", ".")...) // then hang up without a reply
	conn, _ := scripted(t, steps)
	c := New(context.Background(), conn, "mx", Timeouts{})
	c.readReply(time.Second, "reply")
	c.Hello("mail.a.test")
	replies, err := c.Transaction("a@a.test", []string{"x@b.test"}, MailParams{}, strings.NewReader("hello\r\n"))
	if err == nil {
		t.Fatal("no error for a lost connection")
	}
	if replies[0].Code != 0 {
		t.Errorf("accepted-at-RCPT recipient reported %q after a lost connection; must have no result", replies[0])
	}
}

func TestClientBadReplies(t *testing.T) {
	tests := []struct{ name, reply string }{
		{"not a number", "abc hello\r\n"},
		{"code out of range", "999 what\r\n"},
		{"code changes mid-reply", "250-a\r\n251 b\r\n"},
		{"bad separator", "250+x\r\n"},
		{"line too long", "250 " + strings.Repeat("x", 3000) + "\r\n"},
		{"cut mid-line", "250 all is w"},
		{"cut mid-reply", "250-first line\r\n250 secon"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, _ := scripted(t, []step{{"", tc.reply}})
			c := New(context.Background(), conn, "mx", Timeouts{})
			if r, err := c.readReply(time.Second, "reply"); err == nil {
				t.Errorf("accepted %q as %v", tc.reply, r)
			}
		})
	}
}

func TestClientCancelled(t *testing.T) {
	conn, _ := scripted(t, []step{{"", ""}}) // never greets
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := New(ctx, conn, "mx", Timeouts{})
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := c.readReply(time.Minute, "reply"); err == nil {
		t.Fatal("read survived cancellation")
	}
}

func FuzzParseReplyLine(f *testing.F) {
	f.Add("250-mx.b.test Hello")
	f.Add("250 2.0.0 OK")
	f.Add("550 5.1.1 <x@y>: user unknown")
	f.Add("354")
	f.Add("99 x")
	f.Fuzz(func(t *testing.T, line string) {
		code, more, text, err := ParseReplyLine(line)
		if err != nil {
			return
		}
		if code < 200 || code > 599 {
			t.Fatalf("code %d accepted", code)
		}
		if len(line) > 3 && !strings.HasSuffix(line, text) {
			t.Fatalf("text %q not from %q", text, line)
		}
		if more && line[3] != '-' {
			t.Fatal("more without '-'")
		}
		enh, rest := splitEnhanced(code, text)
		if enh != "" {
			if enh[0] != byte('0'+code/100) || !strings.HasSuffix(text, rest) {
				t.Fatalf("enhanced %q from %q", enh, text)
			}
		}
		// A stored reply parses back to the same code.
		r := Reply{Code: code, Enhanced: enh, Text: rest}
		if back := ParseReply(r.String()); back.Code != code || (enh != "" && back.Enhanced != enh) {
			t.Fatalf("round trip %q → %d %q", r.String(), back.Code, back.Enhanced)
		}
	})
}

// FuzzReadReply: whatever a server sends, a reply read from it stays
// within the bounds (lines, bytes) or is an error.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte("220 mx.b.test ESMTP\r\n"))
	f.Add([]byte("250-mx.b.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"))
	f.Add([]byte("550-5.1.1 no\r\n550 5.1.1 such user\r\n"))
	f.Add([]byte("250 cut"))
	f.Add([]byte("354\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Client{br: bufio.NewReaderSize(bytes.NewReader(data), 4096)}
		r, err := c.parseReply()
		if err != nil {
			return
		}
		if r.Code < 200 || r.Code > 599 {
			t.Fatalf("code %d", r.Code)
		}
		if len(r.Text) > maxReplyBytes || strings.Count(r.Text, "\n") >= maxReplyLines {
			t.Fatalf("reply of %d bytes, %d lines passed the bounds", len(r.Text), strings.Count(r.Text, "\n")+1)
		}
	})
}
