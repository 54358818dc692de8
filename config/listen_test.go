package config

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		size    ByteSize
		percent float64
		bad     bool
	}{
		{name: "default", in: Default().Limits.MemoryLimit, percent: AutoMemoryPercent},
		{name: "auto upper", in: "AUTO", percent: AutoMemoryPercent},
		{name: "off", in: "off"},
		{name: "size", in: "1GiB", size: 1 << 30},
		{name: "percent", in: "60%", percent: 60},
		{name: "percent spaced", in: " 100 % ", percent: 100},
		{name: "zero percent", in: "0%", bad: true},
		{name: "too small", in: "1MiB", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "word", in: "plenty", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size, pct, err := ParseMemoryLimit(tc.in)
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want bad=%v", err, tc.bad)
			}
			if !tc.bad && (size != tc.size || pct != tc.percent) {
				t.Fatalf("= %v, %v; want %v, %v", size, pct, tc.size, tc.percent)
			}
		})
	}
}

func TestProxyListeners(t *testing.T) {
	c, err := Parse([]byte("[listen]\nproxy_protocol = [\"smtp\", \"imaps\"]\nproxy_networks = [\"10.0.0.5\", \"2001:db8::/64\"]\n"), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.Listen.Proxied("smtp") || !c.Listen.Proxied("imaps") || c.Listen.Proxied("imap") {
		t.Errorf("Proxied wrong for %v", c.Listen.ProxyProtocol)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("2001:db8::/64")}
	if got := c.Listen.ProxyPrefixes(); !slices.Equal(got, want) {
		t.Errorf("ProxyPrefixes = %v, want %v", got, want)
	}
	if err := c.ApplyEnv([]string{"POSTHOUSE_LISTEN_PROXY_PROTOCOL=submission,pop3s"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Listen.ProxyProtocol, []string{"submission", "pop3s"}) {
		t.Errorf("from the environment: %v", c.Listen.ProxyProtocol)
	}
}

func FuzzParseMemoryLimit(f *testing.F) {
	for _, s := range []string{"auto", "off", "1GiB", "60%", "100%", "0%", "16MiB", "1e308%", "NaN%", "-5%", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		size, pct, err := ParseMemoryLimit(s)
		if err != nil {
			return
		}
		if size < 0 || (size > 0 && size < 16<<20) || pct < 0 || pct > 100 || (size > 0 && pct > 0) {
			t.Fatalf("ParseMemoryLimit(%q) = %v, %v", s, size, pct)
		}
	})
}
