package mailauth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
)

// summary is what a check decided, for comparing two checks.
func summary(r *Results) string {
	s := fmt.Sprintf("spf=%s iprev=%s dmarc=%s/%s", r.SPF.Result, r.IPRev.Result, r.DMARC.Result, r.DMARC.Policy)
	for _, v := range r.DKIM {
		s += fmt.Sprintf(" dkim=%s(%s)", v.Result, v.Domain)
	}
	return s
}

// TestCheckFromCache: with a caching resolver, checking a sender whose
// records are all cached asks the nameserver nothing (the checks run from
// the cache, one after another) and decides what the first check, which
// asked, decided; a sender with records not cached yet is checked against
// the nameserver, with the same outcome as a resolver without a cache.
func TestCheckFromCache(t *testing.T) {
	ns := dnstest.NewServer(t)
	ns.SetNegativeTTL(300)
	cache := dns.NewCache(0, 0)
	r, err := dns.New(dns.Options{Server: ns.Addr, Timeout: 2 * time.Second, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	c := &Checker{Resolver: r, Sample: func() int { return 0 }}
	uncached := &Checker{Resolver: newResolver(t, ns), Sample: func() int { return 0 }}
	s := newSigner(t, ns)
	ns.AddTXT("bounces.example.test.", "v=spf1 ip4:192.0.2.10 -all")
	ns.AddTXT("_dmarc.example.test.", "v=DMARC1; p=reject")
	ns.Add("10.2.0.192.in-addr.arpa. PTR mail.example.test.", "mail.example.test. A 192.0.2.10")
	ns.AddTXT("other.test.", "v=spf1 -all")
	ns.AddTXT("_dmarc.other.test.", "v=DMARC1; p=quarantine")
	signed := s.sign(message("a@example.test"), "example.test", true)
	ctx := context.Background()
	in := func(mailFrom, from, msg string) *Input {
		i := &Input{IP: client, Helo: "mail.example.test", MailFrom: mailFrom, From: []string{"Someone <" + from + ">"}}
		if strings.HasPrefix(msg, "DKIM-Signature:") {
			i.Message = strings.NewReader(msg)
		}
		return i
	}

	first := c.Check(ctx, in("b@bounces.example.test", "a@example.test", signed))
	want := "spf=pass iprev=pass dmarc=pass/reject dkim=pass(example.test)"
	if got := summary(first); got != want {
		t.Fatalf("first check: %s, want %s", got, want)
	}
	_, asked := cache.Stats()
	if asked == 0 {
		t.Fatal("the first check asked the nameserver nothing")
	}
	for i := range 3 {
		again := c.Check(ctx, in("b@bounces.example.test", "a@example.test", signed))
		if got := summary(again); got != want {
			t.Errorf("check %d from the cache: %s, want %s", i+2, got, want)
		}
	}
	if _, n := cache.Stats(); n != asked {
		t.Errorf("checks answered from the cache asked the nameserver %d more times", n-asked)
	}

	// Another sender: SPF fails, its DMARC record is not cached yet.
	plain := message("a@other.test")
	got := summary(c.Check(ctx, in("b@other.test", "a@other.test", plain)))
	if want := summary(uncached.Check(ctx, in("b@other.test", "a@other.test", plain))); got != want || !strings.Contains(got, "spf=fail") {
		t.Errorf("sender not cached: %s; without a cache: %s", got, want)
	}
	if _, n := cache.Stats(); n == asked {
		t.Error("a sender not cached was checked without asking the nameserver")
	}
	// A failing DKIM signature stays failing from the cache.
	altered := strings.Replace(signed, "Hello.", "Pay now.", 1)
	for range 2 {
		r := c.Check(ctx, in("b@other.test", "a@example.test", altered))
		if len(r.DKIM) != 1 || r.DKIM[0].Result != dkim.Fail || r.DMARC.Result != Fail {
			t.Errorf("altered message: %s", summary(r))
		}
	}
}
