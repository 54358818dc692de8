package inbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/queue"
)

// client is the SMTP client's address in the tests (a value only).
var client = netip.MustParseAddr("192.0.2.10")

// localDomains are "our" domains.
type localDomains map[string]bool

func (l localDomains) IsLocalDomain(_ context.Context, d string) (bool, error) {
	if d == "broken.db" {
		return false, errors.New("database gone")
	}
	return l[d], nil
}

// grab is a filter that keeps the message it is shown and rejects it, so
// that the pipeline stops before storing: it gives the tests a
// *delivery.Message exactly as filters get one.
type grab struct{ m *delivery.Message }

func (g *grab) Name() string { return "grab" }
func (g *grab) Check(_ context.Context, m *delivery.Message) (delivery.Decision, error) {
	g.m = m
	return delivery.Decision{All: delivery.Verdict{Action: delivery.Reject}}, nil
}

type oneAccount struct{}

func (oneAccount) Resolve(context.Context, string) (auth.Resolution, error) {
	return auth.Resolution{Local: []string{"bob@example.org"}}, nil
}

type noStore struct{}

func (noStore) Open(context.Context, string) (delivery.Account, error) {
	return nil, errors.New("not used")
}

// messageFor builds the delivery.Message the pipeline hands its filters.
func messageFor(t testing.TB, env delivery.Envelope, raw string) *delivery.Message {
	t.Helper()
	g := &grab{}
	p, err := delivery.New(delivery.Options{Directory: oneAccount{}, Store: noStore{}, Filters: []delivery.Filter{g}})
	if err != nil {
		t.Fatal(err)
	}
	p.Deliver(context.Background(), &delivery.Request{Envelope: env, Rcpts: []string{"bob@example.org"},
		Body: io.NewSectionReader(strings.NewReader(raw), 0, int64(len(raw)))})
	if g.m == nil {
		t.Fatal("the filter saw no message")
	}
	return g.m
}

