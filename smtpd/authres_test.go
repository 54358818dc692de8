package smtpd

import (
	"strings"
	"testing"
)

// TestForgedAuthResults: on the MTA port, fields claiming our authserv-id
// are removed before anyone reads the message, other servers' fields stay,
// and smtpd adds none of its own (the inbound delivery filter does).
func TestForgedAuthResults(t *testing.T) {
	ts := newTestServer(t)
	plain := "From: a@sender.test\r\nTo: bob@example.org\r\nSubject: plain\r\n\r\nbody\r\n"
	forged := "Authentication-Results: MX.example.org; dkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: other.example; dkim=pass\r\n" + plain
	tests := []struct {
		name, msg  string
		wantSuffix string
	}{
		{name: "nothing added", msg: plain, wantSuffix: plain},
		{name: "forged field removed", msg: forged, wantSuffix: "Authentication-Results: other.example; dkim=pass\r\n" + plain},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr)
			c.ehlo()
			c.cmd("MAIL FROM:<a@sender.test>", "250 ")
			c.cmd("RCPT TO:<bob@example.org>", "250 ")
			c.cmd("DATA", "354 ")
			c.write(tc.msg + ".\r\n")
			c.expect("250 ")
			got := string(ts.messages("bob@example.org")[i])
			if !strings.HasSuffix(got, tc.wantSuffix) {
				t.Errorf("stored message does not end with the client's bytes less forged fields:\n%s", got)
			}
			if n := strings.Count(got, "Authentication-Results:"); n != strings.Count(tc.wantSuffix, "Authentication-Results:") {
				t.Errorf("%d Authentication-Results fields:\n%s", n, got)
			}
		})
	}
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
