package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds one DNS exchange (one UDP try, or the TCP retry).
const DefaultTimeout = 5 * time.Second

// ednsBufferSize is the UDP payload size we advertise (DNS flag day 2020).
const ednsBufferSize = 1232

// Sentinel errors. Lookup errors are *Error values that wrap one of them, so
// callers use errors.Is to decide between permanent and temporary failure.
var (
	// ErrNotFound: the name does not exist (NXDOMAIN). Permanent.
	ErrNotFound = errors.New("dns: no such domain")
	// ErrTemporary: the resolver could not answer (SERVFAIL, REFUSED,
	// timeout, network error). Trying again later may help.
	ErrTemporary = errors.New("dns: temporary DNS failure")
	// ErrMalformed: the answer could not be used (bad name, bad reply).
	ErrMalformed = errors.New("dns: malformed name or answer")
)

// Error describes a failed lookup.
type Error struct {
	Name  string // queried name
	Type  string // "MX", "A", …
	Rcode string // DNS response code, "" for network failures
	Err   error  // ErrNotFound, ErrTemporary or ErrMalformed
	Cause error  // underlying network error, if any

	reply *dns.Msg // the NXDOMAIN reply, for its SOA (Cache)
}

func (e *Error) Error() string {
	s := fmt.Sprintf("dns %s %s: %v", e.Type, e.Name, e.Err)
	if e.Rcode != "" {
		s += " (" + e.Rcode + ")"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed.
func (e *Error) Temporary() bool { return errors.Is(e.Err, ErrTemporary) }

// Options configure New.
type Options struct {
	// Server is the recursive nameserver, "host:port" (port defaults to
	// 53). Empty: the first nameserver in ResolvConf.
	Server string
	// ResolvConf is read when Server is empty (default /etc/resolv.conf).
	ResolvConf string
	// Timeout bounds each exchange (default DefaultTimeout).
	Timeout time.Duration
	// Observe, when set, hears of every exchange with the nameserver: the
	// record type ("MX"), how long it took (with a TCP retry) and its
	// error (nil, or an *Error). cmd feeds package metrics with it. It
	// must not block.
	Observe func(qtype string, d time.Duration, err error)
	// Cache, when set, keeps answers for their TTL (see Cache); the
	// Resolvers of one process share one. Observe hears only of the
	// exchanges that reach the nameserver.
	Cache *Cache
}

// Resolver sends queries to one nameserver. It is safe for concurrent use.
type Resolver struct {
	server  string
	timeout time.Duration
	observe func(qtype string, d time.Duration, err error)
	cache   *Cache
	udp     *dns.Client
	tcp     *dns.Client
}

// New returns a Resolver for opts.
func New(opts Options) (*Resolver, error) {
	server := opts.Server
	if server == "" {
		path := opts.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("dns: no [dns] resolver configured and %w", err)
		}
		server, err = ParseResolvConf(string(data))
		if err != nil {
			return nil, fmt.Errorf("dns: %s: %w", path, err)
		}
	} else {
		var err error
		server, err = normalizeServer(server)
		if err != nil {
			return nil, err
		}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Resolver{
		server:  server,
		timeout: timeout,
		observe: opts.Observe,
		cache:   opts.Cache,
		udp:     &dns.Client{Net: "udp", Timeout: timeout, UDPSize: ednsBufferSize},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

// cacheOnlyKey marks a context of CacheOnly; its value is the missed flag.
type cacheOnlyKey struct{}

// errNotCached is the cause of a CacheOnly lookup's failure.
var errNotCached = errors.New("not in the cache")

// CacheOnly returns a context under which a Resolver answers from its
// cache alone, never asking the nameserver nor joining an exchange under
// way: a question the cache holds no live answer for fails with
// ErrTemporary and sets *missed. Callers with several lookups to make try
// them this way first, one after another, and only on a miss pay for doing
// them in parallel against the nameserver.
func CacheOnly(ctx context.Context, missed *atomic.Bool) context.Context {
	return context.WithValue(ctx, cacheOnlyKey{}, missed)
}

// Server returns the "host:port" queries go to.
func (r *Resolver) Server() string { return r.server }

// normalizeServer accepts "host", "host:port", "[v6]:port" or a bare IPv6
// address and returns "host:port".
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("dns: empty server address")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(s, "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port.
		if strings.ContainsAny(s, "[]") {
			return "", fmt.Errorf("dns: bad server address %q", s)
		}
		return net.JoinHostPort(s, "53"), nil
	}
	if host == "" || port == "" {
		return "", fmt.Errorf("dns: bad server address %q", s)
	}
	return net.JoinHostPort(host, port), nil
}

// ParseResolvConf returns the first nameserver of a resolv.conf(5) file as
// "host:port". Comments start with '#' or ';'.
func ParseResolvConf(data string) (string, error) {
	for line := range strings.Lines(data) {
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil {
			continue // resolv.conf ignores what it cannot parse; so do we
		}
		return net.JoinHostPort(addr.String(), "53"), nil
	}
	return "", fmt.Errorf("no usable nameserver line")
}

// exchange answers one question from the cache, if any, or by asking the
// nameserver. Rcodes other than NOERROR/NXDOMAIN become ErrTemporary;
// NXDOMAIN becomes ErrNotFound.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, &Error{Name: name, Type: dns.TypeToString[qtype], Err: ErrMalformed}
	}
	if missed, ok := ctx.Value(cacheOnlyKey{}).(*atomic.Bool); ok {
		if r.cache != nil {
			if e, ok := r.cache.peek(name, qtype); ok {
				return e.reply, e.err
			}
		}
		missed.Store(true)
		return nil, &Error{Name: name, Type: dns.TypeToString[qtype], Err: ErrTemporary, Cause: errNotCached}
	}
	if r.cache == nil {
		return r.ask(ctx, name, qtype)
	}
	return r.cache.lookup(ctx, name, qtype, func(ctx context.Context) (*dns.Msg, error) {
		return r.ask(ctx, name, qtype)
	})
}

// ask sends one question to the nameserver and returns the reply, retrying
// over TCP when the UDP answer is truncated.
func (r *Resolver) ask(ctx context.Context, name string, qtype uint16) (reply *dns.Msg, err error) {
	typ := dns.TypeToString[qtype]
	if r.observe != nil {
		start := time.Now()
		defer func() { r.observe(typ, time.Since(start), err) }()
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(ednsBufferSize, false)

	reply, err = r.try(ctx, r.udp, m)
	if err == nil && reply.Truncated {
		reply, err = r.try(ctx, r.tcp, m)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Name: name, Type: typ, Err: ErrTemporary, Cause: ctx.Err()}
		}
		return nil, &Error{Name: name, Type: typ, Err: ErrTemporary, Cause: err}
	}
	if reply.Id != m.Id {
		return nil, &Error{Name: name, Type: typ, Err: ErrMalformed}
	}
	switch reply.Rcode {
	case dns.RcodeSuccess:
		return reply, nil
	case dns.RcodeNameError:
		return nil, &Error{Name: name, Type: typ, Rcode: dns.RcodeToString[reply.Rcode], Err: ErrNotFound, reply: reply}
	default:
		return nil, &Error{Name: name, Type: typ, Rcode: dns.RcodeToString[reply.Rcode], Err: ErrTemporary}
	}
}

