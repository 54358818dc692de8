package mailauth

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/queue"
)

// servfail is the rcode dnstest answers for a name under "DNS trouble".
const servfail = mdns.RcodeServerFailure

// client is the SMTP client address the tests check (a documentation
// address: it is only a value, nothing is sent to it).
var client = netip.MustParseAddr("192.0.2.10")

// newChecker returns a loopback DNS server and a Checker resolving through
// it, with pct sampling fixed at sample.
func newChecker(t testing.TB, sample int) (*dnstest.Server, *Checker) {
	t.Helper()
	ns := dnstest.NewServer(t)
	return ns, &Checker{Resolver: newResolver(t, ns), Sample: func() int { return sample }}
}

// newResolver returns a resolver asking ns.
func newResolver(t testing.TB, ns *dnstest.Server) *dns.Resolver {
	t.Helper()
	r, err := dns.New(dns.Options{Server: ns.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// signer signs test messages with package dkim's keys, published in the
// test's DNS.
type signer struct {
	t    testing.TB
	keys *dkim.Keys
	ns   *dnstest.Server
}

func newSigner(t testing.TB, ns *dnstest.Server) *signer {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Options{DataDir: t.TempDir(), Hostname: "mx.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return &signer{t: t, keys: q.DKIM(), ns: ns}
}

// sign returns msg with a DKIM-Signature of a new key for domain, whose
// record is published unless unpublished.
func (s *signer) sign(msg, domain string, publish bool) string {
	s.t.Helper()
	k, err := s.keys.Generate(context.Background(), domain, "", dkim.AlgorithmEd25519)
	if err != nil {
		// One key per domain and month's selector: reuse it.
		keys, lerr := s.keys.List(context.Background(), domain)
		if lerr != nil || len(keys) == 0 {
			s.t.Fatal(err)
		}
		k = keys[0]
	} else if publish {
		s.ns.AddTXT(k.TXTName(), k.TXTValue())
	}
	sig, err := dkim.Sign(strings.NewReader(msg), []dkim.Key{k})
	if err != nil {
		s.t.Fatal(err)
	}
	return sig + msg
}

// message is a plain message from the address from.
func message(from string) string {
	return "From: Someone <" + from + ">\r\nTo: bob@example.org\r\nSubject: test\r\nMessage-ID: <1@test>\r\n\r\nHello.\r\n"
}
