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
	maxTrackedKeys     = 100_000 // per map: addresses, accounts
	maxFailuresPerKey  = 64      // remembered per address or account
	maxKnownPerAccount = 16      // known addresses kept per account (the most recent)
	maxKnown           = 100_000 // known (account, address) pairs in all
	sweepInterval      = time.Minute
	// knownRefresh: a known address's last login is written to the
	// database again only when the stored one is older than this, so a
	// client logging in on every connection costs no write per login.
	knownRefresh = 24 * time.Hour
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

// accountRecord is one account's recent failures and, while they are at
// least AccountMaxFailures, its check slot.
type accountRecord struct {
	fails []failure
	// next is when the next password check from an address that is not
	// known to the account may start.
	next   time.Time
	warned bool
}

// knownAddr is an address the account logged in from.
type knownAddr struct {
	ip    netip.Prefix
	last  time.Time // last successful login
	saved time.Time // last_login as written to the database
}

// throttle holds the counters of doc.go's "Throttling" section. All of it
// is in memory except the known addresses, which DB also keeps in
// known_addresses.
type throttle struct {
	mu        sync.Mutex
	o         Options
	ips       map[netip.Prefix]*ipRecord
	accounts  map[string]*accountRecord
	known     map[string][]knownAddr
	nKnown    int
	lastSweep time.Time
}

func newThrottle(o Options) *throttle {
	o.IPMaxFailures = min(o.IPMaxFailures, maxFailuresPerKey)
	o.AccountMaxFailures = min(o.AccountMaxFailures, maxFailuresPerKey)
	return &throttle{
		o:        o,
		ips:      map[netip.Prefix]*ipRecord{},
		accounts: map[string]*accountRecord{},
		known:    map[string][]knownAddr{},
	}
}

func (t *throttle) ipOn() bool { return t.o.IPMaxFailures > 0 && t.o.IPWindow > 0 }
func (t *throttle) accountOn() bool {
	return t.o.AccountMaxFailures > 0 && t.o.AccountWindow > 0 && t.o.AccountInterval > 0
}
func (t *throttle) knownOn() bool { return t.o.KnownAddressTTL > 0 }

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

// admission is begin's verdict on one attempt.
type admission struct {
	// ipUntil is set when the address is locked out, accountUntil when the
	// account's check slot is taken: the attempt is refused.
	ipUntil, accountUntil time.Time
	// ipAdded and accountAdded report whether begin counted the attempt as
	// a new failure in that counter (for abort).
	ipAdded, accountAdded bool
	// exempt: the address is known to the account, so the per-account cap
	// did not apply.
	exempt bool
}

func (a admission) refused() bool { return !a.ipUntil.IsZero() || !a.accountUntil.IsZero() }

// begin decides whether an attempt for account from ip may check its
// password. It looks only at the counters, never at the password, so a
// refusal says nothing about whether the password was right. Unless it
// refuses, it counts the attempt as a failure of cred right away, so that
// guesses sent in parallel cannot all pass before any of them has failed:
// success forgets the entry again, abort takes it back when the attempt
// ends without an answer. trusted addresses skip the per-address lockout.
func (t *throttle) begin(now time.Time, ip netip.Prefix, account string, cred credID, trusted bool) admission {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep(now)
	var a admission

	var ipRec *ipRecord
	if t.ipOn() && !trusted {
		ipRec = t.ips[ip]
		if ipRec == nil {
			ipRec = &ipRecord{}
			t.ips[ip] = ipRec
		}
		ipRec.fails = prune(ipRec.fails, now.Add(-t.o.IPWindow))
		n := t.o.IPMaxFailures
		if len(ipRec.fails) >= n && !hasCred(ipRec.fails, cred) {
			a.ipUntil = ipRec.fails[len(ipRec.fails)-n].at.Add(t.o.IPWindow)
			return a
		}
		ipRec.warned = ipRec.warned && len(ipRec.fails) >= n
	}

	var acRec *accountRecord
	if t.accountOn() {
		acRec = t.accounts[account]
		if acRec == nil {
			acRec = &accountRecord{}
			t.accounts[account] = acRec
		}
		acRec.fails = prune(acRec.fails, now.Add(-t.o.AccountWindow))
		guarded := len(acRec.fails) >= t.o.AccountMaxFailures
		acRec.warned = acRec.warned && guarded
		a.exempt = !trusted && t.isKnown(now, account, ip)
		if guarded && !a.exempt {
			if now.Before(acRec.next) {
				a.accountUntil = acRec.next
				return a
			}
			acRec.next = now.Add(t.o.AccountInterval)
		}
	}

	f := failure{at: now, account: account, ip: ip, cred: cred}
	if ipRec != nil {
		a.ipAdded = !hasCred(ipRec.fails, cred)
		ipRec.fails = addFailure(ipRec.fails, f)
	}
	if acRec != nil {
		a.accountAdded = !hasCred(acRec.fails, cred)
		acRec.fails = addFailure(acRec.fails, f)
	}
	return a
}

func hasCred(fs []failure, cred credID) bool {
	for _, f := range fs {
		if f.cred == cred {
			return true
		}
	}
	return false
}

func removeCred(fs []failure, cred credID) []failure {
	out := fs[:0]
	for _, f := range fs {
		if f.cred != cred {
			out = append(out, f)
		}
	}
	return out
}

// abort takes back what begin counted for an attempt that ended without a
// verdict (cancelled, or a database error). A check slot it took stays
// taken.
func (t *throttle) abort(ip netip.Prefix, account string, cred credID, a admission) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rec := t.ips[ip]; rec != nil && a.ipAdded {
		rec.fails = removeCred(rec.fails, cred)
	}
	if rec := t.accounts[account]; rec != nil && a.accountAdded {
		rec.fails = removeCred(rec.fails, cred)
	}
}

