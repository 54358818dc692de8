package auth

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// throttler keeps the counters of doc.go's "Throttling": *throttle in this
// process's memory, *sharedThrottle in PostgreSQL for several nodes.
type throttler interface {
	begin(now time.Time, ip netip.Prefix, account string, cred credID, trusted bool) admission
	abort(ip netip.Prefix, account string, cred credID, a admission)
	ipLogged(ip netip.Prefix) bool
	accountLogged(account string) bool
	fail(now time.Time, ip netip.Prefix, account string, cred credID, trusted bool) (ipFails, accountFails int)
	success(now time.Time, ip netip.Prefix, account string, trusted bool) (save bool)
	loadKnown(account string, ip netip.Prefix, last time.Time)
	knownOn() bool
}

// throttleTimeout bounds one shared throttle transaction.
const throttleTimeout = 10 * time.Second

// sharedThrottle keeps the throttling records in the auth_throttle table,
// one row per address key and per account key, so that every node counts
// the same failures. Each call runs in one transaction that takes advisory
// locks on its keys (address before account, so two calls never wait on
// each other in a cycle), loads the rows into a scratch throttle, runs the
// same code as a single process, and writes back what changed. Known
// addresses come from known_addresses (written by every node) and, for
// second-factor keys, from the account row. Rows past their expiry are
// deleted every sweepInterval by whichever node sweeps, and at most
// 2×maxTrackedKeys rows are kept (the soonest to expire go first).
type sharedThrottle struct {
	db  *sql.DB
	o   Options
	log *slog.Logger

	mu        sync.Mutex
	lastSweep time.Time
}

func newSharedThrottle(db *sql.DB, o Options) *sharedThrottle {
	o.IPMaxFailures = min(o.IPMaxFailures, maxFailuresPerKey)
	o.AccountMaxFailures = min(o.AccountMaxFailures, maxFailuresPerKey)
	return &sharedThrottle{db: db, o: o, log: o.Logger}
}

func (s *sharedThrottle) scratch() *throttle { return newThrottle(s.o) }

func (s *sharedThrottle) knownOn() bool { return s.scratch().knownOn() }

// loadKnown does nothing: known addresses are read from known_addresses
// at each check.
func (s *sharedThrottle) loadKnown(string, netip.Prefix, time.Time) {}

// wire forms of the records, stored as JSON.
type failureJSON struct {
	At      time.Time    `json:"at"`
	Account string       `json:"a"`
	IP      netip.Prefix `json:"ip"`
	Cred    []byte       `json:"c"`
}

type knownJSON struct {
	IP    netip.Prefix `json:"ip"`
	Last  time.Time    `json:"last"`
	Saved time.Time    `json:"saved"`
}

type recordJSON struct {
	Fails  []failureJSON `json:"f,omitempty"`
	Next   time.Time     `json:"next,omitzero"`
	Warned bool          `json:"w,omitempty"`
	Known  []knownJSON   `json:"k,omitempty"`
}

func toFailuresJSON(fs []failure) []failureJSON {
	out := make([]failureJSON, len(fs))
	for i, f := range fs {
		out[i] = failureJSON{At: f.at, Account: f.account, IP: f.ip, Cred: append([]byte(nil), f.cred[:]...)}
	}
	return out
}

func fromFailuresJSON(fs []failureJSON) []failure {
	out := make([]failure, 0, len(fs))
	for _, f := range fs {
		var c credID
		copy(c[:], f.Cred)
		out = append(out, failure{at: f.At, account: f.Account, ip: f.IP, cred: c})
	}
	return out
}

const (
	ipKeyPrefix      = "ip:"
	accountKeyPrefix = "ac:"
)

