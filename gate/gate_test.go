package gate

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/internal/logbuf"
)

// clock is a movable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a gate over a loopback DNS server.
type fixture struct {
	g    *Gate
	dns  *dnstest.Server
	logs *logbuf.Buffer
	clk  *clock
}

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	f := &fixture{dns: dnstest.NewServer(t), logs: &logbuf.Buffer{}, clk: newClock()}
	r, err := dns.New(dns.Options{Server: f.dns.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	o.Resolver = r
	o.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.Now = f.clk.now
	if o.Greylist != nil && o.Greylist.Path == "" {
		o.Greylist.Path = filepath.Join(t.TempDir(), "greylist.sqlite")
	}
	g, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	f.g = g
	return f
}

// rcpt connects from ip and asks about one recipient.
func (f *fixture) rcpt(t *testing.T, ip, from, rcpt string) error {
	t.Helper()
	ctx := t.Context()
	c := f.g.Connect(ctx, netip.MustParseAddr(ip), nil)
	if c == nil {
		return nil
	}
	if err := c.Mail(ctx, from); err != nil {
		return err
	}
	return c.Rcpt(ctx, from, rcpt)
}

func replyOf(t *testing.T, err error) *Reply {
	t.Helper()
	if err == nil {
		return nil
	}
	var r *Reply
	if !errors.As(err, &r) {
		t.Fatalf("error %v is not a *Reply", err)
	}
	return r
}

// TestQueryName: RFC 5782 §2.1 and §2.4's examples.
func TestQueryName(t *testing.T) {
	for _, tc := range []struct{ name, ip, want string }{
		{"ipv4", "192.0.2.99", "99.2.0.192.bl.example"},
		{"ipv4 mapped", "::ffff:192.0.2.1", "1.2.0.192.bl.example"},
		{"ipv6", "2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.ip)
			if got := queryName(ip, "bl.example"); got != tc.want {
				t.Errorf("queryName(%s) = %q, want %q", tc.ip, got, tc.want)
			}
			// The same labels as the reverse-mapping name.
			rev, _ := mdns.ReverseAddr(ip.Unmap().String())
			rev = strings.TrimSuffix(strings.TrimSuffix(rev, "in-addr.arpa."), "ip6.arpa.")
			if got := queryName(ip, "bl.example"); got != rev+"bl.example" {
				t.Errorf("queryName(%s) = %q, reverse name gives %q", tc.ip, got, rev+"bl.example")
			}
		})
	}
}

