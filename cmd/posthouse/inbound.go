package main

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/inbound"
)

// newInboundFilter builds the delivery filter that authenticates mail from
// the MTA port ([inbound]), resolving through the configured resolver.
// Without a usable resolver, every check ends in temperror, so port-25 mail
// gets 451 until [dns] resolver is fixed: never an unchecked pass.
func newInboundFilter(cfg *config.Config, log *slog.Logger, users *auth.DB, res resolver) (*inbound.Filter, error) {
	opts := inbound.Options{
		Logger:   log,
		Hostname: cfg.Hostname,
		Domains:  users,
		Policy: inbound.Policy{
			DMARCReject:     cfg.Inbound.DMARCReject,
			SPFFail:         inbound.Action(cfg.Inbound.SPFFail),
			SpoofOwnDomains: inbound.Action(cfg.Inbound.SpoofOwnDomains),
			IPRev:           inbound.Action(cfg.Inbound.IPRev),
		},
	}
	if err := res.err; err != nil {
		log.Error("no DNS resolver: mail from other servers gets 451 until [dns] resolver is set", "err", err)
		opts.Resolver = noResolver{err}
	} else {
		opts.Resolver = res.r
	}
	return inbound.New(opts)
}

// noResolver fails every lookup temporarily.
type noResolver struct{ err error }

func (n noResolver) fail(name, typ string) error {
	return &dns.Error{Name: name, Type: typ, Err: dns.ErrTemporary, Cause: n.err}
}

func (n noResolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	return nil, n.fail(name, "TXT")
}

func (n noResolver) LookupIP(_ context.Context, host string) ([]netip.Addr, error) {
	return nil, n.fail(host, "A")
}

func (n noResolver) LookupMX(_ context.Context, domain string) ([]dns.MX, error) {
	return nil, n.fail(domain, "MX")
}

func (n noResolver) LookupPTR(_ context.Context, addr netip.Addr) ([]string, error) {
	return nil, n.fail(addr.String(), "PTR")
}
