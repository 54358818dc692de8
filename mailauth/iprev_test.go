package mailauth

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
)

func TestIPRev(t *testing.T) {
	ns, c := newChecker(t, 0)
	ns.Add("10.2.0.192.in-addr.arpa. PTR mx.client.test.", "mx.client.test. A 192.0.2.10")
	ns.Add("11.2.0.192.in-addr.arpa. PTR liar.client.test.", "liar.client.test. A 192.0.2.99")
	ns.Add("12.2.0.192.in-addr.arpa. PTR gone.client.test.")
	ns.Add("13.2.0.192.in-addr.arpa. PTR flaky.client.test.")
	ns.SetRcode("flaky.client.test.", servfail)
	ns.SetRcode("14.2.0.192.in-addr.arpa.", servfail)
	ns.Add("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR v6.client.test.", "v6.client.test. AAAA 2001:db8::1")
	// Twelve names, the last one right: only ten are followed.
	for i := range 12 {
		ns.Add(fmt.Sprintf("15.2.0.192.in-addr.arpa. PTR n%d.many.test.", i))
		ns.Add(fmt.Sprintf("n%d.many.test. A 198.51.100.%d", i, i))
	}
	ns.Add("n11.many.test. A 192.0.2.15")

	tests := []struct {
		ip   string
		want Result
		name string
	}{
		{"192.0.2.10", Pass, "mx.client.test"},
		{"::ffff:192.0.2.10", Pass, "mx.client.test"},
		{"2001:db8::1", Pass, "v6.client.test"},
		{"192.0.2.11", Fail, ""},
		{"192.0.2.12", Fail, ""},
		{"192.0.2.13", TempError, ""},
		{"192.0.2.14", TempError, ""},
		{"192.0.2.16", PermError, ""},
		{"192.0.2.15", Fail, ""},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			got := checkIPRev(context.Background(), c.Resolver, netip.MustParseAddr(tc.ip))
			if got.Result != tc.want || got.Name != tc.name {
				t.Errorf("got %s %q (%v), want %s %q", got.Result, got.Name, got.Err, tc.want, tc.name)
			}
		})
	}
	if n := ns.Queries("n10.many.test", "A") + ns.Queries("n11.many.test", "A"); n != 0 {
		t.Errorf("%d queries past the tenth PTR name", n)
	}
}
