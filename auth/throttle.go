package auth

import (
	"net/netip"
	"sync"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
)

// Bounds on the throttling state, so that an attacker spraying addresses or
// user names cannot grow it without limit.
const (
	maxTrackedKeys    = 100_000 // per map
	maxFailuresPerKey = 64      // remembered per address or account
	sweepInterval     = time.Minute
)

// failure is one distinct failed credential.
type failure struct {
	at      time.Time
	account string
	ip      netip.Prefix
	cred    credID
}

type ipRecord struct {
	fails  []failure
	warned bool // a throttling line was logged for the current episode
}

// throttle holds the failure counters of doc.go's "Throttling" section.
type throttle struct {
	mu        sync.Mutex
	o         Options
	ips       map[netip.Prefix]*ipRecord
	accounts  map[string][]failure
	lastSweep time.Time
}

func newThrottle(o Options) *throttle {
	o.IPMaxFailures = min(o.IPMaxFailures, maxFailuresPerKey)
	return &throttle{o: o, ips: map[netip.Prefix]*ipRecord{}, accounts: map[string][]failure{}}
}

// ipKey groups addresses the way one client holds them (see limit.Key):
// an IPv4 address or an IPv6 /64; the zero Prefix for a remote that is not
// IP, such as a test pipe.
func ipKey(a netip.Addr) netip.Prefix { return limit.Key(a) }

// prune drops failures older than since.
func prune(fs []failure, since time.Time) []failure {
	i := 0
	for i < len(fs) && !fs[i].at.After(since) {
		i++
	}
	if i == 0 {
		return fs
	}
	return append(fs[:0], fs[i:]...)
}

// begin reports whether ip is throttled (and until when) and how long an
// attempt for account must wait first. Unless throttled, it counts the
// attempt as a failure of cred from ip right away (added reports whether
// that entry is new), so that guesses sent in parallel cannot all pass the
// check before any of them has failed: success forgets the entry again,
// abort takes it back when the attempt ends without an answer.
func (t *throttle) begin(now time.Time, ip netip.Prefix, account string, cred credID) (until time.Time, delay time.Duration, added bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	if n := t.o.IPMaxFailures; n > 0 && t.o.IPWindow > 0 {
		rec := t.ips[ip]
		if rec == nil {
			rec = &ipRecord{}
			t.ips[ip] = rec
		}
		rec.fails = prune(rec.fails, now.Add(-t.o.IPWindow))
		had := hasCred(rec.fails, cred)
		if len(rec.fails) >= n && !had {
			return rec.fails[len(rec.fails)-n].at.Add(t.o.IPWindow), 0, false
		}
		rec.warned = rec.warned && len(rec.fails) >= n
		rec.fails = addFailure(rec.fails, failure{at: now, account: account, ip: ip, cred: cred})
		added = !had
	}
	if base := t.o.AccountDelayBase; base > 0 && t.o.AccountWindow > 0 {
		fs := prune(t.accounts[account], now.Add(-t.o.AccountWindow))
		if len(fs) > 0 {
			t.accounts[account] = fs
		} else {
			delete(t.accounts, account)
		}
		if over := len(fs) - t.o.AccountFreeFailures; over >= 0 {
			delay = base
			for i := 0; i < over && delay < t.o.AccountMaxDelay; i++ {
				delay *= 2
			}
			delay = min(delay, t.o.AccountMaxDelay)
		}
	}
	return time.Time{}, delay, added
}

func hasCred(fs []failure, cred credID) bool {
	for _, f := range fs {
		if f.cred == cred {
			return true
		}
	}
	return false
}

// abort takes back the entry begin added for an attempt that ended without
// a verdict (cancelled, or a database error).
func (t *throttle) abort(ip netip.Prefix, cred credID, added bool) {
	if !added {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rec := t.ips[ip]; rec != nil {
		out := rec.fails[:0]
		for _, f := range rec.fails {
			if f.cred != cred {
				out = append(out, f)
			}
		}
		rec.fails = out
	}
}

// throttledLogged marks ip's current episode as logged and reports whether
// it already was, so that a refused attacker costs one Warn line per episode.
func (t *throttle) throttledLogged(ip netip.Prefix) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.ips[ip]
	if rec == nil {
		return false
	}
	was := rec.warned
	rec.warned = true
	return was
}

// fail records a failed credential; a credential that already failed within
// the window (a client retrying a stale password) is not counted again. It
// returns the number of distinct failures now counted for ip.
func (t *throttle) fail(now time.Time, ip netip.Prefix, account string, cred credID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := failure{at: now, account: account, ip: ip, cred: cred}
	if t.o.IPMaxFailures > 0 && t.o.IPWindow > 0 {
		rec := t.ips[ip]
		if rec == nil {
			rec = &ipRecord{}
			t.ips[ip] = rec
		}
		rec.fails = addFailure(prune(rec.fails, now.Add(-t.o.IPWindow)), f)
	}
	if t.o.AccountDelayBase > 0 && t.o.AccountWindow > 0 {
		t.accounts[account] = addFailure(prune(t.accounts[account], now.Add(-t.o.AccountWindow)), f)
	}
	if rec := t.ips[ip]; rec != nil {
		return len(rec.fails)
	}
	return 0
}

func addFailure(fs []failure, f failure) []failure {
	for _, g := range fs {
		if g.cred == f.cred {
			return fs
		}
	}
	if len(fs) >= maxFailuresPerKey {
		fs = append(fs[:0], fs[1:]...)
	}
	return append(fs, f)
}

// success forgets the failures of account from ip (the user fixed a typo or
// a stale password), both in ip's count and in the account's.
func (t *throttle) success(ip netip.Prefix, account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rec := t.ips[ip]; rec != nil {
		rec.fails = removeFailures(rec.fails, ip, account)
		if len(rec.fails) == 0 {
			delete(t.ips, ip)
		}
	}
	if fs := removeFailures(t.accounts[account], ip, account); len(fs) > 0 {
		t.accounts[account] = fs
	} else {
		delete(t.accounts, account)
	}
}

func removeFailures(fs []failure, ip netip.Prefix, account string) []failure {
	out := fs[:0]
	for _, f := range fs {
		if f.ip != ip || f.account != account {
			out = append(out, f)
		}
	}
	return out
}

// sweep drops expired records every sweepInterval, and arbitrary ones when a
// map is still over maxTrackedKeys (an attack spread over more keys than we
// remember gets less throttling, never more memory).
func (t *throttle) sweep(now time.Time) {
	if now.Sub(t.lastSweep) < sweepInterval && len(t.ips) <= maxTrackedKeys && len(t.accounts) <= maxTrackedKeys {
		return
	}
	t.lastSweep = now
	for k, rec := range t.ips {
		if rec.fails = prune(rec.fails, now.Add(-t.o.IPWindow)); len(rec.fails) == 0 {
			delete(t.ips, k)
		}
	}
	for k, fs := range t.accounts {
		if fs = prune(fs, now.Add(-t.o.AccountWindow)); len(fs) == 0 {
			delete(t.accounts, k)
		} else {
			t.accounts[k] = fs
		}
	}
	for k := range t.ips {
		if len(t.ips) <= maxTrackedKeys*9/10 {
			break
		}
		delete(t.ips, k)
	}
	for k := range t.accounts {
		if len(t.accounts) <= maxTrackedKeys*9/10 {
			break
		}
		delete(t.accounts, k)
	}
}
