package dns

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// SRV is one service record (RFC 2782).
type SRV struct {
	Target   string // without the trailing dot; "." says the service is not offered (RFC 6186 §4)
	Port     uint16
	Priority uint16
	Weight   uint16
}

// LookupSRV returns name's SRV records as published (no shuffling: the
// DNS check page compares them with what we recommend). NODATA gives an
// empty list; NXDOMAIN gives ErrNotFound.
func (r *Resolver) LookupSRV(ctx context.Context, name string) ([]SRV, error) {
	reply, err := r.exchange(ctx, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var srvs []SRV
	for _, rr := range reply.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			target := s.Target
			if target != "." {
				target = strings.ToLower(strings.TrimSuffix(target, "."))
			}
			srvs = append(srvs, SRV{Target: target, Port: s.Port, Priority: s.Priority, Weight: s.Weight})
		}
	}
	return srvs, nil
}

// LookupCNAME returns the name name is an alias of, without the trailing
// dot, or "" when it is no alias (NODATA). NXDOMAIN gives ErrNotFound.
func (r *Resolver) LookupCNAME(ctx context.Context, name string) (string, error) {
	reply, err := r.exchange(ctx, name, dns.TypeCNAME)
	if err != nil {
		return "", err
	}
	want := strings.ToLower(dns.Fqdn(name))
	for _, rr := range reply.Answer {
		if c, ok := rr.(*dns.CNAME); ok && strings.ToLower(c.Hdr.Name) == want {
			return strings.ToLower(strings.TrimSuffix(c.Target, ".")), nil
		}
	}
	return "", nil
}
