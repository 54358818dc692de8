package smtpd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/srs"
)

// submitHeader sends a message with header hdr (CRLF-terminated fields)
// from MAIL FROM from to someone@elsewhere.test and returns the reply line.
func submitHeader(t *testing.T, c *rawConn, from, hdr string) string {
	t.Helper()
	c.cmd("MAIL FROM:<"+from+">", "250 ")
	c.cmd("RCPT TO:<someone@elsewhere.test>", "250 ")
	c.cmd("DATA", "354 ")
	c.write(hdr + "Subject: test\r\n\r\nbody\r\n.\r\n")
	line, _ := c.reply()
	return line
}

func TestHeaderSender(t *testing.T) {
	ts := newTestServer(t, withMode(ModeSubmissions))
	c := dialRawTLS(t, ts.addr)
	c.ehlo()
	c.authPlain("alice@example.org", "alice-secret", "235 2.0.0 ")
	for _, tc := range []struct {
		name, hdr, want string
	}{
		{"own address", "From: Alice <alice@example.org>\r\n", "250 2.0.0 "},
		{"own address, other case", "From: ALICE@example.org\r\n", "250 2.0.0 "},
		{"alias", "From: The Team <team@example.org>\r\n", "250 2.0.0 "},
		{"encoded display name", "From: =?utf-8?q?Al=C3=AFce?= <alice@example.org>\r\n", "250 2.0.0 "},
		{"folded field", "From: \"Alice\"\r\n <alice@example.org>\r\n", "250 2.0.0 "},
		{"two own addresses", "From: alice@example.org, team@example.org\r\nSender: alice@example.org\r\n", "250 2.0.0 "},
		{"group of own addresses", "From: us: alice@example.org, team@example.org;\r\n", "250 2.0.0 "},
		{"own Sender", "From: alice@example.org\r\nSender: team@example.org\r\n", "250 2.0.0 "},
		{"foreign", "From: Bob <bob@example.org>\r\n", "553 5.7.1 From address <bob@example.org> not owned by authenticated user alice@example.org"},
		{"one of two foreign", "From: alice@example.org, bob@example.org\r\n", "553 5.7.1 From address <bob@example.org> "},
		{"foreign group member", "From: us: alice@example.org, carol@example.net;\r\n", "553 5.7.1 From address <carol@example.net> "},
		{"second From field foreign", "From: alice@example.org\r\nFrom: bob@example.org\r\n", "553 5.7.1 From address <bob@example.org> "},
		{"own Sender does not cover a foreign From", "From: bob@example.org\r\nSender: alice@example.org\r\n", "553 5.7.1 From address <bob@example.org> "},
		{"foreign Sender", "From: alice@example.org\r\nSender: bob@example.org\r\n", "553 5.7.1 Sender address <bob@example.org> "},
		{"empty group", "From: undisclosed-senders:;\r\n", "550 5.6.0 "},
		{"empty From", "From: \r\n", "550 5.6.0 "},
		{"malformed", "From: alice@example.org <alice@example.org>\r\n", "550 5.6.0 "},
		{"malformed Sender", "From: alice@example.org\r\nSender: <<>>\r\n", "550 5.6.0 "},
		{"repeated addresses", "From: " + strings.Repeat("alice@example.org, team@example.org, x@example.org,\r\n ", 30) + "alice@example.org\r\n", "553 5.7.1 From address <x@example.org> "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := submitHeader(t, c, "alice@example.org", tc.hdr)
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("reply %q, want %q", got, tc.want)
			}
		})
	}
	var many []string
	for i := range maxSenderAddresses + 1 {
		many = append(many, "alice+"+strings.Repeat("x", i)+"@example.org")
	}
	if got := submitHeader(t, c, "alice@example.org", "From: "+strings.Join(many, ",\r\n ")+"\r\n"); !strings.HasPrefix(got, "550 5.6.0 ") {
		t.Fatalf("From with %d addresses: %q", maxSenderAddresses+1, got)
	}
	n := len(ts.queue.all())

	// No From: the envelope sender (already checked at MAIL) is added.
	if got := submitHeader(t, c, "team@example.org", "To: someone@elsewhere.test\r\n"); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("no From: %q", got)
	}
	q := ts.queue.all()
	if len(q) != n+1 || !strings.Contains(string(q[n].body), "\r\nFrom: <team@example.org>\r\n") {
		t.Fatalf("no From field added:\n%s", q[len(q)-1].body)
	}
	if strings.Count(string(q[n].body), "From:") != 1 {
		t.Fatalf("From added twice:\n%s", q[n].body)
	}
}

// Port 25 does not check From: mail from elsewhere is from someone else.
func TestHeaderSenderMTA(t *testing.T) {
	ts := newTestServer(t)
	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<x@remote.test>", "250 ")
	c.cmd("RCPT TO:<bob@example.org>", "250 ")
	c.cmd("DATA", "354 ")
	c.write("From: alice@example.org\r\nSender: nonsense <<\r\n\r\nhi\r\n.\r\n")
	c.expect("250 ")
}

