package mailauth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/posthouse/posthouse/dns"
)

// Resolver is the DNS the checks ask; *dns.Resolver implements it. Errors
// are read as package dns says: errors.Is(err, dns.ErrNotFound) for a name
// that does not exist, a Temporary() method (or dns.ErrTemporary) for a
// resolver that could not answer, anything else as permanent.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
	LookupMX(ctx context.Context, domain string) ([]dns.MX, error)
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error)
}

// temporary reports whether err says that trying again later may help.
func temporary(err error) bool {
	if err == nil {
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) {
		return t.Temporary()
	}
	return errors.Is(err, dns.ErrTemporary) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// notFound reports whether err says the name does not exist (or has no
// record of the type asked, for LookupIP).
func notFound(err error) bool { return errors.Is(err, dns.ErrNotFound) }

// netError turns one of our lookup errors into the *net.DNSError the SPF
// and DMARC libraries look for (they type-assert it, so it is returned
// unwrapped). A malformed name counts as one that does not exist: a sender's
// record naming "a:bad..name" then fails to match, as a void lookup, rather
// than giving a temperror that no retry can cure.
func netError(name string, err error) error {
	if err == nil {
		return nil
	}
	return &net.DNSError{
		Err:         err.Error(),
		Name:        name,
		IsNotFound:  notFound(err) || errors.Is(err, dns.ErrMalformed),
		IsTemporary: temporary(err),
	}
}

// spfResolver adapts a Resolver to blitiri.com.ar/go/spf's DNSResolver
// (the shape of *net.Resolver).
type spfResolver struct{ r Resolver }

func (s spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	name = strings.TrimSuffix(name, ".")
	txts, err := s.r.LookupTXT(ctx, name)
	return txts, netError(name, err)
}

func (s spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	name = strings.TrimSuffix(name, ".")
	mxs, err := s.r.LookupMX(ctx, name)
	if err != nil {
		return nil, netError(name, err)
	}
	out := make([]*net.MX, 0, len(mxs))
	for _, mx := range mxs {
		if mx.Host == "." || mx.Host == "" {
			continue // a null MX (RFC 7505) names no host to match
		}
		out = append(out, &net.MX{Host: mx.Host, Pref: mx.Pref})
	}
	return out, nil
}

func (s spfResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	host = strings.TrimSuffix(host, ".")
	addrs, err := s.r.LookupIP(ctx, host)
	if err != nil {
		return nil, netError(host, err)
	}
	out := make([]net.IPAddr, len(addrs))
	for i, a := range addrs {
		out[i] = net.IPAddr{IP: a.Unmap().AsSlice()}
	}
	return out, nil
}

func (s spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr, IsNotFound: true}
	}
	names, err := s.r.LookupPTR(ctx, ip)
	return names, netError(addr, err)
}
