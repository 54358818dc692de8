package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/mailaddr"
	"github.com/posthouse/posthouse/mailauth"
)

// CheckTimeout bounds all of one message's DNS work (SPF's own bound is
// 20 s, DKIM's 15 s; they run at once). Past it, checks end in temperror.
const CheckTimeout = 30 * time.Second

// Action is what a policy does with a message that fails a check.
type Action string

// The actions.
const (
	Accept Action = "accept" // store it as usual (the result is still reported)
	Junk   Action = "junk"   // store it in Junk, flagged $Junk
	Reject Action = "reject" // refuse it with a 5xx at the end of DATA
)

// Policy is what the filter does with failures ([inbound] in the config).
type Policy struct {
	// DMARCReject honours p=reject with Reject; false files into Junk.
	DMARCReject bool
	// SPFFail: Junk, Reject or Accept, for an SPF fail when DMARC decides
	// nothing (no record, or p=none).
	SPFFail Action
	// SpoofOwnDomains: Reject or Junk, for one of our domains used without
	// authentication.
	SpoofOwnDomains Action
	// IPRev: Accept or Junk, for an iprev fail or permerror.
	IPRev Action
}

// DefaultPolicy is the [inbound] defaults.
var DefaultPolicy = Policy{DMARCReject: true, SPFFail: Junk, SpoofOwnDomains: Reject, IPRev: Accept}

// LocalDomains says which domains are ours; *auth.DB implements it.
type LocalDomains interface {
	IsLocalDomain(ctx context.Context, domain string) (bool, error)
}

// Options configure New.
type Options struct {
	Logger *slog.Logger
	// Hostname is our authserv-id in Authentication-Results.
	Hostname string
	// Resolver answers every DNS query the checks make.
	Resolver mailauth.Resolver
	Domains  LocalDomains
	Policy   Policy
	// Sample is DMARC's pct sampling source (see mailauth.Checker); nil:
	// random.
	Sample func() int
}

// Filter authenticates mail from the MTA port and applies Policy; it is a
// delivery.Filter, safe for concurrent use.
type Filter struct {
	opts    Options
	checker *mailauth.Checker
	log     *slog.Logger
}

// New checks opts and returns a Filter.
func New(opts Options) (*Filter, error) {
	if opts.Resolver == nil || opts.Domains == nil || opts.Hostname == "" {
		return nil, errors.New("inbound: Options.Resolver, Domains and Hostname are required")
	}
	p := opts.Policy
	if !oneOf(p.SPFFail, Junk, Reject, Accept) || !oneOf(p.SpoofOwnDomains, Reject, Junk) || !oneOf(p.IPRev, Accept, Junk) {
		return nil, fmt.Errorf("inbound: bad policy %+v", p)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Filter{
		opts:    opts,
		checker: &mailauth.Checker{Resolver: opts.Resolver, Sample: opts.Sample},
		log:     opts.Logger,
	}, nil
}

func oneOf(a Action, allowed ...Action) bool {
	for _, x := range allowed {
		if a == x {
			return true
		}
	}
	return false
}

// Name implements delivery.Filter.
func (f *Filter) Name() string { return "inbound" }

// Check implements delivery.Filter: mail from the MTA port is
// authenticated and judged; anything else passes untouched (see the
// package doc for each Source).
func (f *Filter) Check(ctx context.Context, m *delivery.Message) (delivery.Decision, error) {
	if m.Envelope.Source != delivery.SourceSMTP {
		return delivery.Decision{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	env := &m.Envelope
	h := m.Header()
	in := &mailauth.Input{IP: env.Client.IP, Helo: env.Client.Helo, MailFrom: env.From, From: h.Values("From")}
	if h.Has("Dkim-Signature") {
		in.Message = m.Body()
	}
	res := f.checker.Check(ctx, in)
	v, why, err := f.decide(ctx, res, env.From)
	if err != nil {
		return delivery.Decision{}, err
	}
	v.Headers = []delivery.Field{{Name: "Authentication-Results", Value: res.AuthenticationResults(f.opts.Hostname)}}
	level := slog.LevelInfo
	if v.Action == delivery.Reject {
		level = slog.LevelWarn
	}
	f.log.Log(ctx, level, "inbound checks", "id", env.ID, "remote", env.Client.IP, "from", env.From,
		"spf", res.SPF.Result, "dkim", res.DKIMSummary(), "dmarc", res.DMARC.Result, "dmarc_domain", res.DMARC.Domain,
		"iprev", res.IPRev.Result, "verdict", verdictName(v), "reason", why)
	return delivery.Decision{All: v}, nil
}

// verdict ranks: a later rule only replaces a weaker verdict.
type rank int

const (
	rankKeep rank = iota
	rankJunk
	rankTemp
	rankReject
)

// judgement collects the strongest verdict the rules give, and why.
type judgement struct {
	rank  rank
	reply delivery.Reply
	why   string
}

func (j *judgement) give(r rank, reply delivery.Reply, why string) {
	if r > j.rank {
		j.rank, j.reply, j.why = r, reply, why
	}
}

// act gives the verdict an Action calls for.
func (j *judgement) act(a Action, reply delivery.Reply, why string) {
	switch a {
	case Reject:
		j.give(rankReject, reply, why)
	case Junk:
		j.give(rankJunk, delivery.Reply{}, why)
	}
}

// Replies. RFC 7372 names the enhanced codes for SPF (x.7.23, x.7.24);
// DMARC and spoofing have none of their own and take x.7.1, as RFC 7489
// §6.7 suggests. A DNS failure outside SPF is RFC 3463 §3.5's 4.4.3
// "directory server failure".
var (
	replyBadFrom = delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 1},
		Text: "Message refused: it must have exactly one author address in From: (RFC 5322 section 3.6.2)"}
	replyTempDNS = delivery.Reply{Code: 451, Enhanced: [3]int{4, 4, 3},
		Text: "Temporary DNS failure while authenticating the sender, try again later"}
	replyTempSPF = delivery.Reply{Code: 451, Enhanced: [3]int{4, 7, 24},
		Text: "Temporary DNS failure during the SPF check, try again later"}
)

func replyDMARC(domain string) delivery.Reply {
	return delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 1},
		Text: "Message refused: the DMARC policy of " + domain + " rejects mail that fails authentication"}
}

