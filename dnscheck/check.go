package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/posthouse/posthouse/dns"
)

// Resolver is what Run looks up; *dns.Resolver has it.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]dns.MX, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error)
	LookupSRV(ctx context.Context, name string) ([]dns.SRV, error)
	LookupCNAME(ctx context.Context, name string) (string, error)
}

// Status is the verdict on one record.
type Status string

const (
	OK      Status = "ok"
	Missing Status = "missing"
	Wrong   Status = "wrong"
	// Failed: the resolver gave no answer (SERVFAIL, timeout); nothing is
	// known about the record.
	Failed Status = "lookup failed"
	// Optional: not published, and not needed (MTA-STS, TLS-RPT).
	Optional Status = "optional"
)

// Result is the verdict on one record.
type Result struct {
	Kind   string   // "MX", "A/AAAA", "PTR", "SPF", "DKIM", "DMARC", "autoconfig", "SRV", "MTA-STS", "TLS-RPT"
	Name   string   // the name looked up
	Status Status   // ok, missing, wrong, lookup failed, optional
	Found  []string // what the DNS holds, as text
	Want   string   // the zone-file line to publish ("" when there is none to give)
	Note   string   // why it is wrong or what to do
}

// Params describe the domain and this server.
type Params struct {
	Domain   string
	Hostname string
	Keys     []dns.DKIMKey
	Ports    dns.Ports
}

// Run looks up every record of p.Domain and says how each compares with
// dns.Records. It stops early only when ctx ends.
func Run(ctx context.Context, r Resolver, p Params) []Result {
	c := &checker{r: r, p: p, want: wantedRecords(p)}
	c.domain = strings.ToLower(strings.TrimSuffix(p.Domain, "."))
	c.host = strings.ToLower(strings.TrimSuffix(p.Hostname, "."))
	c.mx(ctx)
	c.hostAddrs(ctx)
	c.spf(ctx)
	c.dkim(ctx)
	c.dmarc(ctx)
	c.autoconfig(ctx, "autoconfig."+c.domain)
	c.autoconfig(ctx, "autodiscover."+c.domain)
	c.srvs(ctx)
	c.optionalTXT(ctx, "MTA-STS", "_mta-sts."+c.domain, "v=STSv1", "id=")
	c.optionalTXT(ctx, "TLS-RPT", "_smtp._tls."+c.domain, "v=TLSRPTv1", "rua=")
	return c.out
}

type checker struct {
	r            Resolver
	p            Params
	domain, host string
	want         map[string]string // "owner TYPE" → zone line
	addrs        []netip.Addr      // the host's, once looked up
	out          []Result
}

// wantedRecords indexes dns.Records by owner name and type. Records
// dns.Records marks optional (commented out) are indexed without the "; ".
func wantedRecords(p Params) map[string]string {
	m := map[string]string{}
	for _, rec := range dns.Records(p.Domain, p.Hostname, p.Keys, p.Ports) {
		line := strings.TrimPrefix(rec.Zone, "; ")
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		k := strings.ToLower(strings.TrimSuffix(f[0], ".")) + " " + f[3]
		if _, dup := m[k]; !dup {
			m[k] = line
		}
	}
	return m
}

func (c *checker) add(r Result) { c.out = append(c.out, r) }

// failed turns a lookup error into a result: NXDOMAIN is a missing record,
// anything else a failed lookup. It returns false when err is nil.
func (c *checker) failed(kind, name, want string, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, dns.ErrNotFound) {
		c.add(Result{Kind: kind, Name: name, Status: Missing, Want: want, Note: "the name does not exist"})
		return true
	}
	c.add(Result{Kind: kind, Name: name, Status: Failed, Want: want, Note: err.Error()})
	return true
}

func (c *checker) mx(ctx context.Context) {
	want := c.want[c.domain+" MX"]
	mxs, err := c.r.LookupMX(ctx, c.domain)
	if c.failed("MX", c.domain, want, err) {
		return
	}
	res := Result{Kind: "MX", Name: c.domain, Want: want}
	ours := false
	for _, m := range mxs {
		res.Found = append(res.Found, fmt.Sprintf("%d %s", m.Pref, m.Host))
		ours = ours || m.Host == c.host
	}
	switch {
	case len(mxs) == 0:
		res.Status, res.Note = Missing, "no MX record: senders fall back to the domain's own address"
	case !ours:
		res.Status, res.Note = Wrong, "no MX points at "+c.host
	default:
		res.Status = OK
	}
	c.add(res)
}

func (c *checker) hostAddrs(ctx context.Context) {
	addrs, err := c.r.LookupIP(ctx, c.host)
	want := c.host + ". 3600 IN A <this server's public IPv4 address> (and AAAA for IPv6)"
	if c.failed("A/AAAA", c.host, want, err) {
		c.noPTR()
		return
	}
	res := Result{Kind: "A/AAAA", Name: c.host, Want: want}
	for _, a := range addrs {
		res.Found = append(res.Found, a.String())
	}
	if len(addrs) == 0 {
		res.Status, res.Note = Missing, "the host name has no address"
		c.add(res)
		c.noPTR()
		return
	}
	res.Status, res.Want = OK, ""
	c.add(res)
	c.addrs = addrs
	for _, a := range addrs {
		c.ptr(ctx, a)
	}
}

