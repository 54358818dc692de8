package sieve

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"
)

// testNow is the run time of every case: a Friday.
var testNow = time.Date(2024, 3, 15, 10, 30, 0, 0, time.FixedZone("+0100", 3600))

const (
	msgPlain = "Return-Path: <sender@example.com>\r\n" +
		"Received: from mx.example.com by mail.example.net; Fri, 15 Mar 2024 09:00:00 +0000\r\n" +
		"Received: from client by mx.example.com; Thu, 14 Mar 2024 23:30:00 -0500\r\n" +
		"Date: Thu, 14 Mar 2024 22:15:30 -0400\r\n" +
		"From: \"Coyote, W.\" <coyote@desert.example.org>\r\n" +
		"To: me@example.net, \"Roadrunner\" <roadrunner+birds@acme.example.com>\r\n" +
		"Cc: friends: a@x.example, b@y.example;, boss@example.com\r\n" +
		"Subject: I have a present for you\r\n" +
		"Message-ID: <present-1@desert.example.org>\r\n" +
		"X-Caffeine: C8H10N4O2\r\n" +
		"X-Spam-Score: 0.97\r\n" +
		"\r\n" +
		"Look, I'm sorry about the whole anvil thing, and I really\r\n" +
		"didn't mean to try and drop it on you from the top of the\r\n" +
		"cliff.  I want to make it up to you.  I've got some great\r\n" +
		"birdseed over here at my place--top of the line stuff--and\r\n" +
		"if you come by, I'll have it all wrapped up for you.\r\n"

	msgList = "From: list-owner@lists.example.org\r\n" +
		"Sender: owner-sieve@lists.example.org\r\n" +
		"To: sieve@lists.example.org\r\n" +
		"List-Id: Sieve mailing list <sieve@lists.example.org>\r\n" +
		"Subject: [sieve] Re: =?utf-8?q?R=C3=A9sum=C3=A9?= of the draft\r\n" +
		"Message-ID: <list-7@lists.example.org>\r\n" +
		"Date: Sat, 16 Mar 2024 01:02:03 +0000\r\n" +
		"Precedence: list\r\n" +
		"\r\n" +
		"Hello list.\r\n"

	msgMIME = "From: Tweety <tweety@cage.example.org>\r\n" +
		"To: me@example.net\r\n" +
		"Subject: lunch?\r\n" +
		"Message-ID: <mime-3@cage.example.org>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
		"\r\n" +
		"preamble\r\n" +
		"--b1\r\n" +
		"Content-Type: multipart/alternative; boundary=\"b2\"\r\n" +
		"\r\n" +
		"--b2\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n" +
		"\r\n" +
		"Caf=E9 at noon? I tawt I taw a puddy tat.\r\n" +
		"--b2\r\n" +
		"Content-Type: text/html; charset=utf-8\r\n" +
		"\r\n" +
		"<html><body><p>Caf\xc3\xa9 at <b>noon</b>?</p></body></html>\r\n" +
		"--b2--\r\n" +
		"--b1\r\n" +
		"Content-Type: application/octet-stream; name=\"plan.bin\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n" +
		"QUNNRSByb2NrZXQgc2thdGVz\r\n" +
		"--b1--\r\n"
)

// testEnv builds the Env of a case.
func testEnv(t testing.TB, msg string, env Env) Env {
	t.Helper()
	h, err := ReadHeader(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	env.Header = h
	env.Content = io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg)))
	if env.Envelope.To == "" {
		env.Envelope.To = "me@example.net"
	}
	if env.Envelope.From == "" {
		env.Envelope.From = "sender@example.com"
	}
	if env.Envelope.From == "<>" {
		env.Envelope.From = ""
	}
	if env.Now.IsZero() {
		env.Now = testNow
	}
	// As the caller derives it from the junk filter's field; the tests
	// use Dovecot's configuration: X-Spam-Score from 0 to 1.
	for _, f := range h {
		if strings.EqualFold(f.Name, "X-Spam-Score") {
			var s float64
			if _, err := fmt.Sscan(strings.TrimSpace(f.Value), &s); err == nil {
				env.Spam = Spam{Tested: true, Score: s}
			}
			break
		}
	}
	return env
}

// describe writes a Result the way the tables expect it.
func describeResult(res Result) []string {
	var out []string
	flags := func(f []string) string {
		if len(f) == 0 {
			return ""
		}
		return " flags=" + strings.Join(f, ",")
	}
	for _, a := range res.Actions {
		s := a.Kind.String()
		switch a.Kind {
		case ActionKeep:
			s += flags(a.Flags)
		case ActionFileInto:
			s += " " + a.Mailbox
			if a.Copy {
				s += " :copy"
			}
			if a.Create {
				s += " :create"
			}
			s += flags(a.Flags)
		case ActionRedirect:
			s += " " + a.Address
			if a.Copy {
				s += " :copy"
			}
		case ActionReject, ActionEReject:
			s += " " + a.Reason
		}
		out = append(out, s)
	}
	if res.ImplicitKeep {
		out = append(out, "implicit keep"+flags(res.KeepFlags))
	}
	if v := res.Vacation; v != nil {
		s := fmt.Sprintf("vacation to=%s from=%s subject=%q period=%s", v.To, v.From, v.Subject, v.Period)
		if v.Skip != "" {
			s += " skip=" + v.Skip
		}
		out = append(out, s)
	}
	for _, f := range res.AddTop {
		out = append(out, "addtop "+f.Name+": "+f.Value)
	}
	for _, f := range res.AddBottom {
		out = append(out, "addbottom "+f.Name+": "+f.Value)
	}
	for _, d := range res.Delete {
		out = append(out, fmt.Sprintf("delete %s#%d", d.Name, d.Index))
	}
	return out
}

// summary is what both Posthouse and sieve-test can say of a result:
// the copies stored (with flags), redirects, rejects, a vacation sent.
func summary(res Result) []string {
	var out []string
	fl := func(f []string) string {
		if len(f) == 0 {
			return ""
		}
		l := make([]string, len(f))
		for i, x := range f {
			l[i] = strings.ToLower(x)
		}
		sort.Strings(l)
		return " [" + strings.Join(l, " ") + "]"
	}
	for _, a := range res.Actions {
		switch a.Kind {
		case ActionKeep:
			out = append(out, "store INBOX"+fl(a.Flags))
		case ActionFileInto:
			out = append(out, "store "+a.Mailbox+fl(a.Flags))
		case ActionRedirect:
			out = append(out, "redirect "+strings.ToLower(a.Address))
		case ActionReject, ActionEReject:
			out = append(out, "reject")
		}
	}
	if res.ImplicitKeep {
		out = append(out, "store INBOX"+fl(res.KeepFlags))
	}
	if res.Vacation != nil && res.Vacation.Skip == "" {
		out = append(out, "vacation")
	}
	sort.Strings(out)
	return out
}

// fakeDups is a duplicate-tracking list in memory.
type fakeDups map[string]bool

func (d fakeDups) Seen(_ context.Context, id string) (bool, error) { return d[id], nil }

// fakeScripts holds scripts to include, by "personal/name".
type fakeScripts map[string]string

func (s fakeScripts) Script(_ context.Context, loc Location, name string) (*Script, error) {
	src, ok := s[loc.String()+"/"+name]
	if !ok {
		return nil, ErrNoSuchScript
	}
	return Compile([]byte(src), Options{})
}

type fakeMailboxes []string

func (m fakeMailboxes) MailboxExists(_ context.Context, name string) (bool, error) {
	for _, x := range m {
		if x == name {
			return true, nil
		}
	}
	return false, nil
}
