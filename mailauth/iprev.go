package mailauth

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// IPRevTimeout bounds the reverse and forward lookups of one client.
const IPRevTimeout = 10 * time.Second

// maxIPRevNames bounds the PTR names whose addresses are looked up (the
// limit RFC 7208 §4.6.4 sets for the same walk in SPF's ptr mechanism).
const maxIPRevNames = 10

// IPRev is the outcome of the "iprev" check (RFC 8601 §3): the client's
// address has a PTR name whose addresses include it.
type IPRev struct {
	Result Result // Pass, Fail, TempError or PermError
	IP     netip.Addr
	// Name is the PTR name that resolves back to IP, on Pass.
	Name string
	Err  error
}

// checkIPRev runs RFC 8601 §3: pass when a PTR name of ip has ip among
// its addresses; fail when the names exist but none leads back;
// permerror when ip has no PTR name; temperror when a lookup could not be
// answered and nothing passed.
func checkIPRev(ctx context.Context, r Resolver, ip netip.Addr) IPRev {
	ip = ip.Unmap()
	res := IPRev{IP: ip}
	if !ip.IsValid() {
		res.Result, res.Err = PermError, errors.New("no client address")
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, IPRevTimeout)
	defer cancel()
	names, err := r.LookupPTR(ctx, ip)
	switch {
	case temporary(err):
		res.Result, res.Err = TempError, err
		return res
	case err != nil:
		res.Result, res.Err = PermError, err
		return res
	case len(names) == 0:
		res.Result, res.Err = PermError, errors.New("no PTR record")
		return res
	}
	if len(names) > maxIPRevNames {
		names = names[:maxIPRevNames]
	}
	var tempErr error
	for _, n := range names {
		addrs, err := r.LookupIP(ctx, n)
		if temporary(err) {
			tempErr = err
			continue
		}
		for _, a := range addrs {
			if a.Unmap() == ip {
				res.Result, res.Name = Pass, n
				return res
			}
		}
	}
	if tempErr != nil {
		res.Result, res.Err = TempError, tempErr
		return res
	}
	res.Result, res.Err = Fail, errors.New("no PTR name resolves back to the address")
	return res
}
