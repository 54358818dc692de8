package gate

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/posthouse/posthouse/dns"
)

// RFC 5782 §2.1: a listing is an A record in 127.0.0.0/8. Lists answer
// 127.255.255.x to say they refused the query (Spamhaus: 127.255.255.254
// through a public resolver, .255 over the free-use volume, .252 a typo in
// the zone), never a listing.
var (
	listingNet = netip.MustParsePrefix("127.0.0.0/8")
	refusedNet = netip.MustParsePrefix("127.255.255.0/24")
)

const (
	// maxReasonLen bounds the list's TXT reason quoted in our reply (RFC
	// 5321 §4.5.3.1.5: a reply line is at most 512 octets with its code).
	maxReasonLen = 200
	// maxReplyText bounds the whole 554 text, zone and reason included.
	maxReplyText = 450
	// troubleLogEvery: a list that keeps failing temporarily is logged
	// once per zone in this time, not once per connection.
	troubleLogEvery = 10 * time.Minute
)

// listResult is one connection's DNSBL/DNSWL verdict.
type listResult struct {
	allowZone string // the DNSWL that listed the client, "" if none
	blockZone string // the DNSBL that listed it, "" if none
	reason    string // that list's TXT reason, sanitised; may be ""
	reply     *Reply // the refusal, nil when not refused
}

// zoneAnswer is what one list said.
type zoneAnswer int

const (
	notListed zoneAnswer = iota
	listed
	unusable // an error: temporary failure, refused query, odd answer
)

// checkLists asks every zone at once and decides: a DNSWL listing wins;
// else the first DNSBL (in configured order) listing the client refuses,
// with its TXT reason.
func (g *Gate) checkLists(ctx context.Context, ip netip.Addr, log *slog.Logger) listResult {
	all := append(append([]string(nil), g.dnswl...), g.dnsbl...)
	answers := make([]zoneAnswer, len(all))
	var wg sync.WaitGroup
	for i, zone := range all {
		wg.Go(func() { answers[i] = g.askZone(ctx, ip, zone, log) })
	}
	wg.Wait()
	for i, zone := range g.dnswl {
		if answers[i] == listed {
			log.Info("client on allow list", "zone", zone)
			return listResult{allowZone: zone}
		}
	}
	for i, zone := range g.dnsbl {
		if answers[len(g.dnswl)+i] != listed {
			continue
		}
		r := listResult{blockZone: zone}
		txts, err := g.res.LookupTXT(ctx, queryName(ip, zone))
		if err == nil && len(txts) > 0 {
			r.reason = sanitizeReason(txts[0])
		}
		r.reply = blockReply(ip, zone, r.reason)
		return r
	}
	return listResult{}
}

// askZone queries one zone for ip. Errors are logged (temporary trouble at
// most once per zone per troubleLogEvery; a refused query or an answer
// outside 127.0.0.0/8 once per zone) and count as unlisted.
func (g *Gate) askZone(ctx context.Context, ip netip.Addr, zone string, log *slog.Logger) zoneAnswer {
	addrs, err := g.res.LookupA(ctx, queryName(ip, zone))
	switch {
	case errors.Is(err, dns.ErrNotFound):
		return notListed
	case err != nil:
		if g.shouldLog("temp "+zone, troubleLogEvery) {
			log.Warn("DNS list lookup failed, not refusing", "zone", zone, "err", err)
		}
		return unusable
	}
	ans := notListed
	for _, a := range addrs {
		a = a.Unmap()
		switch {
		case refusedNet.Contains(a):
			if g.shouldLog("refused "+zone+" "+a.String(), 0) {
				g.log.Error("DNS list refused our query; its answers are ignored (lists such as Spamhaus refuse queries sent through public resolvers: set [dns] resolver to your own recursive resolver)",
					"zone", zone, "answer", a.String())
			}
			return unusable
		case listingNet.Contains(a):
			ans = listed
		default:
			if g.shouldLog("odd "+zone, 0) {
				g.log.Error("DNS list answered outside 127.0.0.0/8, ignoring the answer (a resolver that rewrites NXDOMAIN?)",
					"zone", zone, "answer", a.String())
			}
			return unusable
		}
	}
	return ans
}

// shouldLog reports whether the event named key is due to be logged: the
// first time, and again every interval if interval > 0.
func (g *Gate) shouldLog(key string, interval time.Duration) bool {
	now := g.now()
	g.warnMu.Lock()
	defer g.warnMu.Unlock()
	last, seen := g.warned[key]
	if seen && (interval <= 0 || now.Sub(last) < interval) {
		return false
	}
	if len(g.warned) >= 1024 {
		clear(g.warned) // bounded: keys are per zone, this is a backstop
	}
	g.warned[key] = now
	return true
}

// queryName is the name to look ip up in zone (RFC 5782 §2.1, §2.4): the
// IPv4 octets in reverse order, or the 32 nibbles of an IPv6 address in
// reverse order, then the zone.
func queryName(ip netip.Addr, zone string) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		b.Grow(16 + len(zone))
		for i := 3; i >= 0; i-- {
			writeDec(&b, a[i])
			b.WriteByte('.')
		}
	} else {
		const hex = "0123456789abcdef"
		a := ip.As16()
		b.Grow(64 + len(zone))
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(zone)
	return b.String()
}

func writeDec(b *strings.Builder, v byte) {
	if v >= 100 {
		b.WriteByte('0' + v/100)
	}
	if v >= 10 {
		b.WriteByte('0' + v/10%10)
	}
	b.WriteByte('0' + v%10)
}

// sanitizeReason makes a list's TXT record fit for our reply: printable
// ASCII only (anything else, controls and line breaks included, becomes a
// space; runs of spaces collapse), trimmed, at most maxReasonLen octets.
func sanitizeReason(s string) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s) && b.Len() < maxReasonLen; i++ {
		c := s[i]
		if c <= ' ' || c > '~' {
			space = b.Len() > 0
			continue
		}
		if space {
			if b.Len()+1 >= maxReasonLen {
				break
			}
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// blockReply is the 554 for a client zone lists: RFC 5782 §2.1 suggests
// quoting the TXT record, which usually says how to be delisted.
func blockReply(ip netip.Addr, zone, reason string) *Reply {
	text := "Service unavailable; client [" + ip.String() + "] blocked using " + zone
	if reason != "" {
		if room := maxReplyText - len(text) - 2; room > 0 {
			text += "; " + reason[:min(len(reason), room)]
		}
	}
	return &Reply{Code: 554, Enhanced: [3]int{5, 7, 1}, Text: text}
}

// validZone accepts a DNS name of LDH labels (underscores allowed, as some
// lists' names carry a key), short enough for an IPv6 query (64 octets of
// nibbles) to stay within 253.
func validZone(z string) bool {
	if z == "" || len(z) > 253-64 {
		return false
	}
	for _, label := range strings.Split(z, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