// world is the DNS and the signing keys of a test.
type world struct {
	t    testing.TB
	ns   *dnstest.Server
	res  *dns.Resolver
	keys *dkim.Keys
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ns := dnstest.NewServer(t)
	r, err := dns.New(dns.Options{Server: ns.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(context.Background(), queue.Options{DataDir: t.TempDir(), Hostname: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return &world{t: t, ns: ns, res: r, keys: q.DKIM()}
}

// sign signs msg with package dkim for domain and publishes the key.
func (w *world) sign(msg, domain string) string {
	w.t.Helper()
	k, err := w.keys.Generate(context.Background(), domain, "", dkim.AlgorithmEd25519)
	if err != nil {
		keys, lerr := w.keys.List(context.Background(), domain)
		if lerr != nil || len(keys) == 0 {
			w.t.Fatal(err)
		}
		k = keys[0]
	} else {
		w.ns.AddTXT(k.TXTName(), k.TXTValue())
	}
	sig, err := dkim.Sign(strings.NewReader(msg), []dkim.Key{k})
	if err != nil {
		w.t.Fatal(err)
	}
	return sig + msg
}

func (w *world) filter(p Policy, sample int) *Filter {
	w.t.Helper()
	f, err := New(Options{Hostname: "mx.example.org", Resolver: w.res, Domains: localDomains{"example.org": true}, Policy: p, Sample: func() int { return sample }})
	if err != nil {
		w.t.Fatal(err)
	}
	return f
}

func msgFrom(from string) string {
	return "From: " + from + "\r\nTo: bob@example.org\r\nSubject: hello\r\n\r\nHello Bob.\r\n"
}

func TestCheck(t *testing.T) {
	w := newWorld(t)
	ns := w.ns
	ns.AddTXT("sender.test.", "v=spf1 ip4:192.0.2.10 ip4:192.0.2.77 -all")
	ns.AddTXT("strict.test.", "v=spf1 -all")
	ns.AddTXT("_dmarc.strict.test.", "v=DMARC1; p=reject")
	ns.AddTXT("quar.test.", "v=spf1 -all")
	ns.AddTXT("_dmarc.quar.test.", "v=DMARC1; p=quarantine")
	ns.AddTXT("_dmarc.sampled.test.", "v=DMARC1; p=reject; pct=0")
	ns.AddTXT("_dmarc.monitor.test.", "v=DMARC1; p=none")
	ns.AddTXT("monitor.test.", "v=spf1 -all")
	ns.AddTXT("nodmarc.test.", "v=spf1 -all")
	ns.SetRcode("spfdown.test.", mdns.RcodeServerFailure)
	ns.SetRcode("_dmarc.dmarcdown.test.", mdns.RcodeServerFailure)
	ns.AddTXT("example.org.", "v=spf1 ip4:198.51.100.0/24 -all")
	ns.Add("10.2.0.192.in-addr.arpa. PTR mx.sender.test.", "mx.sender.test. A 192.0.2.10")

	type want struct {
		reply    int    // 0: not rejected
		enhanced string // of the reply
		text     string // in the reply
		junk     bool
	}
	tests := []struct {
		name     string
		source   delivery.Source
		ip       string
		mailFrom string
		msg      string
		policy   func(*Policy)
		sample   int
		want     want
		noHeader bool
	}{
		{name: "pass", mailFrom: "a@sender.test", msg: msgFrom("a@sender.test")},
		{name: "dmarc reject", mailFrom: "a@strict.test", msg: msgFrom("a@strict.test"), want: want{reply: 550, enhanced: "5.7.1", text: "DMARC policy of strict.test"}},
		{name: "dmarc reject, not honoured", mailFrom: "a@strict.test", msg: msgFrom("a@strict.test"), policy: func(p *Policy) { p.DMARCReject = false }, want: want{junk: true}},
		{name: "dmarc reject sampled out to quarantine", mailFrom: "a@sender.test", msg: msgFrom("a@sampled.test"), want: want{junk: true}},
		{name: "dmarc quarantine", mailFrom: "a@quar.test", msg: msgFrom("a@quar.test"), want: want{junk: true}},
		{name: "aligned dkim passes despite spf fail", mailFrom: "a@strict.test", msg: w.sign(msgFrom("a@strict.test"), "strict.test")},
		{name: "unaligned dkim does not help", mailFrom: "a@strict.test", msg: w.sign(msgFrom("a@strict.test"), "sender.test"), want: want{reply: 550, enhanced: "5.7.1", text: "DMARC"}},
		{name: "spf fail, no dmarc: junk", mailFrom: "a@nodmarc.test", msg: msgFrom("a@nodmarc.test"), want: want{junk: true}},
		{name: "spf fail, p=none: junk", mailFrom: "a@monitor.test", msg: msgFrom("a@monitor.test"), want: want{junk: true}},
		{name: "spf fail, reject", mailFrom: "a@nodmarc.test", msg: msgFrom("a@nodmarc.test"), policy: func(p *Policy) { p.SPFFail = Reject }, want: want{reply: 550, enhanced: "5.7.23", text: "nodmarc.test"}},
		{name: "spf fail, accept", mailFrom: "a@nodmarc.test", msg: msgFrom("a@nodmarc.test"), policy: func(p *Policy) { p.SPFFail = Accept }},
		{name: "spoofed own From", mailFrom: "a@sender.test", msg: msgFrom("CEO <ceo@example.org>"), want: want{reply: 550, enhanced: "5.7.1", text: "not authorised to use the domain example.org"}},
		{name: "spoofed own MAIL FROM", mailFrom: "ceo@Example.ORG", msg: msgFrom("a@sender.test"), want: want{reply: 550, enhanced: "5.7.1", text: "example.org"}},
		{name: "spoofed own domain, junk", mailFrom: "a@sender.test", msg: msgFrom("ceo@example.org"), policy: func(p *Policy) { p.SpoofOwnDomains = Junk }, want: want{junk: true}},
		{name: "own domain with aligned dkim", mailFrom: "a@sender.test", msg: w.sign(msgFrom("ceo@example.org"), "example.org")},
		{name: "own domain with spf pass", ip: "198.51.100.7", mailFrom: "list@example.org", msg: msgFrom("ceo@example.org")},
		{name: "own domain, spf dns trouble", mailFrom: "a@spfdown.test", msg: msgFrom("ceo@example.org"), want: want{reply: 550, enhanced: "5.7.1", text: "example.org"}},
		{name: "two From addresses", mailFrom: "a@sender.test", msg: msgFrom("a@sender.test, b@sender.test"), want: want{reply: 550, enhanced: "5.7.1", text: "exactly one author"}},
		{name: "no From", mailFrom: "a@sender.test", msg: "Subject: x\r\n\r\nx\r\n", want: want{reply: 550, enhanced: "5.7.1", text: "From:"}},
		{name: "spf SERVFAIL", mailFrom: "a@spfdown.test", msg: msgFrom("a@spfdown.test"), want: want{reply: 451, enhanced: "4.7.24", text: "SPF"}},
		{name: "spf SERVFAIL, spf_fail accept", mailFrom: "a@spfdown.test", msg: msgFrom("a@spfdown.test"), policy: func(p *Policy) { p.SPFFail = Accept }},
		{name: "dmarc SERVFAIL", mailFrom: "a@nodmarc.test", msg: msgFrom("a@dmarcdown.test"), want: want{reply: 451, enhanced: "4.4.3", text: "Temporary DNS failure"}},
		{name: "dmarc SERVFAIL with aligned dkim pass", mailFrom: "a@nodmarc.test", msg: w.sign(msgFrom("a@dmarcdown.test"), "dmarcdown.test")},
		{name: "dkim key SERVFAIL where it decides", mailFrom: "a@strict.test", msg: keyDown(t, w, msgFrom("a@strict.test"), "strict.test"), want: want{reply: 451, enhanced: "4.4.3"}},
		{name: "iprev fail is only reported", ip: "192.0.2.77", mailFrom: "a@sender.test", msg: msgFrom("a@sender.test")},
		{name: "iprev fail, junk", ip: "192.0.2.77", mailFrom: "a@sender.test", msg: msgFrom("a@sender.test"), policy: func(p *Policy) { p.IPRev = Junk }, want: want{junk: true}},
		{name: "submission is not checked", source: delivery.SourceSubmission, mailFrom: "ceo@example.org", msg: msgFrom("ceo@example.org"), noHeader: true},
		{name: "queue is not checked", source: delivery.SourceQueue, mailFrom: "a@strict.test", msg: msgFrom("a@strict.test"), noHeader: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy
			if tc.policy != nil {
				tc.policy(&p)
			}
			f := w.filter(p, tc.sample)
			env := delivery.Envelope{Source: delivery.SourceSMTP, ID: "t1", From: tc.mailFrom,
				Client: delivery.Client{IP: client, Helo: "mx.sender.test"}}
			if tc.source != "" {
				env.Source = tc.source
			}
			if tc.ip != "" {
				env.Client.IP = netip.MustParseAddr(tc.ip)
			}
			d, err := f.Check(context.Background(), messageFor(t, env, tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			v := d.All
			hdr := ""
			if len(v.Headers) == 1 && v.Headers[0].Name == "Authentication-Results" {
				hdr = v.Headers[0].Value
			}
			if tc.noHeader {
				if len(v.Headers) != 0 || v.Action != delivery.Keep || v.Mailbox != "" {
					t.Errorf("verdict %+v, want nothing", v)
				}
				return
			}
			if !strings.HasPrefix(hdr, "mx.example.org;\r\n\tiprev=") {
				t.Errorf("Authentication-Results %q", hdr)
			}
			if tc.want.reply != 0 {
				r := v.Reply
				enh := fmt.Sprintf("%d.%d.%d", r.Enhanced[0], r.Enhanced[1], r.Enhanced[2])
				if v.Action != delivery.Reject || r.Code != tc.want.reply || enh != tc.want.enhanced || !strings.Contains(r.Text, tc.want.text) {
					t.Errorf("verdict %+v, want %d %s %q\n%s", v, tc.want.reply, tc.want.enhanced, tc.want.text, hdr)
				}
				return
			}
			if v.Action != delivery.Keep {
				t.Errorf("verdict %+v, want no rejection\n%s", v, hdr)
			}
			if junk := v.Mailbox == "Junk" && len(v.Flags) == 1 && v.Flags[0] == "$Junk"; junk != tc.want.junk {
				t.Errorf("mailbox %q flags %q, want junk %v\n%s", v.Mailbox, v.Flags, tc.want.junk, hdr)
			}
		})
	}
}

// keyDown signs msg for a subdomain of domain (its own key) and makes
// that key's record answer SERVFAIL.
func keyDown(t *testing.T, w *world, msg, domain string) string {
	t.Helper()
	sub := "down." + domain
	signed := w.sign(msg, sub)
	k, err := w.keys.List(context.Background(), sub)
	if err != nil || len(k) == 0 {
		t.Fatal(err)
	}
	w.ns.SetRcode(k[0].TXTName(), mdns.RcodeServerFailure)
	return signed
}

func TestLocalDomainFailure(t *testing.T) {
	w := newWorld(t)
	f, err := New(Options{Hostname: "mx.example.org", Resolver: w.res, Domains: localDomains{}, Policy: DefaultPolicy})
	if err != nil {
		t.Fatal(err)
	}
	env := delivery.Envelope{Source: delivery.SourceSMTP, From: "a@broken.db", Client: delivery.Client{IP: client, Helo: "x.test"}}
	if _, err := f.Check(context.Background(), messageFor(t, env, msgFrom("a@sender.test"))); err == nil {
		t.Error("a failed local-domain lookup gave no error")
	}
}