// TestLists: DNSBL and DNSWL answers and what the client is told.
func TestLists(t *testing.T) {
	f := newFixture(t, Options{DNSBL: []string{"bl.example", "bl2.example."}, DNSWL: []string{"wl.example"}})
	d := f.dns
	// 127.0.0.2, the conventional test entry, listed with a reason.
	d.Add("2.0.0.127.bl.example. A 127.0.0.2")
	d.AddTXT("2.0.0.127.bl.example", "Listed: see https://bl.example/query/127.0.0.2")
	// Listed without a reason.
	d.Add("3.0.0.127.bl2.example. A 127.0.0.4")
	// Listed in the block list and in the allow list.
	d.Add("4.0.0.127.bl.example. A 127.0.0.2", "4.0.0.127.wl.example. A 127.0.10.2")
	// A reason with controls, non-ASCII and a line break, and far too long.
	d.Add("5.0.0.127.bl.example. A 127.0.0.3")
	d.AddTXT("5.0.0.127.bl.example", "bad\r\nSMTP-injection: yes\x00 \xc3\xa9t\xc3\xa9 "+strings.Repeat("x", 600))
	// The list refuses our resolver (Spamhaus's public-resolver code).
	d.Add("6.0.0.127.bl.example. A 127.255.255.254")
	// A resolver that answers NXDOMAIN with an advertising server.
	d.Add("7.0.0.127.bl.example. A 192.0.2.80")
	// The list's server fails.
	d.SetRcode("8.0.0.127.bl.example", mdns.RcodeServerFailure)
	// IPv6, by nibbles.
	d.Add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example. A 127.0.0.2")
	d.AddTXT("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example", "v6 listed")

	for _, tc := range []struct {
		name, ip, rcpt string
		want           string // reply text prefix; "" for accepted
	}{
		{"listed with reason", "127.0.0.2", "alice@example.org", "Service unavailable; client [127.0.0.2] blocked using bl.example; Listed: see https://bl.example/query/127.0.0.2"},
		{"second list, no reason", "127.0.0.3", "alice@example.org", "Service unavailable; client [127.0.0.3] blocked using bl2.example"},
		{"unlisted", "127.0.0.9", "alice@example.org", ""},
		{"allow list wins", "127.0.0.4", "alice@example.org", ""},
		// Package dns hands TXT strings over in presentation form, with
		// \DDD escapes; whatever arrives, the reply is bounded and
		// printable (checked below for every case).
		{"reason sanitised", "127.0.0.5", "alice@example.org", "Service unavailable; client [127.0.0.5] blocked using bl.example; bad"},
		{"refused query is no listing", "127.0.0.6", "alice@example.org", ""},
		{"answer outside 127/8 ignored", "127.0.0.7", "alice@example.org", ""},
		{"SERVFAIL fails open", "127.0.0.8", "alice@example.org", ""},
		{"ipv6 listed", "2001:db8::1", "alice@example.org", "Service unavailable; client [2001:db8::1] blocked using bl.example; v6 listed"},
		{"postmaster reachable when listed", "127.0.0.2", "PostMaster@example.org", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := replyOf(t, f.rcpt(t, tc.ip, "sender@remote.example", tc.rcpt))
			if tc.want == "" {
				if r != nil {
					t.Fatalf("refused: %v", r)
				}
				return
			}
			if r == nil {
				t.Fatalf("accepted, want %q", tc.want)
			}
			if r.Code != 554 || r.Enhanced != [3]int{5, 7, 1} || !strings.HasPrefix(r.Text, tc.want) {
				t.Fatalf("reply %d %v %q, want 554 5.7.1 %q", r.Code, r.Enhanced, r.Text, tc.want)
			}
			if len(r.Text) > maxReplyText {
				t.Errorf("reply text is %d octets", len(r.Text))
			}
			for i := 0; i < len(r.Text); i++ {
				if c := r.Text[i]; c < ' ' || c > '~' {
					t.Fatalf("reply has octet %#x: %q", c, r.Text)
				}
			}
		})
	}
	// The refused query and the odd answer are logged once each, however
	// many clients ask.
	f.rcpt(t, "127.0.0.6", "", "alice@example.org")
	f.rcpt(t, "127.0.0.7", "", "alice@example.org")
	logs := f.logs.String()
	if n := strings.Count(logs, "DNS list refused our query"); n != 1 {
		t.Errorf("refused query logged %d times, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "answered outside 127.0.0.0/8"); n != 1 {
		t.Errorf("odd answer logged %d times, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "DNS list lookup failed, not refusing") {
		t.Errorf("SERVFAIL not logged:\n%s", logs)
	}
	// The allow list is asked; the block lists' TXT only for a listing.
	if d.Queries("4.0.0.127.wl.example", "A") == 0 {
		t.Error("allow list not queried")
	}
	if n := d.Queries("9.0.0.127.bl.example", "TXT"); n != 0 {
		t.Errorf("%d TXT queries for an unlisted client", n)
	}
}

// TestListsExempt: trusted networks are never looked up.
func TestListsExempt(t *testing.T) {
	f := newFixture(t, Options{DNSBL: []string{"bl.example"}, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}})
	f.dns.Add("2.1.0.127.bl.example. A 127.0.0.2")
	if c := f.g.Connect(t.Context(), netip.MustParseAddr("127.0.1.2"), nil); c != nil {
		t.Fatal("exempt client got checks")
	}
	if n := f.dns.Queries("2.1.0.127.bl.example", "A"); n != 0 {
		t.Fatalf("%d queries for an exempt client", n)
	}
}

// TestLookupCancelled: a connection that ends while the lists are asked
// leaves no lookup behind (Close waits for them; the test's Cleanup calls
// it), and a RCPT whose session ended is not refused.
func TestLookupCancelled(t *testing.T) {
	f := newFixture(t, Options{DNSBL: []string{"bl.example"}})
	ctx, cancel := context.WithCancel(t.Context())
	c := f.g.Connect(ctx, netip.MustParseAddr("127.0.0.2"), nil)
	cancel()
	if err := c.Rcpt(ctx, "", "alice@example.org"); err != nil {
		t.Fatalf("Rcpt after the connection ended: %v", err)
	}
}

func TestSanitizeReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"  plain  ", "plain"},
		{"a\r\n554 5.7.1 injected", "a 554 5.7.1 injected"},
		{"\t\x00\x7f\xff", ""},
		{strings.Repeat("y", 1000), strings.Repeat("y", maxReasonLen)},
		{strings.Repeat("y ", 1000), strings.TrimSpace(strings.Repeat("y ", maxReasonLen/2))},
	} {
		if got := sanitizeReason(tc.in); got != tc.want {
			t.Errorf("sanitizeReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSanitizeReason(f *testing.F) {
	f.Add("Listed: see https://bl.example/\r\n")
	f.Add("\xff\x00 a  b ")
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitizeReason(s)
		if len(got) > maxReasonLen {
			t.Fatalf("%d octets", len(got))
		}
		if got != strings.TrimSpace(got) || strings.Contains(got, "  ") {
			t.Fatalf("untrimmed %q", got)
		}
		for i := 0; i < len(got); i++ {
			if got[i] < ' ' || got[i] > '~' {
				t.Fatalf("octet %#x in %q", got[i], got)
			}
		}
		r := blockReply(netip.MustParseAddr("2001:db8::1"), strings.Repeat("z", 180)+".example", got)
		if len(r.Text) > maxReplyText {
			t.Fatalf("reply text %d octets", len(r.Text))
		}
	})
}

// TestSenderRate: MaxMessagesPerSender transactions per window per sender;
// the null sender is counted per client address.
func TestSenderRate(t *testing.T) {
	f := newFixture(t, Options{MaxMessagesPerSender: 3, RateWindow: time.Hour})
	ctx := t.Context()
	a := f.g.Connect(ctx, netip.MustParseAddr("192.0.2.1"), nil)
	b := f.g.Connect(ctx, netip.MustParseAddr("198.51.100.1"), nil)
	for i := range 3 {
		// Case does not make a new sender; the other client counts too.
		c, from := a, "Bulk@Sender.example"
		if i == 1 {
			c, from = b, "bulk@sender.example"
		}
		if err := c.Mail(ctx, from); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	r := replyOf(t, a.Mail(ctx, "bulk@sender.example"))
	if r == nil || r.Code != 450 || r.Enhanced != [3]int{4, 7, 1} {
		t.Fatalf("fourth message: %v, want 450 4.7.1", r)
	}
	if err := a.Mail(ctx, "other@sender.example"); err != nil {
		t.Fatalf("another sender: %v", err)
	}
	// Null sender: per client address (IPv6 /64).
	v6a := f.g.Connect(ctx, netip.MustParseAddr("2001:db8::1"), nil)
	v6b := f.g.Connect(ctx, netip.MustParseAddr("2001:db8::2"), nil)
	other := f.g.Connect(ctx, netip.MustParseAddr("2001:db8:1::1"), nil)
	for i := range 3 {
		if err := []*Conn{v6a, v6b, v6a}[i].Mail(ctx, ""); err != nil {
			t.Fatalf("bounce %d: %v", i+1, err)
		}
	}
	if err := v6b.Mail(ctx, ""); err == nil {
		t.Fatal("fourth bounce from the same /64 accepted")
	}
	if err := other.Mail(ctx, ""); err != nil {
		t.Fatalf("bounce from another /64: %v", err)
	}
	// A third of the window gives one message back.
	f.clk.advance(20 * time.Minute)
	if err := a.Mail(ctx, "bulk@sender.example"); err != nil {
		t.Fatalf("after 20 minutes: %v", err)
	}
	if err := a.Mail(ctx, "bulk@sender.example"); err == nil {
		t.Fatal("second after 20 minutes accepted")
	}
}

// TestSenderRateMemoryBounded: a flood of distinct senders cannot grow the
// table past its bound.
func TestSenderRateMemoryBounded(t *testing.T) {
	f := newFixture(t, Options{MaxMessagesPerSender: 5})
	c := f.g.Connect(t.Context(), netip.MustParseAddr("192.0.2.1"), nil)
	for i := range 70_000 {
		c.Mail(t.Context(), "s"+itoa(i)+"@flood.example")
	}
	if n := f.g.rate.Len(); n > 1<<16 {
		t.Fatalf("%d senders tracked", n)
	}
	// An hour later every bucket has refilled and the table empties.
	f.clk.advance(time.Hour)
	c.Mail(t.Context(), "late@flood.example")
	if n := f.g.rate.Len(); n != 1 {
		t.Fatalf("%d senders tracked after the window, want 1", n)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
