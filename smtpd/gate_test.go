package smtpd

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

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/gate"
)

// dialGate connects from the loopback address src (any 127.x.y.z is ours
// on Linux), so that one test can play several clients.
func dialGate(t testing.TB, addr, src string) *rawConn {
	t.Helper()
	c, greeting := dialRawFrom(t, src, addr)
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("greeting %q", greeting)
	}
	return c
}

// fakeGate records what smtpd asks and answers from a script.
type fakeGate struct {
	mu       sync.Mutex
	connects []netip.Addr
	calls    []string // "mail <from>", "rcpt <from> <rcpt>"
	mailErr  error
	rcptErr  map[string]error // by recipient
}

func (g *fakeGate) Connect(_ context.Context, remote netip.Addr, _ *slog.Logger) GateConn {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.connects = append(g.connects, remote)
	return g
}

func (g *fakeGate) Mail(_ context.Context, from string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, "mail <"+from+">")
	return g.mailErr
}

func (g *fakeGate) Rcpt(_ context.Context, from, rcpt string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, "rcpt <"+from+"> "+rcpt)
	return g.rcptErr[rcpt]
}

func (g *fakeGate) log() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.calls...)
}

// TestGateHooks: when smtpd asks the gate, with what, and how its answers
// reach the client.
func TestGateHooks(t *testing.T) {
	fg := &fakeGate{
		mailErr: nil,
		rcptErr: map[string]error{
			"bob@example.org":   &gate.Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Greylisted, try again later"},
			"carol@example.net": errors.New("greylist database on fire"),
		},
	}
	ts := newTestServer(t, func(o *Options) { o.Gate = fg })
	c := dialGate(t, ts.addr, "127.0.0.7")
	c.ehlo()
	c.cmd("MAIL FROM:<a@remote.example>", "250 ")
	c.cmd("RCPT TO:<nobody@example.org>", "550 5.1.1 ")        // smtpd's refusal first
	c.cmd("RCPT TO:<x@elsewhere.example>", "554 5.7.1 Relay ") // likewise
	c.cmd("RCPT TO:<alice@example.org>", "250 ")
	c.cmd("RCPT TO:<bob@example.org>", "451 4.7.1 Greylisted, try again later")
	c.cmd("RCPT TO:<carol@example.net>", "451 4.3.0 Local error") // never the error's text
	c.cmd("RSET", "250 ")
	fg.mu.Lock()
	fg.mailErr = &gate.Reply{Code: 450, Enhanced: [3]int{4, 7, 1}, Text: "Too many messages from this sender, try again later"}
	fg.mu.Unlock()
	c.cmd("MAIL FROM:<>", "450 4.7.1 Too many messages")
	c.cmd("RCPT TO:<alice@example.org>", "503 ") // no transaction
	c.cmd("QUIT", "221 ")

	want := []string{
		"mail <a@remote.example>",
		"rcpt <a@remote.example> alice@example.org",
		"rcpt <a@remote.example> bob@example.org",
		"rcpt <a@remote.example> carol@example.net",
		"mail <>",
	}
	if got := fg.log(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("gate calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	fg.mu.Lock()
	connects := fg.connects
	fg.mu.Unlock()
	if len(connects) != 1 || connects[0] != netip.MustParseAddr("127.0.0.7") {
		t.Errorf("connects %v, want [127.0.0.7]", connects)
	}
	if !strings.Contains(ts.logs.String(), "greylist database on fire") {
		t.Error("the gate's internal error was not logged")
	}
}

// TestGateSubmissionNeverAsked: the gate is for port 25 only.
func TestGateSubmissionNeverAsked(t *testing.T) {
	for _, mode := range []Mode{ModeSubmission, ModeSubmissions} {
		t.Run(mode.String(), func(t *testing.T) {
			fg := &fakeGate{mailErr: &gate.Reply{Code: 450, Enhanced: [3]int{4, 7, 1}, Text: "no"}}
			ts := newTestServer(t, withMode(mode), func(o *Options) { o.Gate = fg })
			var c *rawConn
			if mode == ModeSubmissions {
				c = dialRawTLS(t, ts.addr)
			} else {
				c = dialRaw(t, ts.addr)
				c.ehlo()
				c.starttls()
			}
			c.ehlo()
			c.authPlain("alice@example.org", "alice-secret", "235 ")
			c.cmd("MAIL FROM:<alice@example.org>", "250 ")
			c.cmd("RCPT TO:<bob@example.org>", "250 ")
			c.cmd("QUIT", "221 ")
			fg.mu.Lock()
			defer fg.mu.Unlock()
			if len(fg.connects) != 0 || len(fg.calls) != 0 {
				t.Fatalf("gate asked on %s: %v %v", mode, fg.connects, fg.calls)
			}
		})
	}
}

// gateAdapter is cmd/posthouse's adapter, repeated: *gate.Gate's Connect
// returns its own type.
type gateAdapter struct{ g *gate.Gate }

func (a gateAdapter) Connect(ctx context.Context, remote netip.Addr, log *slog.Logger) GateConn {
	if c := a.g.Connect(ctx, remote, log); c != nil {
		return c
	}
	return nil
}

// TestGateSession: the real gate behind real sessions, one loopback
// address per client: a listed client is refused with the list's reason,
// an unlisted one is greylisted, then passes after the delay (a moved
// clock) and is allow-listed.
func TestGateSession(t *testing.T) {
	d := dnstest.NewServer(t)
	d.Add("2.0.0.127.bl.example. A 127.0.0.2")
	d.AddTXT("2.0.0.127.bl.example", "Listed by bl.example, see https://bl.example/127.0.0.2")
	r, err := dns.New(dns.Options{Server: d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g, err := gate.New(context.Background(), gate.Options{
		Resolver: r,
		DNSBL:    []string{"bl.example"},
		Greylist: &gate.GreylistOptions{Path: filepath.Join(t.TempDir(), "greylist.sqlite"), SweepInterval: -1},
		Exempt:   []netip.Prefix{netip.MustParsePrefix("127.0.9.0/24")},
		Now:      clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.Gate = gateAdapter{g} })
	ts.dir.mu.Lock()
	ts.dir.aliases["postmaster@example.org"] = auth.Resolution{Local: []string{"alice@example.org"}}
	ts.dir.mu.Unlock()
	t.Cleanup(func() { g.Close() }) // after the server's Shutdown (cleanups run in reverse)

	listed := dialGate(t, ts.addr, "127.0.0.2")
	listed.ehlo()
	listed.cmd("MAIL FROM:<spam@remote.example>", "250 ")
	listed.cmd("RCPT TO:<alice@example.org>", "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.example; Listed by bl.example, see https://bl.example/127.0.0.2")
	listed.cmd("RCPT TO:<postmaster@example.org>", "250 ") // RFC 5321 §4.5.1
	listed.cmd("QUIT", "221 ")

	msg := "Subject: hi\r\n\r\nhello\r\n"
	sendFrom := func(src, from, rcpt, want string) {
		t.Helper()
		c := dialGate(t, ts.addr, src)
		c.ehlo()
		c.cmd("MAIL FROM:<"+from+">", "250 ")
		if c.cmd("RCPT TO:<"+rcpt+">", want); strings.HasPrefix(want, "250") {
			c.cmd("DATA", "354 ")
			c.write(msg + ".\r\n")
			c.expect("250 ")
		}
		c.cmd("QUIT", "221 ")
	}
	sendFrom("127.0.0.3", "news@sender.example", "alice@example.org", "451 4.7.1 Greylisted, try again later")
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	sendFrom("127.0.0.3", "news@sender.example", "alice@example.org", "451 4.7.1 ")
	mu.Lock()
	now = now.Add(4 * time.Minute)
	mu.Unlock()
	sendFrom("127.0.0.4", "news@sender.example", "alice@example.org", "250 ") // same /24
	sendFrom("127.0.0.3", "billing@sender.example", "bob@example.org", "250 ")
	// Trusted networks skip the gate.
	sendFrom("127.0.9.1", "x@new.example", "bob@example.org", "250 ")
	if n := len(ts.messages("alice@example.org")); n != 1 {
		t.Errorf("alice has %d messages, want 1", n)
	}
	if n := len(ts.messages("bob@example.org")); n != 2 {
		t.Errorf("bob has %d messages, want 2", n)
	}
	logs := ts.logs.String()
	for _, want := range []string{"client on block list, refused", "greylisted", "greylist passed, sender allow-listed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
