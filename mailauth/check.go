package mailauth

import (
	"context"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
)

// Result is a check's outcome, named as in RFC 8601 §2.7.
type Result string

// The results. SPF uses all of them; DMARC pass, fail, none, temperror and
// permerror; iprev pass, fail, temperror and permerror.
const (
	None      Result = "none"
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	Neutral   Result = "neutral"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Checker evaluates SPF, DKIM, DMARC and iprev for inbound messages. It is
// safe for concurrent use.
type Checker struct {
	Resolver Resolver
	// Sample returns a number in [0, 100) for DMARC's pct sampling; a
	// failing message is subject to the policy when it is below pct.
	// nil: math/rand/v2. Tests make it deterministic.
	Sample func() int
}

// Input is what one message's checks look at.
type Input struct {
	IP       netip.Addr // the SMTP client
	Helo     string     // its EHLO/HELO name
	MailFrom string     // the envelope sender, "" for the null reverse-path
	// From are the values of the message's From fields.
	From []string
	// Message is the whole message for DKIM; nil when it has no
	// DKIM-Signature field (no verification is then needed: dkim=none).
	Message io.Reader
}

// Results are the outcomes of every check for one message.
type Results struct {
	SPF  SPF
	DKIM []dkim.Verification // one per signature checked; none unsigned
	// DKIMErr is set when the message could not be read for DKIM
	// (dkim.ErrHeader): dkim=permerror.
	DKIMErr error
	DMARC   DMARC
	IPRev   IPRev
}

// Check runs SPF, DKIM, iprev and the DMARC record lookup, from the DNS
// cache one after another when it holds their answers, else at once, then
// evaluates DMARC over them. DNS failures become temperror results, never
// errors: what to do about them is the caller's policy.
func (c *Checker) Check(ctx context.Context, in *Input) *Results {
	res := &Results{}
	from, fromErr := FromDomain(in.From)
	var rec dmarcRecord
	// SPF, iprev and the DMARC record first from the DNS cache alone, one
	// after another: a sender's records are asked for again with every
	// message, and three goroutines to look up cached answers cost more
	// than the lookups (half the check's time on one SMTP connection). On
	// the first answer not cached, the checks start over, in parallel,
	// asking the nameserver.
	var missed atomic.Bool
	cached := dns.CacheOnly(ctx, &missed)
	res.SPF = checkSPF(cached, c.Resolver, in.IP, in.Helo, in.MailFrom)
	if !missed.Load() {
		res.IPRev = checkIPRev(cached, c.Resolver, in.IP)
	}
	if !missed.Load() && fromErr == nil {
		rec = lookupDMARC(cached, c.Resolver, from)
	}
	if missed.Load() {
		*res, rec = Results{}, dmarcRecord{}
		var wg sync.WaitGroup
		wg.Go(func() { res.SPF = checkSPF(ctx, c.Resolver, in.IP, in.Helo, in.MailFrom) })
		wg.Go(func() { res.IPRev = checkIPRev(ctx, c.Resolver, in.IP) })
		if in.Message != nil {
			wg.Go(func() { res.DKIM, res.DKIMErr = dkim.Verify(ctx, in.Message, c.Resolver.LookupTXT) })
		}
		if fromErr == nil {
			rec = lookupDMARC(ctx, c.Resolver, from)
		}
		wg.Wait()
	} else if in.Message != nil {
		res.DKIM, res.DKIMErr = dkim.Verify(ctx, in.Message, c.Resolver.LookupTXT)
	}
	sample := c.Sample
	if sample == nil {
		sample = func() int { return rand.IntN(100) }
	}
	res.DMARC = evaluateDMARC(from, fromErr, rec, res.SPF, res.DKIM, sample)
	return res
}

// AuthenticatedFor reports whether the message is authenticated for
// domain (normalized): SPF passed for a domain, or a DKIM signature passed
// with a d=, in relaxed alignment with it (RFC 7489 §3.1). temp reports that
// it is not, but an SPF or DKIM check that could have made it so ended in
// temperror: a retry may tell.
func (r *Results) AuthenticatedFor(domain string) (ok, temp bool) {
	if alignedPass(domain, r.SPF, r.DKIM, false, false) {
		return true, false
	}
	temp = r.SPF.Result == TempError && Aligned(r.SPF.Domain, domain, false) ||
		alignedDKIM(domain, r.DKIM, false, dkim.TempError)
	return false, temp
}

// DKIMSummary is the DKIM outcome in one word, for logs: the best result
// among the signatures, "none" without any.
func (r *Results) DKIMSummary() string {
	if r.DKIMErr != nil {
		return string(PermError)
	}
	best, bestRank := string(None), 0
	for _, v := range r.DKIM {
		if k := dkimRank(v.Result); k > bestRank {
			best, bestRank = string(v.Result), k
		}
	}
	return best
}

func dkimRank(r dkim.Result) int {
	switch r {
	case dkim.Pass:
		return 4
	case dkim.TempError:
		return 3
	case dkim.Fail:
		return 2
	}
	return 1
}
