package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// validateProxy checks [listen] proxy_protocol and proxy_networks.
func (c *Config) validateProxy(add func(key, msg, hint string)) {
	var names []string
	for _, l := range c.Listeners() {
		names = append(names, l.Name)
	}
	for _, n := range c.Listen.ProxyProtocol {
		if !slices.Contains(names, n) {
			add("listen.proxy_protocol", fmt.Sprintf("no listener named %q", n),
				"name [listen] entries: "+strings.Join(names, ", "))
		}
	}
	for _, n := range c.Listen.ProxyNetworks {
		if _, err := ParseNetwork(n); err != nil {
			add("listen.proxy_networks", fmt.Sprintf("%q is not a CIDR prefix or an IP address", n),
				`proxy_networks = ["10.0.0.5", "10.0.1.0/24"]: the load balancers' addresses`)
		}
	}
	if len(c.Listen.ProxyProtocol) > 0 && len(c.Listen.ProxyNetworks) == 0 {
		add("listen.proxy_networks", "proxy_protocol is set but no load balancer is trusted",
			`list the load balancers' addresses: proxy_networks = ["10.0.0.5"]`)
	}
}

// ProxyPrefixes returns proxy_networks parsed (entries that do not parse
// are left out; Validate reports them).
func (l Listen) ProxyPrefixes() []netip.Prefix {
	out := []netip.Prefix{}
	for _, s := range l.ProxyNetworks {
		if p, err := ParseNetwork(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Proxied reports whether the listener name reads PROXY headers.
func (l Listen) Proxied(name string) bool {
	return slices.Contains(l.ProxyProtocol, name)
}

// AutoMemoryPercent is the share of the available memory that
// memory_limit = "auto" sets: the rest is left to what the Go runtime does
// not count (SQLite's page cache, thread stacks) and to the kernel.
const AutoMemoryPercent = 80

var errMemoryLimitSyntax = errors.New(`want "auto", "off", a size ("1GiB") or a percentage ("60%")`)

// ParseMemoryLimit reads [limits] memory_limit: a size, or a percentage
// (1 to 100) of the memory available to the process ("auto" is
// AutoMemoryPercent); both zero means "off".
func ParseMemoryLimit(s string) (size ByteSize, percent float64, err error) {
	s = strings.TrimSpace(strings.ToLower(s))
	switch s {
	case "auto":
		return 0, AutoMemoryPercent, nil
	case "off":
		return 0, 0, nil
	}
	if num, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(f) || f < 1 || f > 100 {
			return 0, 0, fmt.Errorf("bad memory limit %q: a percentage is between 1%% and 100%% (%w)", s, errMemoryLimitSyntax)
		}
		return 0, f, nil
	}
	n, err := ParseByteSize(s)
	if err != nil || s == "" {
		return 0, 0, fmt.Errorf("bad memory limit %q: %w", s, errMemoryLimitSyntax)
	}
	if n < 16<<20 {
		return 0, 0, fmt.Errorf("memory limit %q is below 16MiB, too little to serve anything", s)
	}
	return n, 0, nil
}
