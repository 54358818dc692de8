package mailauth

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"

	"github.com/posthouse/posthouse/dkim"
)

// Policy is a DMARC policy (RFC 7489 §6.3 "p" and "sp").
type Policy string

// The DMARC policies.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// DMARC is the outcome of DMARC (RFC 7489) for one message.
type DMARC struct {
	// Result is Pass (an aligned SPF or DKIM pass), Fail (none, and the
	// domain has a record), None (no record), TempError (the record could
	// not be looked up, or a temperror in SPF or an aligned DKIM signature
	// stood where a pass would have decided) or PermError (no usable From
	// address: FromErr says why; or the record could not be parsed).
	Result Result
	// Domain is the From domain (header.from), "" when FromErr is set.
	Domain string
	// Policy is what the domain's record asks for it: p, or sp for a
	// subdomain whose record was found at its organizational domain. ""
	// when no record was found.
	Policy Policy
	// Disposition is the policy to apply to a message that failed, after
	// pct sampling (§6.6.4: a message outside the sample gets the next
	// weaker policy). PolicyNone unless Result is Fail.
	Disposition Policy
	// Aligned is true when SPF or a DKIM signature passed for a domain
	// aligned with Domain: under the record's modes, or strict ones when the
	// record is unknown (TempError), so that Aligned holds whatever the
	// record turns out to say.
	Aligned bool
	// FromErr is ErrNoFrom, ErrMultipleFrom or ErrBadFrom.
	FromErr error
	Err     error
}

// dmarcRecord is a DMARC record lookup's outcome.
type dmarcRecord struct {
	rec   *dmarc.Record
	atOrg bool  // found at the organizational domain, not the From domain
	err   error // dmarc.ErrNoPolicy, a temporary failure or a parse error
}

// lookupDMARC finds the record for domain (RFC 7489 §6.6.3): at
// _dmarc.<domain>, else at _dmarc.<organizational domain>.
func lookupDMARC(ctx context.Context, r Resolver, domain string) dmarcRecord {
	rec, err := lookupDMARCAt(ctx, r, domain)
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org := OrgDomain(domain); org != domain {
			rec, err = lookupDMARCAt(ctx, r, org)
			return dmarcRecord{rec: rec, atOrg: true, err: err}
		}
	}
	return dmarcRecord{rec: rec, err: err}
}

// lookupDMARCAt reads the record at _dmarc.<domain> with go-msgauth's
// dmarc package through our resolver. §6.6.3: only records that start
// with "v=DMARC1" count, and more than one means none.
func lookupDMARCAt(ctx context.Context, r Resolver, domain string) (*dmarc.Record, error) {
	return dmarc.LookupWithOptions(domain, &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) {
		txts, err := r.LookupTXT(ctx, name)
		if err != nil {
			return nil, netError(name, err)
		}
		var recs []string
		for _, t := range txts {
			if isDMARC1(t) {
				recs = append(recs, t)
			}
		}
		if len(recs) != 1 {
			return nil, &net.DNSError{Err: "no single DMARC record", Name: name, IsNotFound: true}
		}
		return recs, nil
	}})
}

// isDMARC1 reports whether a TXT record starts with the v=DMARC1 tag.
func isDMARC1(txt string) bool {
	rest, ok := strings.CutPrefix(strings.TrimLeft(txt, " \t"), "v")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t"), "=")
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t"), "DMARC1")
	rest = strings.TrimLeft(rest, " \t")
	return ok && (rest == "" || rest[0] == ';')
}

// evaluateDMARC applies RFC 7489 §6.6 to the From domain, its record and
// the SPF and DKIM results. sample returns a number in [0, 100) for pct.
func evaluateDMARC(from string, fromErr error, rec dmarcRecord, spfRes SPF, dkims []dkim.Verification, sample func() int) DMARC {
	if fromErr != nil {
		return DMARC{Result: PermError, FromErr: fromErr, Err: fromErr, Disposition: PolicyNone}
	}
	d := DMARC{Domain: from, Disposition: PolicyNone}
	switch {
	case rec.err == nil:
	case errors.Is(rec.err, dmarc.ErrNoPolicy):
		d.Result = None
		d.Aligned = alignedPass(from, spfRes, dkims, false, false)
		return d
	case dmarc.IsTempFail(rec.err):
		d.Result, d.Err = TempError, rec.err
		d.Aligned = alignedPass(from, spfRes, dkims, true, true)
		return d
	default:
		d.Result, d.Err = PermError, rec.err
		return d
	}
	r := rec.rec
	d.Policy = Policy(r.Policy)
	if rec.atOrg && r.SubdomainPolicy != "" {
		d.Policy = Policy(r.SubdomainPolicy)
	}
	strictSPF, strictDKIM := r.SPFAlignment == dmarc.AlignmentStrict, r.DKIMAlignment == dmarc.AlignmentStrict
	d.Aligned = alignedPass(from, spfRes, dkims, strictSPF, strictDKIM)
	switch {
	case d.Aligned:
		d.Result = Pass
	case spfRes.Result == TempError && Aligned(spfRes.Domain, from, strictSPF) ||
		alignedDKIM(from, dkims, strictDKIM, dkim.TempError):
		// A retry might pass: no policy is applied on a guess.
		d.Result, d.Err = TempError, errors.New("temporary failure of an aligned SPF or DKIM check")
	default:
		d.Result = Fail
		d.Disposition = d.Policy
		if r.Percent != nil && sample() >= *r.Percent {
			switch d.Policy {
			case PolicyReject:
				d.Disposition = PolicyQuarantine
			case PolicyQuarantine:
				d.Disposition = PolicyNone
			}
		}
	}
	return d
}

// alignedPass reports whether SPF or a DKIM signature passed for a domain
// aligned with from.
func alignedPass(from string, spfRes SPF, dkims []dkim.Verification, strictSPF, strictDKIM bool) bool {
	return spfRes.Result == Pass && Aligned(spfRes.Domain, from, strictSPF) ||
		alignedDKIM(from, dkims, strictDKIM, dkim.Pass)
}

// alignedDKIM reports whether a signature with result want has a d=
// aligned with from.
func alignedDKIM(from string, dkims []dkim.Verification, strict bool, want dkim.Result) bool {
	for _, v := range dkims {
		if v.Result != want {
			continue
		}
		if d, ok := NormalizeDomain(v.Domain); ok && Aligned(d, from, strict) {
			return true
		}
	}
	return false
}
