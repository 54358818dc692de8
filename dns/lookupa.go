package dns

import (
	"context"
	"net/netip"

	"github.com/miekg/dns"
)

// LookupA returns name's IPv4 addresses only: one query, where LookupIP
// asks for AAAA too. DNS block lists answer in A records (RFC 5782 §2.1).
// NODATA gives an empty list; NXDOMAIN gives ErrNotFound.
func (r *Resolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	return r.lookupAddr(ctx, name, dns.TypeA)
}