// With the real directory: own, +tag, alias, grant, domain grant, and
// the same rule at MAIL FROM and in From.
func TestHeaderSenderGrants(t *testing.T) {
	ctx := context.Background()
	db, err := auth.Open(ctx, filepath.Join(t.TempDir(), "users.sqlite"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, d := range []string{"example.org", "shared.example"} {
		if err := db.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"alice@example.org", "bob@example.org"} {
		if _, err := db.AddUser(ctx, u, "pw-"+u, 0); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.AddAlias(ctx, "sales@example.org", []string{"alice@example.org", "x@elsewhere.test"}))
	must(db.AddSendAs(ctx, "alice@example.org", "ceo@example.org"))
	must(db.AddSendAs(ctx, "alice@example.org", "alice@personal.test"))
	must(db.AddSendAs(ctx, "alice@example.org", "@shared.example"))

	ts := newTestServer(t, withMode(ModeSubmissions), func(o *Options) { o.Directory = db })
	c := dialRawTLS(t, ts.addr)
	c.ehlo()
	c.authPlain("alice@example.org", "pw-alice@example.org", "235 2.0.0 ")
	for _, tc := range []struct {
		name, from, want string
	}{
		{"own", "alice@example.org", "250 "},
		{"own +tag", "alice+lists@example.org", "250 "},
		{"alias", "sales@example.org", "250 "},
		{"grant", "ceo@example.org", "250 "},
		{"foreign grant", "alice@personal.test", "250 "},
		{"domain grant", "helpdesk@shared.example", "250 "},
		{"other user", "bob@example.org", "553 5.7.1 "},
		{"foreign", "alice@elsewhere.test", "553 5.7.1 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Envelope and header under the same rule.
			c.cmd("MAIL FROM:<"+tc.from+">", tc.want)
			c.cmd("RSET", "250 ")
			got := submitHeader(t, c, "alice@example.org", "From: <"+tc.from+">\r\n")
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("From %s: %q, want %q", tc.from, got, tc.want)
			}
		})
	}
	// A grant withdrawn takes effect at once.
	must(db.RemoveSendAs(ctx, "alice@example.org", "@shared.example"))
	if got := submitHeader(t, c, "alice@example.org", "From: helpdesk@shared.example\r\n"); !strings.HasPrefix(got, "553 5.7.1 ") {
		t.Fatalf("after the grant was removed: %q", got)
	}
}

func TestSRSBounce(t *testing.T) {
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	rw, err := srs.New(srs.Options{Domain: "mx.example.org", Secret: []byte("0123456789abcdef0123456789abcdef"), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.SRS = rw })
	valid, err := rw.Forward("sender@remote.test")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := srs.New(srs.Options{Domain: "mx.example.org", Secret: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now.Add(-30 * 24 * time.Hour) }})
	expired, _ := old.Forward("sender@remote.test")
	tampered := strings.Replace(valid, "=remote.test=", "=evil.test=", 1)

	c := dialRaw(t, ts.addr)
	c.ehlo()
	c.cmd("MAIL FROM:<>", "250 ")
	c.cmd("RCPT TO:<"+tampered+">", "550 5.1.1 ")
	c.cmd("RCPT TO:<"+expired+">", "550 5.1.1 ")
	// Someone else's SRS address is resolved like any other: not ours.
	c.cmd("RCPT TO:<SRS0=abcd=AB=remote.test=x@elsewhere.test>", "554 5.7.1 ")
	c.cmd("RCPT TO:<"+strings.ToLower(valid)+">", "250 ")
	c.cmd("DATA", "354 ")
	c.write("From: MAILER-DAEMON@elsewhere.test\r\nSubject: Undelivered\r\n\r\nbounce\r\n.\r\n")
	c.expect("250 ")
	q := ts.queue.all()
	if len(q) != 1 || q[0].from != "" || len(q[0].rcpts) != 1 || q[0].rcpts[0] != "sender@remote.test" {
		t.Fatalf("queued %+v, want the bounce to sender@remote.test with the null sender", q)
	}
	// Only bounces.
	c.cmd("MAIL FROM:<spammer@elsewhere.test>", "250 ")
	c.cmd("RCPT TO:<"+valid+">", "550 5.7.1 ")
	c.cmd("RSET", "250 ")

	// Without SRS configured the address is just not ours.
	plain := newTestServer(t)
	c2 := dialRaw(t, plain.addr)
	c2.ehlo()
	c2.cmd("MAIL FROM:<>", "250 ")
	c2.cmd("RCPT TO:<"+valid+">", "554 5.7.1 ")
}

func BenchmarkHeaderSender(b *testing.B) {
	ts := newTestServer(b, withMode(ModeSubmissions))
	s := &session{s: ts.srv, ctx: context.Background(), user: "alice@example.org", log: ts.srv.log}
	hdr := readHeaderInfo(strings.NewReader("From: Alice Example <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: hello\r\n\r\n"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.checkHeaderSender(hdr, "alice@example.org", ts.srv.log); err != nil {
			b.Fatal(err)
		}
	}
}
