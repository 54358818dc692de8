package mailauth

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
)

// SPFTimeout bounds one SPF evaluation: RFC 7208 §4.6.4 lets a verifier
// give up after at least 20 seconds (temperror).
const SPFTimeout = 20 * time.Second

// The identities SPF checks (RFC 7208 §2.3, §2.4).
const (
	IdentityMailFrom = "mailfrom"
	IdentityHelo     = "helo"
)

// SPF is the outcome of an SPF check (RFC 7208).
type SPF struct {
	Result Result
	// Identity is IdentityMailFrom, or IdentityHelo when MAIL FROM was
	// the null reverse-path: RFC 7208 §2.4 then checks "postmaster@" the
	// HELO name.
	Identity string
	// Sender is the MAIL FROM address, or the HELO name.
	Sender string
	// Domain is the normalized domain checked, "" when there was none
	// usable (then Result is None).
	Domain string
	Err    error
}

// checkSPF runs check_host() (RFC 7208 §4) for the MAIL FROM identity, or
// for the HELO identity when MAIL FROM is null. blitiri.com.ar/go/spf does
// the evaluation through our resolver, with the RFC's limits: 10 mechanisms
// or modifiers that cause DNS queries, 2 void lookups (§4.6.4), 10 MX and
// 10 PTR names per mechanism; beyond them, permerror.
func checkSPF(ctx context.Context, r Resolver, ip netip.Addr, helo, mailFrom string) SPF {
	res := SPF{Identity: IdentityMailFrom, Sender: mailFrom}
	local, domain := "postmaster", helo
	if mailFrom == "" {
		res.Identity, res.Sender = IdentityHelo, helo
	} else if at := strings.LastIndexByte(mailFrom, '@'); at > 0 {
		local, domain = mailFrom[:at], mailFrom[at+1:]
	} else {
		domain = ""
	}
	// §4.3: a malformed domain, or one of a single label, gives none.
	d, ok := NormalizeDomain(domain)
	if !ok || !strings.Contains(d, ".") || !ip.IsValid() {
		res.Result = None
		return res
	}
	res.Domain = d
	ctx, cancel := context.WithTimeout(ctx, SPFTimeout)
	defer cancel()
	// The library takes the domain after the first '@' of the sender; a
	// quoted local part with an '@' of its own must not move it.
	local = strings.ReplaceAll(local, "@", "")
	r2, err := spf.CheckHostWithSender(ip.Unmap().AsSlice(), helo, local+"@"+d,
		spf.WithContext(ctx), spf.WithResolver(spfResolver{r}))
	res.Result = Result(r2)
	switch res.Result {
	case Pass, Fail, SoftFail, Neutral, None:
	case TempError, PermError:
		res.Err = err
	default:
		res.Result, res.Err = PermError, err
	}
	return res
}
