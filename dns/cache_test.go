package dns

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/posthouse/posthouse/dns/dnstest"
)

// cachedResolver is a Resolver with a Cache whose clock the test moves.
func cachedResolver(t *testing.T, size int, maxTTL time.Duration) (*Resolver, *dnstest.Server, *Cache, *time.Time) {
	t.Helper()
	srv := dnstest.NewServer(t)
	c := NewCache(size, maxTTL)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	r, err := New(Options{Server: srv.Addr, Timeout: 2 * time.Second, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	return r, srv, c, &now
}

func TestCacheKeepsAnswerForItsTTL(t *testing.T) {
	r, srv, c, now := cachedResolver(t, 0, 0)
	srv.Add("b.test. 60 MX 10 mx.b.test.", "b.test. 30 MX 20 mx2.b.test.")
	ctx := context.Background()
	for range 3 {
		mxs, err := r.LookupMX(ctx, "B.test")
		if err != nil || len(mxs) != 2 || mxs[0].Host != "mx.b.test" {
			t.Fatalf("LookupMX = %v, %v", mxs, err)
		}
	}
	if n := srv.Queries("b.test", "MX"); n != 1 {
		t.Fatalf("nameserver asked %d times, want 1", n)
	}
	*now = now.Add(29 * time.Second)
	r.LookupMX(ctx, "b.test")
	if n := srv.Queries("b.test", "MX"); n != 1 {
		t.Fatalf("asked again before the smallest TTL (30 s) ran out: %d", n)
	}
	*now = now.Add(time.Second)
	r.LookupMX(ctx, "b.test")
	if n := srv.Queries("b.test", "MX"); n != 2 {
		t.Fatalf("not asked again when the TTL ran out: %d", n)
	}
	if hits, misses := c.Stats(); hits != 3 || misses != 2 {
		t.Fatalf("Stats = %d hits, %d misses; want 3, 2", hits, misses)
	}
	// Another type of the same name is another question.
	r.LookupTXT(ctx, "b.test")
	if n := srv.Queries("b.test", "TXT"); n != 1 {
		t.Fatalf("TXT queries = %d", n)
	}
}

func TestCacheNegativeAnswersNeedSOA(t *testing.T) {
	r, srv, _, now := cachedResolver(t, 0, 0)
	srv.Add("nodata.test. A 127.0.0.1")
	ctx := context.Background()
	ask := func() {
		t.Helper()
		if _, err := r.LookupTXT(ctx, "missing.test"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("NXDOMAIN: err = %v", err)
		}
		if txts, err := r.LookupTXT(ctx, "nodata.test"); err != nil || len(txts) != 0 {
			t.Fatalf("NODATA: %v, %v", txts, err)
		}
	}
	// Without a SOA (RFC 2308 §5): never kept.
	ask()
	ask()
	if a, b := srv.Queries("missing.test", "TXT"), srv.Queries("nodata.test", "TXT"); a != 2 || b != 2 {
		t.Fatalf("negative answers without SOA were kept: %d, %d queries", a, b)
	}
	// With one: kept for its negative TTL.
	srv.SetNegativeTTL(20)
	ask()
	ask()
	if a, b := srv.Queries("missing.test", "TXT"), srv.Queries("nodata.test", "TXT"); a != 3 || b != 3 {
		t.Fatalf("negative answers with SOA not kept: %d, %d queries", a, b)
	}
	*now = now.Add(20 * time.Second)
	ask()
	if a := srv.Queries("missing.test", "TXT"); a != 4 {
		t.Fatalf("NXDOMAIN kept past its negative TTL: %d queries", a)
	}
}

func TestCacheNeverKeepsFailures(t *testing.T) {
	r, srv, _, _ := cachedResolver(t, 0, 0)
	srv.Add("flaky.test. MX 10 mx.flaky.test.")
	srv.SetNegativeTTL(300)
	srv.SetRcode("flaky.test", miekg.RcodeServerFailure)
	ctx := context.Background()
	for range 2 {
		if _, err := r.LookupMX(ctx, "flaky.test"); !errors.Is(err, ErrTemporary) {
			t.Fatalf("SERVFAIL: err = %v", err)
		}
	}
	srv.SetRcode("flaky.test", miekg.RcodeSuccess)
	if mxs, err := r.LookupMX(ctx, "flaky.test"); err != nil || len(mxs) != 1 {
		t.Fatalf("after recovery: %v, %v", mxs, err)
	}
	if n := srv.Queries("flaky.test", "MX"); n != 3 {
		t.Fatalf("queries = %d, want 3 (failures are not kept)", n)
	}
}

func TestCacheZeroTTLAndMaxTTL(t *testing.T) {
	r, srv, _, now := cachedResolver(t, 0, 10*time.Second)
	srv.Add("zero.test. 1 A 127.0.0.1", "long.test. 86400 A 127.0.0.2")
	// dnstest turns TTL 0 into 300, so zero TTL is tested with a record
	// added by hand below; here 1 s and a day capped at 10 s.
	ctx := context.Background()
	r.LookupIP(ctx, "long.test")
	*now = now.Add(9 * time.Second)
	r.LookupIP(ctx, "long.test")
	if n := srv.Queries("long.test", "A"); n != 1 {
		t.Fatalf("queries = %d before the cap", n)
	}
	*now = now.Add(time.Second)
	r.LookupIP(ctx, "long.test")
	if n := srv.Queries("long.test", "A"); n != 2 {
		t.Fatalf("a day's TTL not capped at 10 s: %d queries", n)
	}

	c := NewCache(0, 0)
	msg := new(miekg.Msg)
	msg.Answer = []miekg.RR{&miekg.A{Hdr: miekg.RR_Header{Name: "z.test.", Rrtype: miekg.TypeA, Class: miekg.ClassINET, Ttl: 0}}}
	if ttl := c.ttl(msg, nil); ttl != 0 {
		t.Fatalf("TTL 0 kept for %v", ttl)
	}
}

func TestCacheSharesOneExchange(t *testing.T) {
	r, srv, _, _ := cachedResolver(t, 0, 0)
	srv.Add("busy.test. TXT \"v=spf1 -all\"")
	srv.SetDelay(200 * time.Millisecond)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			txts, err := r.LookupTXT(ctx, "busy.test")
			if err == nil && (len(txts) != 1 || txts[0] != "v=spf1 -all") {
				err = fmt.Errorf("got %q", txts)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Queries("busy.test", "TXT"); n != 1 {
		t.Fatalf("20 concurrent lookups sent %d queries, want 1", n)
	}
}

func TestCacheWaiterKeepsItsOwnDeadline(t *testing.T) {
	r, srv, _, _ := cachedResolver(t, 0, 0)
	srv.Add("slow.test. A 127.0.0.1")
	srv.SetDelay(300 * time.Millisecond)
	leader := make(chan error, 1)
	go func() {
		_, err := r.LookupIP(context.Background(), "slow.test")
		leader <- err
	}()
	for srv.Queries("slow.test", "A") == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := r.LookupIP(ctx, "slow.test"); !errors.Is(err, ErrTemporary) {
		t.Fatalf("waiter past its deadline: err = %v", err)
	}
	if err := <-leader; err != nil {
		t.Fatalf("leader: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	r, srv, c, now := cachedResolver(t, 5, 0)
	ctx := context.Background()
	for i := range 20 {
		name := fmt.Sprintf("h%d.test", i)
		srv.Add(name + ". 60 A 127.0.0.1")
		if _, err := r.LookupIP(ctx, name); err != nil {
			t.Fatal(err)
		}
		if n := c.Len(); n > 5 {
			t.Fatalf("cache holds %d answers, bound 5", n)
		}
	}
	// Expired answers make room before live ones are dropped.
	*now = now.Add(time.Hour)
	srv.Add("fresh.test. 60 A 127.0.0.1")
	r.LookupIP(ctx, "fresh.test")
	if n := c.Len(); n > 2 { // fresh.test's A and AAAA
		t.Fatalf("expired answers kept: %d", n)
	}
}

// TestCacheOnly: under CacheOnly a lookup is answered from the cache or
// fails as temporary and says so in missed, never asking the nameserver;
// answers kept (positive and negative) come back as a normal lookup gives
// them, and an expired one is a miss.
func TestCacheOnly(t *testing.T) {
	r, srv, _, now := cachedResolver(t, 0, 0)
	srv.Add("c.test. 60 MX 10 mx.c.test.")
	srv.SetNegativeTTL(60)
	ctx := context.Background()
	var missed atomic.Bool
	co := CacheOnly(ctx, &missed)

	if _, err := r.LookupMX(co, "c.test"); !errors.Is(err, ErrTemporary) || !missed.Load() {
		t.Fatalf("uncached lookup under CacheOnly: err %v, missed %v; want ErrTemporary, true", err, missed.Load())
	}
	if n := srv.Queries("c.test", "MX"); n != 0 {
		t.Fatalf("nameserver asked %d times under CacheOnly", n)
	}
	// A miss is not kept: the normal lookup asks and keeps the answer.
	if mxs, err := r.LookupMX(ctx, "c.test"); err != nil || len(mxs) != 1 {
		t.Fatalf("LookupMX = %v, %v", mxs, err)
	}
	if _, err := r.LookupTXT(ctx, "nx.c.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupTXT of a missing name: %v", err)
	}
	missed.Store(false)
	if mxs, err := r.LookupMX(co, "C.test."); err != nil || len(mxs) != 1 || mxs[0].Host != "mx.c.test" {
		t.Fatalf("cached answer under CacheOnly: %v, %v", mxs, err)
	}
	if _, err := r.LookupTXT(co, "nx.c.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cached NXDOMAIN under CacheOnly: %v", err)
	}
	if missed.Load() {
		t.Fatal("missed set by answers the cache holds")
	}
	*now = now.Add(61 * time.Second)
	if _, err := r.LookupMX(co, "c.test"); !errors.Is(err, ErrTemporary) || !missed.Load() {
		t.Fatalf("expired answer under CacheOnly: err %v, missed %v", err, missed.Load())
	}
	if n := srv.Queries("c.test", "MX"); n != 1 {
		t.Fatalf("nameserver asked %d times, want the one normal lookup", n)
	}
	// Without a cache every lookup under CacheOnly misses.
	bare, err := New(Options{Server: srv.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	missed.Store(false)
	if _, err := bare.LookupMX(co, "c.test"); !errors.Is(err, ErrTemporary) || !missed.Load() {
		t.Fatalf("resolver without a cache under CacheOnly: err %v, missed %v", err, missed.Load())
	}
}