func (r *Resolver) try(ctx context.Context, c *dns.Client, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	reply, _, err := c.ExchangeContext(ctx, m, r.server)
	return reply, err
}

// MX is one mail exchanger.
type MX struct {
	Host string // without the trailing dot; "." stays "." (null MX)
	Pref uint16
}

// LookupMX returns domain's MX records, lowest preference first (ties in
// random order, RFC 5321 §5.1). A name that exists without MX records gives
// an empty list and no error: the caller falls back to A/AAAA. A null MX
// (RFC 7505) is returned as a single MX with Host ".".
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	reply, err := r.exchange(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var mxs []MX
	for _, rr := range reply.Answer {
		if mx, ok := rr.(*dns.MX); ok {
			host := mx.Mx
			if host != "." {
				host = strings.TrimSuffix(host, ".")
			}
			mxs = append(mxs, MX{Host: strings.ToLower(host), Pref: mx.Preference})
		}
	}
	shuffle(mxs)
	slices.SortStableFunc(mxs, func(a, b MX) int { return int(a.Pref) - int(b.Pref) })
	return mxs, nil
}

// LookupIP returns host's IPv6 and IPv4 addresses (AAAA first, then A). The
// two queries run in parallel. NODATA for both gives ErrNotFound; a
// temporary failure of one is ignored when the other answers.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	type result struct {
		addrs []netip.Addr
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		a, err := r.lookupAddr(ctx, host, dns.TypeA)
		ch <- result{a, err}
	}()
	v6, err6 := r.lookupAddr(ctx, host, dns.TypeAAAA)
	v4 := <-ch
	addrs := append(v6, v4.addrs...)
	if len(addrs) > 0 {
		return addrs, nil
	}
	// Prefer the more telling error: temporary beats not-found, so a flaky
	// resolver never turns into a bounce.
	for _, err := range []error{v4.err, err6} {
		if err != nil && errors.Is(err, ErrTemporary) {
			return nil, err
		}
	}
	for _, err := range []error{v4.err, err6} {
		if err != nil {
			return nil, err
		}
	}
	return nil, &Error{Name: host, Type: "A", Err: ErrNotFound, Rcode: "NODATA"}
}

func (r *Resolver) lookupAddr(ctx context.Context, host string, qtype uint16) ([]netip.Addr, error) {
	reply, err := r.exchange(ctx, host, qtype)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	for _, rr := range reply.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				addrs = append(addrs, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, nil
}

// LookupTXT returns name's TXT records, each with its strings joined (RFC
// 6376 §3.6.2.2 and RFC 7208 §3.3 both concatenate them). NODATA gives an
// empty list; NXDOMAIN gives ErrNotFound.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	reply, err := r.exchange(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var txts []string
	for _, rr := range reply.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(t.Txt, ""))
		}
	}
	return txts, nil
}

// LookupPTR returns the names addr points to, without trailing dots.
func (r *Resolver) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	name, err := dns.ReverseAddr(addr.Unmap().String())
	if err != nil {
		return nil, &Error{Name: addr.String(), Type: "PTR", Err: ErrMalformed, Cause: err}
	}
	reply, err := r.exchange(ctx, name, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, rr := range reply.Answer {
		if p, ok := rr.(*dns.PTR); ok {
			names = append(names, strings.TrimSuffix(p.Ptr, "."))
		}
	}
	return names, nil
}