// noPTR says that reverse DNS cannot be checked before the host has an
// address.
func (c *checker) noPTR() {
	c.add(Result{Kind: "PTR", Name: c.host, Status: Missing, Note: "publish the host's addresses first, then a PTR for each naming " + c.host})
}

// ptr checks forward-confirmed reverse DNS (iprev, RFC 8601 §3): receivers
// distrust a sender whose address does not name it.
func (c *checker) ptr(ctx context.Context, a netip.Addr) {
	name := a.String()
	want := fmt.Sprintf("%s PTR %s. (set by whoever gives you the address: your hosting provider)", a, c.host)
	names, err := c.r.LookupPTR(ctx, a)
	if c.failed("PTR", name, want, err) {
		return
	}
	res := Result{Kind: "PTR", Name: name, Found: names, Want: want}
	switch {
	case len(names) == 0:
		res.Status = Missing
	case !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, c.host) }):
		res.Status, res.Note = Wrong, "the address does not name "+c.host
	default:
		res.Status, res.Want = OK, ""
	}
	c.add(res)
}

// spf checks the domain's SPF record (RFC 7208 §4.5: exactly one).
func (c *checker) spf(ctx context.Context) {
	want := c.want[c.domain+" TXT"]
	txts, err := c.r.LookupTXT(ctx, c.domain)
	if c.failed("SPF", c.domain, want, err) {
		return
	}
	res := Result{Kind: "SPF", Name: c.domain, Want: want}
	var spfs []string
	for _, t := range txts {
		if isTag(t, "v=spf1") {
			spfs = append(spfs, t)
		}
	}
	res.Found = spfs
	switch {
	case len(spfs) == 0:
		res.Status = Missing
	case len(spfs) > 1:
		res.Status, res.Note = Wrong, "more than one SPF record: receivers treat that as a permanent error (RFC 7208 §4.5)"
	case !c.spfAllows(spfs[0]):
		res.Status, res.Note = Wrong, "it names neither mx, a:"+c.host+" nor this host's addresses"
	default:
		res.Status = OK
	}
	c.add(res)
}

// spfAllows reports whether record lets this host send without following
// includes: mx, a:host, or one of the host's addresses.
func (c *checker) spfAllows(record string) bool {
	for _, term := range strings.Fields(strings.ToLower(record))[1:] {
		term = strings.TrimLeft(term, "+")
		switch {
		case term == "mx" || term == "mx:"+c.domain || term == "a:"+c.host:
			return true
		case strings.HasPrefix(term, "ip4:") || strings.HasPrefix(term, "ip6:"):
			v := term[4:]
			if pfx, err := netip.ParsePrefix(v); err == nil {
				if slices.ContainsFunc(c.addrs, pfx.Contains) {
					return true
				}
			} else if a, err := netip.ParseAddr(v); err == nil && slices.Contains(c.addrs, a) {
				return true
			}
		}
	}
	return false
}

func (c *checker) dkim(ctx context.Context) {
	if len(c.p.Keys) == 0 {
		c.add(Result{Kind: "DKIM", Name: "_domainkey." + c.domain, Status: Missing,
			Note: "no signing key yet: generate one (DKIM page, or posthouse admin dkim generate " + c.domain + ")"})
		return
	}
	for _, k := range c.p.Keys {
		name := k.Selector + "._domainkey." + c.domain
		want := c.want[name+" TXT"]
		txts, err := c.r.LookupTXT(ctx, name)
		if c.failed("DKIM", name, want, err) {
			continue
		}
		res := Result{Kind: "DKIM", Name: name, Found: txts, Want: want}
		wantP := tagValue(zoneText(k.Zone), "p")
		switch {
		case len(txts) == 0:
			res.Status = Missing
		case !slices.ContainsFunc(txts, func(t string) bool { return tagValue(t, "p") == wantP }):
			res.Status, res.Note = Wrong, "the published public key is not this key's"
		default:
			res.Status = OK
		}
		c.add(res)
	}
}

func (c *checker) dmarc(ctx context.Context) {
	name := "_dmarc." + c.domain
	want := c.want[name+" TXT"]
	txts, err := c.r.LookupTXT(ctx, name)
	if c.failed("DMARC", name, want, err) {
		return
	}
	res := Result{Kind: "DMARC", Name: name, Want: want}
	for _, t := range txts {
		if isTag(t, "v=DMARC1") {
			res.Found = append(res.Found, t)
		}
	}
	switch {
	case len(res.Found) == 0:
		res.Status = Missing
	case len(res.Found) > 1:
		res.Status, res.Note = Wrong, "more than one DMARC record: receivers ignore them all (RFC 7489 §6.6.3)"
	case tagValue(res.Found[0], "p") == "":
		res.Status, res.Note = Wrong, "no p= policy"
	default:
		res.Status = OK
	}
	c.add(res)
}