// run applies fn to the records of ip and account (either may be skipped)
// in one transaction.
func (s *sharedThrottle) run(now time.Time, ip netip.Prefix, account string, withIP, withAccount bool, fn func(t *throttle)) error {
	ctx, cancel := context.WithTimeout(context.Background(), throttleTimeout)
	defer cancel()
	s.sweep(ctx, now)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ipk, ack := dbKey(ipKeyPrefix, ip.String()), dbKey(accountKeyPrefix, account)
	var keys []string
	if withIP {
		keys = append(keys, ipk)
	}
	if withAccount {
		keys = append(keys, ack)
	}
	old := map[string][]byte{}
	if len(keys) > 0 {
		// One statement locks both keys, address first; one reads both rows.
		q := `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))` + strings.Repeat(`, pg_advisory_xact_lock(hashtextextended(?, 0))`, len(keys)-1)
		args := make([]any, len(keys))
		for i, k := range keys {
			args[i] = k
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT key, record FROM auth_throttle WHERE key IN (?`+strings.Repeat(`, ?`, len(keys)-1)+`)`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k string
			var rec []byte
			if err := rows.Scan(&k, &rec); err != nil {
				rows.Close()
				return err
			}
			old[k] = rec
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	t := s.scratch()
	t.lastSweep = now.Add(time.Hour) // the table is swept, not the scratch maps
	if rec := old[ipk]; withIP && rec != nil {
		var r recordJSON
		if err := json.Unmarshal(rec, &r); err == nil {
			t.ips[ip] = &ipRecord{fails: fromFailuresJSON(r.Fails), warned: r.Warned}
		}
	}
	if withAccount {
		if rec := old[ack]; rec != nil {
			var r recordJSON
			if err := json.Unmarshal(rec, &r); err == nil {
				t.accounts[account] = &accountRecord{fails: fromFailuresJSON(r.Fails), next: r.Next, warned: r.Warned}
				for _, k := range r.Known {
					t.remember(account, k.IP, k.Last, k.Saved)
				}
			}
		}
		if t.knownOn() && isPasswordKey(account) {
			rows, err := tx.QueryContext(ctx, `SELECT k.prefix, k.last_login FROM known_addresses k JOIN users u ON u.id = k.user_id WHERE u.address = ?`, account)
			if err != nil {
				return err
			}
			for rows.Next() {
				var prefix string
				var last int64
				if err := rows.Scan(&prefix, &last); err != nil {
					rows.Close()
					return err
				}
				if p, err := netip.ParsePrefix(prefix); err == nil && p == ipKey(p.Addr()) {
					t.remember(account, p, time.Unix(last, 0), time.Unix(last, 0))
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
	}

	fn(t)

	put := func(k string, r recordJSON, expires time.Time, empty bool) error {
		if empty {
			if old[k] != nil {
				_, err := tx.ExecContext(ctx, `DELETE FROM auth_throttle WHERE key = ?`, k)
				return err
			}
			return nil
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if bytes.Equal(b, old[k]) {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO auth_throttle (key, record, expires) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET record = excluded.record, expires = excluded.expires`, k, b, expires.UnixNano())
		return err
	}
	if withIP {
		rec := t.ips[ip]
		var r recordJSON
		var exp time.Time
		if rec != nil {
			r = recordJSON{Fails: toFailuresJSON(rec.fails), Warned: rec.warned}
			if n := len(rec.fails); n > 0 {
				exp = rec.fails[n-1].at.Add(s.o.IPWindow)
			}
		}
		if err := put(ipk, r, exp, rec == nil || len(rec.fails) == 0); err != nil {
			return err
		}
	}
	if withAccount {
		rec := t.accounts[account]
		var r recordJSON
		var exp time.Time
		if rec != nil {
			r = recordJSON{Fails: toFailuresJSON(rec.fails), Next: rec.next, Warned: rec.warned}
			if n := len(rec.fails); n > 0 {
				exp = rec.fails[n-1].at.Add(s.o.AccountWindow)
			}
			if rec.next.After(exp) {
				exp = rec.next
			}
		}
		// Known addresses of second-factor keys live only here; those of
		// password keys are in known_addresses already.
		if !isPasswordKey(account) {
			for _, k := range t.known[account] {
				r.Known = append(r.Known, knownJSON{IP: k.ip, Last: k.last, Saved: k.saved})
				if e := k.last.Add(s.o.KnownAddressTTL); e.After(exp) {
					exp = e
				}
			}
		}
		empty := len(r.Fails) == 0 && len(r.Known) == 0 && !now.Before(r.Next)
		if err := put(ack, r, exp, empty); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// isPasswordKey reports whether a throttling key is an account address
// (password logins) rather than a second-factor key.
func isPasswordKey(key string) bool { return !strings.HasSuffix(key, secondFactorKey) }

// dbKey is the auth_throttle key of an address or account key: PostgreSQL
// text holds no NUL, which second-factor keys contain.
func dbKey(prefix, key string) string { return prefix + strings.ReplaceAll(key, "\x00", " ") }

// sweep deletes expired rows, and the soonest to expire beyond the bound,
// once per sweepInterval per process.
func (s *sharedThrottle) sweep(ctx context.Context, now time.Time) {
	s.mu.Lock()
	if now.Sub(s.lastSweep) < sweepInterval && !s.lastSweep.After(now) {
		s.mu.Unlock()
		return
	}
	s.lastSweep = now
	s.mu.Unlock()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM auth_throttle WHERE expires <= ?`, now.UnixNano()); err != nil {
		s.log.Error("auth throttle sweep", "err", err)
		return
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM auth_throttle WHERE key IN (SELECT key FROM auth_throttle ORDER BY expires
		LIMIT greatest((SELECT count(*) FROM auth_throttle) - ?, 0))`, 2*maxTrackedKeys); err != nil {
		s.log.Error("auth throttle sweep", "err", err)
	}
}

func (s *sharedThrottle) failed(err error) {
	s.log.Error("auth throttle: database", "err", err)
}

func (s *sharedThrottle) begin(now time.Time, ip netip.Prefix, account string, cred credID, trusted bool) (a admission) {
	err := s.run(now, ip, account, !trusted, true, func(t *throttle) { a = t.begin(now, ip, account, cred, trusted) })
	if err != nil {
		// Without the counters no check is made: a temporary failure.
		s.failed(err)
		return admission{accountUntil: now.Add(s.o.AccountInterval)}
	}
	return a
}

func (s *sharedThrottle) abort(ip netip.Prefix, account string, cred credID, a admission) {
	if err := s.run(s.o.Now(), ip, account, a.ipAdded, a.accountAdded, func(t *throttle) { t.abort(ip, account, cred, a) }); err != nil {
		s.failed(err)
	}
}

func (s *sharedThrottle) ipLogged(ip netip.Prefix) (was bool) {
	if err := s.run(s.o.Now(), ip, "", true, false, func(t *throttle) { was = t.ipLogged(ip) }); err != nil {
		s.failed(err)
	}
	return was
}

func (s *sharedThrottle) accountLogged(account string) (was bool) {
	if err := s.run(s.o.Now(), netip.Prefix{}, account, false, true, func(t *throttle) { was = t.accountLogged(account) }); err != nil {
		s.failed(err)
	}
	return was
}

func (s *sharedThrottle) fail(now time.Time, ip netip.Prefix, account string, cred credID, trusted bool) (ipFails, accountFails int) {
	if err := s.run(now, ip, account, !trusted, true, func(t *throttle) { ipFails, accountFails = t.fail(now, ip, account, cred, trusted) }); err != nil {
		s.failed(err)
	}
	return ipFails, accountFails
}

func (s *sharedThrottle) success(now time.Time, ip netip.Prefix, account string, trusted bool) (save bool) {
	if err := s.run(now, ip, account, true, true, func(t *throttle) { save = t.success(now, ip, account, trusted) }); err != nil {
		s.failed(err)
	}
	return save
}
