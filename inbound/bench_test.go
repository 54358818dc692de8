package inbound

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/dns"
)

// memResolver answers from memory what w's loopback DNS server would, so
// that the benchmark measures our CPU, not round trips.
type memResolver struct {
	txt map[string][]string
	ip  map[string][]netip.Addr
	ptr map[netip.Addr][]string
}

func (r *memResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if v, ok := r.txt[strings.ToLower(name)]; ok {
		return v, nil
	}
	return nil, &dns.Error{Name: name, Type: "TXT", Err: dns.ErrNotFound}
}

func (r *memResolver) LookupIP(_ context.Context, host string) ([]netip.Addr, error) {
	if v, ok := r.ip[strings.ToLower(host)]; ok {
		return v, nil
	}
	return nil, &dns.Error{Name: host, Type: "A", Err: dns.ErrNotFound}
}

func (r *memResolver) LookupMX(_ context.Context, domain string) ([]dns.MX, error) {
	return nil, &dns.Error{Name: domain, Type: "MX", Err: dns.ErrNotFound}
}

func (r *memResolver) LookupPTR(_ context.Context, addr netip.Addr) ([]string, error) {
	if v, ok := r.ptr[addr]; ok {
		return v, nil
	}
	return nil, &dns.Error{Name: addr.String(), Type: "PTR", Err: dns.ErrNotFound}
}

// BenchmarkCheck measures one message's checks with every DNS answer in
// memory: SPF pass through an include and an a: term, one ed25519 DKIM
// signature, DMARC with the org-domain fallback, iprev, the local-domain
// lookups and the Authentication-Results field. A realistic 4 KiB body.
func BenchmarkCheck(b *testing.B) {
	w := newWorld(b)
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 70)
	raw := w.sign("From: Alice <alice@news.sender.test>\r\nTo: bob@example.org\r\nSubject: bench\r\nMessage-ID: <b@sender.test>\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\n\r\n"+body, "sender.test")
	keys, err := w.keys.List(context.Background(), "sender.test")
	if err != nil || len(keys) == 0 {
		b.Fatal(err)
	}
	r := &memResolver{
		txt: map[string][]string{
			"bounce.sender.test":               {"v=spf1 include:_spf.sender.test a:mx.sender.test -all"},
			"_spf.sender.test":                 {"v=spf1 ip4:198.51.100.0/24 ~all"},
			"_dmarc.sender.test":               {"v=DMARC1; p=reject; rua=mailto:d@sender.test"},
			strings.ToLower(keys[0].TXTName()): {keys[0].TXTValue()},
		},
		ip:  map[string][]netip.Addr{"mx.sender.test": {client}},
		ptr: map[netip.Addr][]string{client: {"mx.sender.test"}},
	}
	f, err := New(Options{Hostname: "mx.example.org", Resolver: r, Domains: localDomains{"example.org": true}, Policy: DefaultPolicy})
	if err != nil {
		b.Fatal(err)
	}
	env := delivery.Envelope{Source: delivery.SourceSMTP, ID: "b", From: "x@bounce.sender.test", Client: delivery.Client{IP: client, Helo: "mx.sender.test"}}
	m := messageFor(b, env, raw)
	ctx := context.Background()
	d, err := f.Check(ctx, m)
	if err != nil || d.All.Action != delivery.Keep || !strings.Contains(d.All.Headers[0].Value, "dmarc=pass") || !strings.Contains(d.All.Headers[0].Value, "spf=pass") || !strings.Contains(d.All.Headers[0].Value, "iprev=pass") {
		b.Fatalf("%+v %v", d, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.Check(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