// autoconfig accepts a CNAME to the host or addresses that are the host's.
func (c *checker) autoconfig(ctx context.Context, name string) {
	want := c.want[name+" CNAME"]
	res := Result{Kind: "autoconfig", Name: name, Want: want}
	target, err := c.r.LookupCNAME(ctx, name)
	if c.failed(res.Kind, name, want, err) {
		return
	}
	if target != "" {
		res.Found = []string{"CNAME " + target}
		if target == c.host {
			res.Status = OK
		} else {
			res.Status, res.Note = Wrong, "points at "+target+", not "+c.host
		}
		c.add(res)
		return
	}
	addrs, err := c.r.LookupIP(ctx, name)
	if err != nil && !errors.Is(err, dns.ErrNotFound) {
		c.failed(res.Kind, name, want, err)
		return
	}
	for _, a := range addrs {
		res.Found = append(res.Found, a.String())
	}
	switch {
	case len(addrs) == 0:
		res.Status = Missing
	case len(c.addrs) > 0 && slices.ContainsFunc(addrs, func(a netip.Addr) bool { return slices.Contains(c.addrs, a) }):
		res.Status = OK
	default:
		res.Status, res.Note = Wrong, "its addresses are not "+c.host+"'s"
	}
	c.add(res)
}

// srvs checks the RFC 6186 and RFC 5804 §1.8 records against the ports
// configured; a service that is off should say so with target ".".
func (c *checker) srvs(ctx context.Context) {
	for _, s := range []struct {
		name string
		port int
	}{
		{"_submissions._tcp", c.p.Ports.Submissions},
		{"_submission._tcp", c.p.Ports.Submission},
		{"_imaps._tcp", c.p.Ports.IMAPS},
		{"_imap._tcp", c.p.Ports.IMAP},
		{"_pop3s._tcp", c.p.Ports.POP3S},
		{"_pop3._tcp", c.p.Ports.POP3},
		{"_sieve._tcp", c.p.Ports.ManageSieve},
	} {
		name := s.name + "." + c.domain
		want := c.want[name+" SRV"]
		srvs, err := c.r.LookupSRV(ctx, name)
		if err != nil && errors.Is(err, dns.ErrNotFound) {
			srvs, err = nil, nil
		}
		if c.failed("SRV", name, want, err) {
			continue
		}
		res := Result{Kind: "SRV", Name: name, Want: want}
		match := false
		for _, r := range srvs {
			res.Found = append(res.Found, fmt.Sprintf("%d %d %d %s", r.Priority, r.Weight, r.Port, r.Target))
			if s.port == 0 {
				match = match || r.Target == "."
			} else {
				match = match || r.Target == c.host && int(r.Port) == s.port
			}
		}
		switch {
		case len(srvs) == 0:
			res.Status = Missing
		case !match && s.port == 0:
			res.Status, res.Note = Wrong, "the service is off here: publish target \".\""
		case !match:
			res.Status, res.Note = Wrong, "want "+c.host+" port "+strconv.Itoa(s.port)
		default:
			res.Status = OK
		}
		c.add(res)
	}
}

// optionalTXT checks a record that need not exist, but must be well formed
// when it does.
func (c *checker) optionalTXT(ctx context.Context, kind, name, version, needs string) {
	want := c.want[name+" TXT"]
	txts, err := c.r.LookupTXT(ctx, name)
	if err != nil && errors.Is(err, dns.ErrNotFound) {
		txts, err = nil, nil
	}
	if c.failed(kind, name, want, err) {
		return
	}
	res := Result{Kind: kind, Name: name, Want: want}
	for _, t := range txts {
		if isTag(t, version) {
			res.Found = append(res.Found, t)
		}
	}
	switch {
	case len(res.Found) == 0:
		res.Status, res.Note = Optional, "not published"
	case len(res.Found) > 1:
		res.Status, res.Note = Wrong, "more than one "+version+" record"
	case !strings.Contains(strings.ReplaceAll(res.Found[0], " ", ""), needs):
		res.Status, res.Note = Wrong, "no "+strings.TrimSuffix(needs, "=")+"= tag"
	default:
		res.Status, res.Want = OK, ""
	}
	c.add(res)
}

// isTag reports whether a TXT record starts with version ("v=spf1"),
// case-insensitively, followed by the end or a separator.
func isTag(txt, version string) bool {
	if len(txt) < len(version) || !strings.EqualFold(txt[:len(version)], version) {
		return false
	}
	rest := txt[len(version):]
	return rest == "" || rest[0] == ' ' || rest[0] == ';'
}

// tagValue returns the value of tag in a "k=v; k=v" record (DKIM, DMARC),
// with spaces removed; "" when absent.
func tagValue(txt, tag string) string {
	for _, part := range strings.Split(txt, ";") {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), tag) {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}

// zoneText joins the quoted strings of a zone-file TXT line.
func zoneText(line string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(line, '"')
		if i < 0 {
			return b.String()
		}
		line = line[i+1:]
		j := strings.IndexByte(line, '"')
		if j < 0 {
			return b.String()
		}
		b.WriteString(line[:j])
		line = line[j+1:]
	}
}
