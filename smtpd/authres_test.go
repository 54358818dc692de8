package smtpd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// fakeVerifier stands in for package dkim (tested there): it reports the
// signing domain of a message's signature as passing unless the body says
// "altered", and records what it was asked.
type fakeVerifier struct{ calls *atomic.Int32 }

func (v fakeVerifier) VerifyDKIM(_ context.Context, msg io.Reader) ([]DKIMResult, error) {
	v.calls.Add(1)
	b, err := io.ReadAll(msg)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte("altered")) {
		return []DKIMResult{{Result: "fail", Domain: "sender.test", Err: errors.New("body hash did not verify")}}, nil
	}
	return []DKIMResult{{Result: "pass", Domain: "sender.test", Identifier: "@sender.test"}}, nil
}

func TestAuthenticationResults(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	calls := new(atomic.Int32)
	ts := newTestServer(t, func(o *Options) { o.DKIM = fakeVerifier{calls} })

	sign := func(msg string) string {
		var b bytes.Buffer
		if err := msgdkim.Sign(&b, strings.NewReader(msg), &msgdkim.SignOptions{Domain: "sender.test", Selector: "sel", Signer: priv}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	plain := "From: a@sender.test\r\nTo: bob@example.org\r\nSubject: signed\r\n\r\nbody\r\n"
	signed := sign(plain)
	forged := "Authentication-Results: MX.example.org; dkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: other.example; dkim=pass\r\n" + plain

	tests := []struct {
		name, msg  string
		want       []string
		notWant    []string
		wantSuffix string
		wantCalls  int32 // verifications asked for: none without a signature
	}{
		{name: "pass", msg: signed, want: []string{"Authentication-Results: mx.example.org;\r\n\tdkim=pass header.d=sender.test header.i=@sender.test\r\n"}, wantSuffix: signed, wantCalls: 1},
		{name: "fail", msg: strings.Replace(signed, "body\r\n", "altered\r\n", 1), want: []string{"\tdkim=fail header.d=sender.test"}, wantCalls: 1},
		{name: "none", msg: plain, want: []string{"Authentication-Results: mx.example.org;\r\n\tdkim=none\r\n"}, wantSuffix: plain},
		{name: "forged field removed", msg: forged,
			want:       []string{"Authentication-Results: other.example; dkim=pass\r\n"},
			notWant:    []string{"bank.test"},
			wantSuffix: "Authentication-Results: other.example; dkim=pass\r\n" + plain},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			c := dialRaw(t, ts.addr)
			c.ehlo()
			c.cmd("MAIL FROM:<a@sender.test>", "250 ")
			c.cmd("RCPT TO:<bob@example.org>", "250 ")
			c.cmd("DATA", "354 ")
			c.write(tc.msg + ".\r\n")
			c.expect("250 ")
			got := string(ts.messages("bob@example.org")[i])
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("stored message lacks %q:\n%s", w, got)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(got, nw) {
					t.Errorf("stored message has %q:\n%s", nw, got)
				}
			}
			if tc.wantSuffix != "" && !strings.HasSuffix(got, tc.wantSuffix) {
				t.Errorf("stored message does not end with the client's bytes:\n%s", got)
			}
			if n := calls.Load() - before; n != tc.wantCalls {
				t.Errorf("%d verifications, want %d", n, tc.wantCalls)
			}
		})
	}

	t.Run("not on submission", func(t *testing.T) {
		subCalls := new(atomic.Int32)
		sub := newTestServer(t, withMode(ModeSubmissions), func(o *Options) { o.DKIM = fakeVerifier{subCalls} })
		c := dialRawTLS(t, sub.addr)
		c.ehlo()
		c.authPlain("alice@example.org", "alice-secret", "235 ")
		c.cmd("MAIL FROM:<alice@example.org>", "250 ")
		c.cmd("RCPT TO:<bob@example.org>", "250 ")
		c.cmd("DATA", "354 ")
		c.write("Subject: x\r\n\r\ny\r\n.\r\n")
		c.expect("250 ")
		if got := sub.messages("bob@example.org"); len(got) != 1 || bytes.Contains(got[0], []byte("Authentication-Results")) {
			t.Errorf("stored %q", got)
		}
		if n := subCalls.Load(); n != 0 {
			t.Errorf("%d verifications on submission", n)
		}
	})
}

func TestForgedAuthResultsRanges(t *testing.T) {
	msg := "Received: x\r\n" +
		"Authentication-Results: mx.example.org;\r\n\tdkim=pass\r\n" +
		"Subject: s\r\n" +
		"authentication-results :  (comment) mx.example.org ; none\r\n" +
		"\r\n" +
		"Authentication-Results: mx.example.org; in the body\r\n"
	got := forgedAuthResults(strings.NewReader(msg), int64(len(msg)), "mx.example.org")
	want := []string{
		"Authentication-Results: mx.example.org;\r\n\tdkim=pass\r\n",
		"authentication-results :  (comment) mx.example.org ; none\r\n",
	}
	if len(got) != len(want) {
		t.Fatalf("ranges = %v", got)
	}
	for i, w := range want {
		if s := msg[got[i][0]:got[i][1]]; s != w {
			t.Errorf("range %d covers %q, want %q", i, s, w)
		}
	}
}
