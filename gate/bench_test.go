package gate

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkMessage is the in-process cost of the gate for one message with
// one recipient from a client whose list answers are in (DNS waiting
// excluded): Connect, Mail (sender rate), Rcpt (list verdict, greylist
// check of an allow-listed sender: one SQLite read).
func BenchmarkMessage(b *testing.B) {
	clk := newClock()
	g, err := New(context.Background(), Options{
		MaxMessagesPerSender: 1 << 30,
		Greylist:             &GreylistOptions{Path: filepath.Join(b.TempDir(), "g.sqlite"), SweepInterval: -1},
		Now:                  clk.now,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.10")
	g.grey.Check(ctx, ip, "news@sender.example", "alice@example.org")
	clk.advance(10 * time.Minute)
	if v, _ := g.grey.Check(ctx, ip, "news@sender.example", "alice@example.org"); v.Result != Passed {
		b.Fatalf("setup: %+v", v)
	}
	b.ReportAllocs()
	for b.Loop() {
		c := g.Connect(ctx, ip, nil)
		// What the list lookups leave for Rcpt: an unlisted client.
		if err := c.Mail(ctx, "news@sender.example"); err != nil {
			b.Fatal(err)
		}
		if err := c.Rcpt(ctx, "news@sender.example", "bob@example.org"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListVerdict is the list part alone, answers in: building the
// query names for both address families and deciding on a listing.
func BenchmarkListVerdict(b *testing.B) {
	v4, v6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8:1:2:3:4:567:89ab")
	b.ReportAllocs()
	for b.Loop() {
		_ = queryName(v4, "zen.example.org")
		_ = queryName(v6, "zen.example.org")
		_ = blockReply(v4, "zen.example.org", sanitizeReason("Listed: see https://bl.example/query/ip/192.0.2.10"))
	}
}

// BenchmarkGreylistFirstAttempt: a new triplet, one write transaction
// (synchronous=NORMAL: no fsync per commit in WAL mode).
func BenchmarkGreylistFirstAttempt(b *testing.B) {
	clk := newClock()
	g, err := OpenGreylist(context.Background(), GreylistOptions{Path: filepath.Join(b.TempDir(), "g.sqlite"), SweepInterval: -1, Now: clk.now, MaxTriplets: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.10")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if v, err := g.Check(ctx, ip, "s"+itoa(i)+"@spam.example", "alice@example.org"); err != nil || v.Result != Greylisted {
			b.Fatalf("%+v %v", v, err)
		}
	}
}