// ipLogged marks ip's current episode as logged and reports whether it
// already was, so that a refused attacker costs one Warn line per episode.
func (t *throttle) ipLogged(ip netip.Prefix) bool {
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

// accountLogged is ipLogged for an account's episode.
func (t *throttle) accountLogged(account string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.accounts[account]
	if rec == nil {
		return false
	}
	was := rec.warned
	rec.warned = true
	return was
}

// fail records a failed credential (begin normally has already); a
// credential that already failed within the window (a client retrying a
// stale password) is not counted again. It returns the number of distinct
// failures now counted for ip and for account.
func (t *throttle) fail(now time.Time, ip netip.Prefix, account string, cred credID, trusted bool) (ipFails, accountFails int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := failure{at: now, account: account, ip: ip, cred: cred}
	if t.ipOn() && !trusted {
		rec := t.ips[ip]
		if rec == nil {
			rec = &ipRecord{}
			t.ips[ip] = rec
		}
		rec.fails = addFailure(prune(rec.fails, now.Add(-t.o.IPWindow)), f)
		ipFails = len(rec.fails)
	}
	if t.accountOn() {
		rec := t.accounts[account]
		if rec == nil {
			rec = &accountRecord{}
			t.accounts[account] = rec
		}
		rec.fails = addFailure(prune(rec.fails, now.Add(-t.o.AccountWindow)), f)
		accountFails = len(rec.fails)
	}
	return ipFails, accountFails
}

func addFailure(fs []failure, f failure) []failure {
	if hasCred(fs, f.cred) {
		return fs
	}
	if len(fs) >= maxFailuresPerKey {
		fs = append(fs[:0], fs[1:]...)
	}
	return append(fs, f)
}

// success forgets the failures of account from ip (the user fixed a typo or
// a stale password), in both counters, and makes ip known to the account
// unless it is trusted (a proxy speaks for many clients). save reports
// whether the known address should be written to the database: it is new,
// or its stored last login is older than knownRefresh.
func (t *throttle) success(now time.Time, ip netip.Prefix, account string, trusted bool) (save bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rec := t.ips[ip]; rec != nil {
		rec.fails = removeFailures(rec.fails, ip, account)
		if len(rec.fails) == 0 {
			delete(t.ips, ip)
		}
	}
	if rec := t.accounts[account]; rec != nil {
		rec.fails = removeFailures(rec.fails, ip, account)
		if len(rec.fails) == 0 && !now.Before(rec.next) {
			delete(t.accounts, account)
		}
	}
	if trusted || !ip.IsValid() || !t.knownOn() {
		return false
	}
	return t.remember(account, ip, now, time.Time{})
}

// remember records a successful login of account from ip at last; saved is
// the last_login the database holds (zero if none). It reports whether the
// database needs writing, and bounds what is kept.
func (t *throttle) remember(account string, ip netip.Prefix, last, saved time.Time) (save bool) {
	ks := t.known[account]
	for i := range ks {
		if ks[i].ip != ip {
			continue
		}
		if last.After(ks[i].last) {
			ks[i].last = last
		}
		if saved.After(ks[i].saved) {
			ks[i].saved = saved
		}
		if last.Sub(ks[i].saved) < knownRefresh {
			return false
		}
		ks[i].saved = last
		return true
	}
	if len(ks) >= maxKnownPerAccount {
		oldest := 0
		for i := range ks {
			if ks[i].last.Before(ks[oldest].last) {
				oldest = i
			}
		}
		ks = append(ks[:oldest], ks[oldest+1:]...)
		t.nKnown--
	}
	if saved.IsZero() {
		saved = last
		save = true
	}
	t.known[account] = append(ks, knownAddr{ip: ip, last: last, saved: saved})
	t.nKnown++
	if t.nKnown > maxKnown {
		t.trimKnown(last)
	}
	return save
}

// isKnown reports whether account logged in from ip within KnownAddressTTL.
func (t *throttle) isKnown(now time.Time, account string, ip netip.Prefix) bool {
	if !t.knownOn() || !ip.IsValid() {
		return false
	}
	for _, k := range t.known[account] {
		if k.ip == ip {
			return now.Sub(k.last) < t.o.KnownAddressTTL
		}
	}
	return false
}

// loadKnown adds an address read from the database at start.
func (t *throttle) loadKnown(account string, ip netip.Prefix, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.remember(account, ip, last, last)
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
	for k, rec := range t.accounts {
		if rec.fails = prune(rec.fails, now.Add(-t.o.AccountWindow)); len(rec.fails) == 0 && !now.Before(rec.next) {
			delete(t.accounts, k)
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
	t.trimKnown(now)
}

// trimKnown drops known addresses past KnownAddressTTL, then, while more
// than maxKnown remain, the oldest of arbitrary accounts. Only successful
// logins add entries, so an attacker without passwords cannot fill it.
func (t *throttle) trimKnown(now time.Time) {
	for acct, ks := range t.known {
		out := ks[:0]
		for _, k := range ks {
			if now.Sub(k.last) < t.o.KnownAddressTTL {
				out = append(out, k)
			}
		}
		t.nKnown -= len(ks) - len(out)
		if len(out) == 0 {
			delete(t.known, acct)
		} else {
			t.known[acct] = out
		}
	}
	for acct, ks := range t.known {
		if t.nKnown <= maxKnown*9/10 {
			break
		}
		t.nKnown -= len(ks)
		delete(t.known, acct)
	}
}