func replySpoof(domain string) delivery.Reply {
	return delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 1},
		Text: "Message refused: the sender is not authorised to use the domain " + domain + " (no SPF pass, no aligned DKIM signature)"}
}

func replySPF(domain string) delivery.Reply {
	return delivery.Reply{Code: 550, Enhanced: [3]int{5, 7, 23},
		Text: "Message refused: SPF check failed, the host is not authorised to send mail for " + domain}
}

// decide applies the policy to one message's results; see the package
// doc for the rules. The error is a failed local-domain lookup.
func (f *Filter) decide(ctx context.Context, res *mailauth.Results, mailFrom string) (delivery.Verdict, string, error) {
	p := f.opts.Policy
	var j judgement
	dm := res.DMARC

	// A From: with no address or several: refused whatever the domains
	// say (mailauth's package doc says why).
	if dm.FromErr != nil {
		j.give(rankReject, replyBadFrom, "from header: "+dm.FromErr.Error())
	}

	// Our own domains, used from outside without authentication.
	var claimed []string
	if dm.FromErr == nil {
		claimed = append(claimed, dm.Domain)
	}
	if d, ok := mailaddr.Domain(mailFrom); ok {
		if n, ok := mailauth.NormalizeDomain(d); ok && (len(claimed) == 0 || claimed[0] != n) {
			claimed = append(claimed, n)
		}
	}
	for _, d := range claimed {
		local, err := f.opts.Domains.IsLocalDomain(ctx, d)
		if err != nil {
			return delivery.Verdict{}, "", fmt.Errorf("inbound: local domain lookup: %w", err)
		}
		if !local {
			continue
		}
		switch ok, temp := res.AuthenticatedFor(d); {
		case ok:
		case temp:
			j.give(rankTemp, replyTempDNS, "own domain "+d+": temperror")
		default:
			j.act(p.SpoofOwnDomains, replySpoof(ascii(d)), "own domain "+d+" not authenticated")
		}
	}

	// DMARC, then SPF where DMARC decided nothing.
	decided := false
	switch dm.Result {
	case mailauth.Pass:
		decided = true
	case mailauth.Fail:
		switch dm.Disposition {
		case mailauth.PolicyReject:
			decided = true
			if p.DMARCReject {
				j.give(rankReject, replyDMARC(ascii(dm.Domain)), "dmarc p=reject")
			} else {
				j.give(rankJunk, delivery.Reply{}, "dmarc p=reject, dmarc_reject off")
			}
		case mailauth.PolicyQuarantine:
			decided = true
			j.give(rankJunk, delivery.Reply{}, "dmarc p=quarantine")
		}
	case mailauth.TempError:
		switch {
		case dm.Aligned:
			// Pass, or no record at all: either way nothing to apply.
			decided = true
		case dm.Policy == mailauth.PolicyNone:
			// The record asks for nothing: the trouble changes nothing.
		default:
			decided = true
			j.give(rankTemp, replyTempDNS, "dmarc temperror")
		}
	}
	if !decided {
		switch res.SPF.Result {
		case mailauth.Fail:
			j.act(p.SPFFail, replySPF(ascii(res.SPF.Domain)), "spf fail")
		case mailauth.TempError:
			if p.SPFFail != Accept {
				j.give(rankTemp, replyTempSPF, "spf temperror")
			}
		}
	}

	if p.IPRev == Junk && (res.IPRev.Result == mailauth.Fail || res.IPRev.Result == mailauth.PermError) {
		j.give(rankJunk, delivery.Reply{}, "iprev "+string(res.IPRev.Result))
	}

	switch j.rank {
	case rankReject, rankTemp:
		return delivery.Verdict{Action: delivery.Reject, Reply: j.reply}, j.why, nil
	case rankJunk:
		return delivery.Verdict{Mailbox: "Junk", Flags: []string{"$Junk"}}, j.why, nil
	}
	return delivery.Verdict{}, "", nil
}

// ascii keeps a normalized domain (A-labels: ASCII already) fit for a
// reply line, whatever reaches it.
func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= 0x20 || r >= 0x7f {
			return '?'
		}
		return r
	}, s)
}

// verdictName names a verdict for the log.
func verdictName(v delivery.Verdict) string {
	switch {
	case v.Action == delivery.Reject:
		return fmt.Sprintf("reject %d %d.%d.%d", v.Reply.Code, v.Reply.Enhanced[0], v.Reply.Enhanced[1], v.Reply.Enhanced[2])
	case v.Mailbox != "":
		return "junk"
	}
	return "keep"
}
