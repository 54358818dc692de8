package gate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// Resolver is what the gate asks of package dns (*dns.Resolver implements
// it). Errors must report temporariness the way dns.Error does; the gate
// fails open on every error anyway.
type Resolver interface {
	LookupA(ctx context.Context, name string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Defaults for zero Options fields.
const (
	// DefaultLookupTimeout bounds all list lookups of one connection (the
	// A queries in parallel, then the TXT of a listing). Past it the
	// client is treated as unlisted.
	DefaultLookupTimeout = 10 * time.Second
	// DefaultRateWindow is the window of MaxMessagesPerSender.
	DefaultRateWindow = time.Hour
)

// Options configure a Gate.
type Options struct {
	Logger *slog.Logger
	// Resolver answers the list queries; required when DNSBL or DNSWL is
	// set.
	Resolver Resolver
	// DNSBL and DNSWL are list zones ("zen.example.org"). A client listed
	// by a DNSBL is refused at RCPT; one listed by a DNSWL skips the DNSBL
	// and greylisting.
	DNSBL []string
	DNSWL []string
	// LookupTimeout bounds one connection's list lookups
	// (DefaultLookupTimeout).
	LookupTimeout time.Duration
	// Exempt networks (cmd passes [auth] trusted_networks) are never
	// checked.
	Exempt []netip.Prefix
	// Greylist, when set, greylists (package doc); its database is opened
	// by New and closed by Close.
	Greylist *GreylistOptions
	// MaxMessagesPerSender is how many transactions (MAIL commands) one
	// envelope sender address may start per RateWindow, the null sender
	// counted per client address (IPv4, or IPv6 /64); 0: no limit.
	MaxMessagesPerSender int
	RateWindow           time.Duration
	// Now is the clock for greylisting and the rate; default time.Now.
	Now func() time.Time
}

// Gate is the port-25 admission checks, shared by every connection. Safe
// for concurrent use.
type Gate struct {
	log     *slog.Logger
	res     Resolver
	dnsbl   []string
	dnswl   []string
	timeout time.Duration
	exempt  []netip.Prefix
	grey    *Greylist
	rate    *limit.Rate[string]
	now     func() time.Time

	// lookups counts list lookups in flight, which Close waits for.
	lookups sync.WaitGroup
	// warned: list answers that mean "not usable" (a refused query, an
	// answer outside 127.0.0.0/8), logged once per zone and kind.
	warnMu sync.Mutex
	warned map[string]time.Time
}

// New builds a Gate, opening the greylist database when asked to.
func New(ctx context.Context, o Options) (*Gate, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = DefaultLookupTimeout
	}
	if o.RateWindow <= 0 {
		o.RateWindow = DefaultRateWindow
	}
	g := &Gate{
		log:     o.Logger,
		res:     o.Resolver,
		timeout: o.LookupTimeout,
		exempt:  o.Exempt,
		now:     o.Now,
		warned:  map[string]time.Time{},
	}
	var err error
	if g.dnsbl, err = zones(o.DNSBL); err != nil {
		return nil, err
	}
	if g.dnswl, err = zones(o.DNSWL); err != nil {
		return nil, err
	}
	if (len(g.dnsbl) > 0 || len(g.dnswl) > 0) && o.Resolver == nil {
		return nil, errors.New("gate: DNSBL or DNSWL zones need a Resolver")
	}
	if o.MaxMessagesPerSender > 0 {
		g.rate = limit.NewRate[string](o.MaxMessagesPerSender, o.RateWindow)
	}
	if o.Greylist != nil {
		gl := *o.Greylist
		if gl.Logger == nil {
			gl.Logger = o.Logger
		}
		if gl.Now == nil {
			gl.Now = o.Now
		}
		if g.grey, err = OpenGreylist(ctx, gl); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// zones normalises list zones: lower case, no trailing dot, valid names.
func zones(in []string) ([]string, error) {
	var out []string
	for _, z := range in {
		z = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(z), "."))
		if !validZone(z) {
			return nil, fmt.Errorf("gate: %q is not a DNS zone name", z)
		}
		out = append(out, z)
	}
	return out, nil
}

// Enabled reports whether the gate checks anything at all.
func (g *Gate) Enabled() bool {
	return len(g.dnsbl) > 0 || len(g.dnswl) > 0 || g.grey != nil || g.rate != nil
}

// Close waits for list lookups in flight (they end with their connections)
// and closes the greylist database.
func (g *Gate) Close() error {
	g.lookups.Wait()
	if g.grey != nil {
		return g.grey.Close()
	}
	return nil
}

// Conn is one connection's checks.
type Conn struct {
	g      *Gate
	remote netip.Addr
	log    *slog.Logger
	// lists is the DNSBL/DNSWL verdict; done closes when it is known.
	done  chan struct{}
	lists listResult
	// refusedLogged: the DNSBL refusal was logged for this connection.
	refusedLogged bool
}

// Connect starts the checks for a client at remote: the list lookups run
// in the background until the first RCPT needs their answer. ctx ends with
// the connection (and cancels the lookups); log is the connection's. An
// exempt client, or a gate that checks nothing, gives nil.
func (g *Gate) Connect(ctx context.Context, remote netip.Addr, log *slog.Logger) *Conn {
	remote = remote.Unmap()
	if !g.Enabled() || !remote.IsValid() || g.isExempt(remote) {
		return nil
	}
	if log == nil {
		log = g.log
	}
	c := &Conn{g: g, remote: remote, log: log, done: make(chan struct{})}
	if len(g.dnsbl) == 0 && len(g.dnswl) == 0 {
		close(c.done)
		return c
	}
	g.lookups.Add(1)
	go func() {
		defer g.lookups.Done()
		defer close(c.done)
		ctx, cancel := context.WithTimeout(ctx, g.timeout)
		defer cancel()
		c.lists = g.checkLists(ctx, remote, log)
	}()
	return c
}

func (g *Gate) isExempt(a netip.Addr) bool {
	for _, p := range g.exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Replies. Every one carries an enhanced code (RFC 3463); 5xx only for a
// listing, which retrying from the same address cannot cure.
var (
	// ReplyGreylisted: RFC 6647 §2.1, a temporary refusal the sender's
	// queue retries.
	ReplyGreylisted = &Reply{Code: 451, Enhanced: [3]int{4, 7, 1}, Text: "Greylisted, try again later"}
	// ReplySenderRate: RFC 3463 §3.8, 4.7.1 delivery not authorized for
	// now; the sender retries later.
	ReplySenderRate = &Reply{Code: 450, Enhanced: [3]int{4, 7, 1}, Text: "Too many messages from this sender, try again later"}
)

// Reply is an SMTP reply the gate gives (smtpd recognises it by its
// SMTPReply method).
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string // printable ASCII, one line
}

func (r *Reply) Error() string {
	return fmt.Sprintf("gate: %d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// SMTPReply returns the reply the client should get.
func (r *Reply) SMTPReply() (code int, enhanced [3]int, text string) {
	return r.Code, r.Enhanced, r.Text
}

// Mail applies the sender's message rate. from is "" for the null
// reverse-path, which is counted per client address instead.
func (c *Conn) Mail(ctx context.Context, from string) error {
	g := c.g
	if g.rate == nil {
		return nil
	}
	if !g.rate.Allow(rateKey(c.remote, from), g.now()) {
		c.log.Warn("sender over message rate", "from", from)
		return ReplySenderRate
	}
	return nil
}

// rateKey is the sender's bucket: the address in lower case, or for the
// null sender the client address ("<>" and a limit.Key prefix, which no
// address can equal).
func rateKey(remote netip.Addr, from string) string {
	if from == "" {
		return "<>" + limit.Key(remote).String()
	}
	return strings.ToLower(from)
}

// Rcpt decides on one recipient: postmaster is always accepted; then a
// DNSWL listing accepts, a DNSBL listing refuses (554 5.7.1 with the
// list's reason), and greylisting may defer (451 4.7.1). Lookup and
// database failures accept (fail open) and are logged.
func (c *Conn) Rcpt(ctx context.Context, from, rcpt string) error {
	if isPostmaster(rcpt) {
		return nil
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		// The session is ending; nobody reads the reply.
		return nil
	}
	l := &c.lists
	if l.allowZone != "" {
		return nil
	}
	if l.reply != nil {
		if !c.refusedLogged {
			c.refusedLogged = true
			c.log.Info("client on block list, refused", "zone", l.blockZone, "reason", l.reason, "from", from, "rcpt", rcpt)
		} else {
			c.log.Debug("client on block list, refused", "zone", l.blockZone, "rcpt", rcpt)
		}
		return l.reply
	}
	if c.g.grey == nil {
		return nil
	}
	v, err := c.g.grey.Check(ctx, c.remote, from, rcpt)
	if err != nil {
		c.log.Error("greylist, accepting", "rcpt", rcpt, "err", err)
		return nil
	}
	switch v.Result {
	case Passed:
		c.log.Info("greylist passed, sender allow-listed", "from", from, "rcpt", rcpt, "waited", v.Waited.Round(time.Second))
	case Greylisted:
		c.log.Info("greylisted", "from", from, "rcpt", rcpt, "retry_after", v.RetryAfter.Round(time.Second))
		return ReplyGreylisted
	}
	return nil
}

// isPostmaster reports whether rcpt is a postmaster address, which RFC
// 5321 §4.5.1 requires us to accept: whoever the gate refuses must still
// be able to reach the administrator about it.
func isPostmaster(rcpt string) bool {
	at := strings.LastIndexByte(rcpt, '@')
	local := rcpt
	if at >= 0 {
		local = rcpt[:at]
	}
	return strings.EqualFold(local, "postmaster")
}
