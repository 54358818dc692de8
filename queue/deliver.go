package queue

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/smtpclient"
)

const kindDSN = "dsn"

// errLeaseLost: this node could not renew its claims for half a lease,
// so another node may hold the job; nothing more is sent for it.
var errLeaseLost = errors.New("queue: claim on the message may be lost")

// Backoff schedule: 5 m, 10 m, 20 m, … doubling, capped at 4 h, ±10 %.
const (
	backoffBase = 5 * time.Minute
	backoffMax  = 4 * time.Hour
	// tlsFallbackWindow: after STARTTLS failed with a host, attempts within
	// this window talk to it in plaintext (see the package doc).
	tlsFallbackWindow = 24 * time.Hour
	// maxConnectTries bounds connection attempts per delivery attempt
	// (over all MX hosts and their addresses).
	maxConnectTries = 10
)

// backoff returns the wait after the given number of attempts (≥ 1).
func backoff(attempts int) time.Duration {
	d := backoffBase
	for i := 1; i < attempts && d < backoffMax; i++ {
		d *= 2
	}
	d = min(d, backoffMax)
	jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(d))
	return d + jitter
}

// job is one delivery attempt: the due recipients of one message at one
// destination domain.
type job struct {
	id     string
	domain string
}

// Start starts the scheduler. Deliveries run until Shutdown.
func (q *Queue) Start() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running || q.closed {
		return
	}
	q.running = true
	ctx, cancel := context.WithCancel(context.Background())
	q.stop = cancel
	q.sched.Add(1)
	go q.scheduler(ctx)
	if pg, ok := q.st.(pgBackend); ok {
		pg.mu.Lock()
		pg.renewed = time.Now() // claims taken from now on are fresh
		pg.mu.Unlock()
		q.sched.Add(1)
		go func() {
			defer q.sched.Done()
			pg.renewLoop(ctx)
		}()
	}
}

// Shutdown stops the scheduler, interrupts attempts in flight (their
// recipients stay queued and are retried at the next start) and waits for
// the workers, or until ctx is done.
func (q *Queue) Shutdown(ctx context.Context) error {
	q.mu.Lock()
	if !q.running {
		q.mu.Unlock()
		return nil
	}
	q.running = false
	q.stop()
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		q.sched.Wait()
		q.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wake asks the scheduler to look at the queue now.
func (q *Queue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Kick makes the scheduler look at the queue now; tests call it after
// moving the clock.
func (q *Queue) Kick() { q.wake() }

func (q *Queue) scheduler(ctx context.Context) {
	defer q.sched.Done()
	// The full housekeeping scan (DSNs, delay warnings, finished messages)
	// runs at start and every PollInterval; after each attempt the worker
	// does the same for its own message, so a wake-up only schedules.
	sweep := true
	lastSweep := time.Now()
	for {
		wait := q.opts.PollInterval
		func() {
			defer func() {
				if p := recover(); p != nil {
					q.log.Error("queue: scheduler panic", "panic", p, "stack", string(debug.Stack()))
				}
			}()
			if sweep {
				q.housekeeping(ctx)
				lastSweep = time.Now()
			}
			if next, ok := q.schedule(ctx); ok {
				if d := next.Sub(q.opts.Now()); d < wait {
					wait = max(d, 10*time.Millisecond)
				}
			}
		}()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-q.kick:
			t.Stop()
			sweep = time.Since(lastSweep) >= q.opts.PollInterval
		case <-t.C:
			sweep = true
		}
	}
}

// scheduleBatch bounds the due rows one scheduling pass reads.
const scheduleBatch = 1000

// schedule starts workers for due jobs within the concurrency limits and
// returns the earliest future due time. It reads due recipients in
// next-attempt order through the (state, next_attempt) index, so a pass
// costs the same whatever the backlog.
func (q *Queue) schedule(ctx context.Context) (time.Time, bool) {
	now := q.opts.Now().UnixNano()
	q.mu.Lock()
	var saturated []string
	for d, n := range q.perDom {
		if n >= q.opts.MaxPerDomain {
			saturated = append(saturated, d)
		}
	}
	// Domains with a connection waiting for their next message are left
	// to it: claiming their jobs here would only take them from it.
	for d, n := range q.idle {
		if n > 0 && q.perDom[d] < q.opts.MaxPerDomain {
			saturated = append(saturated, d)
		}
	}
	free := q.opts.MaxConcurrent - q.total
	q.mu.Unlock()
	var jobs []job
	var err error
	if free > 0 {
		jobs, err = q.st.due(ctx, now, "", saturated, free)
	}
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("queue: scan", "err", err)
		}
		return time.Time{}, false
	}
	for _, j := range jobs {
		q.mu.Lock()
		start := false
		switch {
		case !q.running || q.total >= q.opts.MaxConcurrent:
		case q.inflight[j] || q.perDom[j.domain] >= q.opts.MaxPerDomain || q.idle[j.domain] > 0:
			// An idle connection to the domain takes it (session).
		default:
			q.inflight[j] = true
			q.perDom[j.domain]++
			q.total++
			q.workers.Add(1)
			start = true
			go q.work(ctx, j)
		}
		q.mu.Unlock()
		if !start {
			q.st.release(j)
		}
	}
	next, ok := q.st.nextDue(ctx, now)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, next), true
}

func (q *Queue) work(ctx context.Context, j job) {
	defer q.workers.Done()
	defer func() {
		if p := recover(); p != nil {
			q.log.Error("queue: delivery panic", "queueid", j.id, "domain", j.domain, "panic", p, "stack", string(debug.Stack()))
		}
		q.mu.Lock()
		delete(q.inflight, j)
		q.perDom[j.domain]--
		if q.perDom[j.domain] == 0 {
			delete(q.perDom, j.domain)
		}
		q.total--
		q.mu.Unlock()
		q.st.release(j)
		q.wake()
	}()
	p := q.prepare(ctx, j)
	if p == nil {
		return
	}
	res := q.deliverDomain(ctx, p)
	if p.concluded {
		return
	}
	if failed := q.conclude(ctx, p, res); failed {
		q.followUp(ctx, j.id)
	}
}

// followUp reports failures and drops the message if that was all, now
// rather than at the next sweep.
func (q *Queue) followUp(ctx context.Context, id string) {
	q.bounceMessage(ctx, id)
	q.finishMessage(ctx, id)
}

// msgInfo is what an attempt needs of a message.
type msgInfo struct {
	id       string
	from     string
	size     int64
	created  time.Time
	eightbit bool
	smtputf8 bool
	kind     string
	dkim     string
	warned   bool   // the delay warning went out
	mailFrom string // MAIL FROM for remote attempts: from, or its SRS form (srs.go)
}

// result is the outcome for one recipient.
type result struct {
	rcpt   string
	reply  smtpclient.Reply
	remote string
	// interrupted: the attempt was cut short by Shutdown; nothing is
	// recorded against the recipient.
	interrupted bool
	// recorded: already written to the database by the session.
	recorded bool
}

func (r result) delivered() bool { return r.reply.Code >= 200 && r.reply.Code < 300 }

// prepared is one attempt: a message's due recipients at one domain, with
// their next attempt time already saved.
type prepared struct {
	j     job
	m     *msgInfo
	rcpts []string
	prev  []attemptRcpt // the recipients as they were before this attempt
	next  time.Time
	now   time.Time
	start time.Time
	// concluded: the session already concluded it (before reusing its
	// connection for other messages).
	concluded bool
	// busy: every server was at its connection limit, none was tried;
	// the attempt is made again after busy and not counted (hosts.go).
	busy time.Duration
}

// prepare loads a job and saves its recipients' next attempt time before
// anything is tried, so a crash in the middle (or a message that crashes
// us) does not retry in a tight loop. nil: nothing is due.
func (q *Queue) prepare(ctx context.Context, j job) *prepared {
	m, err := q.loadMsg(ctx, j.id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
			q.log.Error("queue: load", "queueid", j.id, "err", err)
		}
		return nil
	}
	m.mailFrom = q.mailFrom(ctx, m)
	now := q.opts.Now()
	p := &prepared{j: j, m: m, now: now}
	rs, next, err := q.st.startAttempt(ctx, j, now.UnixNano(), func(attempts int) int64 {
		return now.Add(backoff(attempts + 1)).UnixNano()
	})
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("queue: schedule", "queueid", j.id, "err", err)
		}
		return nil
	}
	if len(rs) == 0 {
		return nil
	}
	p.prev = rs
	for _, r := range rs {
		p.rcpts = append(p.rcpts, r.rcpt)
	}
	p.next = time.Unix(0, next)
	p.start = time.Now()
	return p
}

// conclude records what the session did not, logs one line per
// recipient, puts recipients cut off by Shutdown back as they were, and
// reports whether a recipient failed for good (and needs a DSN).
func (q *Queue) conclude(ctx context.Context, p *prepared, res []result) (failed bool) {
	dur := time.Since(p.start)
	if ctx.Err() != nil {
		// Shutdown: whatever the remote did not answer for good stays as
		// it was.
		for i := range res {
			if res[i].reply.Code == 0 || (!res[i].delivered() && !res[i].reply.Permanent()) {
				res[i].interrupted = true
			}
		}
	}
	var rest []result
	for _, r := range res {
		if !r.recorded {
			rest = append(rest, r)
		}
	}
	if len(rest) > 0 {
		q.record(p.m, rest)
	}
	if p.busy > 0 && ctx.Err() == nil {
		q.rescheduleBusy(ctx, p)
	}
	var interrupted []string
	for _, r := range res {
		if r.interrupted {
			interrupted = append(interrupted, r.rcpt)
			continue
		}
		q.logResult(p.m, r, dur, p.next)
		if r.reply.Permanent() || (!r.delivered() && p.now.Sub(p.m.created) >= q.opts.Expiry) {
			failed = true
		}
	}
	if len(interrupted) > 0 {
		// ctx is cancelled; use a short detached one.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		var back []attemptRcpt
		for _, r := range p.prev {
			if slices.Contains(interrupted, r.rcpt) {
				back = append(back, r)
			}
		}
		if err := q.st.restore(dctx, p.j.id, back); err != nil {
			q.log.Error("queue: restore interrupted recipients", "queueid", p.j.id, "err", err)
		}
		cancel()
		q.log.Info("interrupted", "queueid", p.j.id, "domain", p.j.domain, "rcpts", len(interrupted))
	}
	return failed
}

// rescheduleBusy makes an attempt that found every server at its
// connection limit again after p.busy, and does not count it: the backoff
// is for the remote's failures, not for our own limits.
func (q *Queue) rescheduleBusy(ctx context.Context, p *prepared) {
	next := q.opts.Now().Add(p.busy)
	if err := q.st.reschedule(ctx, p.j.id, p.rcpts, next.UnixNano()); err != nil {
		q.log.Error("queue: reschedule", "queueid", p.j.id, "err", err)
		return
	}
	p.next = next
}

func (q *Queue) logResult(m *msgInfo, r result, dur time.Duration, next time.Time) {
	attrs := []any{"queueid", m.id, "rcpt", r.rcpt, "remote", r.remote, "reply", r.reply.String(), "dur", dur.Round(time.Millisecond)}
	outcome := "deferred"
	switch {
	case r.delivered():
		outcome = "delivered"
		q.log.Info("delivered", append(attrs, "result", "delivered")...)
	case r.reply.Permanent():
		outcome = "bounced"
		q.log.Info("bounced", append(attrs, "result", "failed")...)
	default:
		q.log.Info("deferred", append(attrs, "result", "deferred", "next", next.UTC().Format(time.RFC3339))...)
	}
	if q.opts.OnAttempt != nil {
		q.opts.OnAttempt(outcome)
	}
}

func (q *Queue) loadMsg(ctx context.Context, id string) (*msgInfo, error) {
	return q.st.loadMsg(ctx, id)
}

func (q *Queue) updateRcpts(ctx context.Context, id string, rcpts []string, stmt string, args ...any) error {
	tx, err := q.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, r := range rcpts {
		if _, err := tx.ExecContext(ctx, stmt, append(append([]any{}, args...), id, r)...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// saveAttempt saves the next attempt time of rcpts before an attempt, in a
// commit that is not fsync'd (synchronous=NORMAL for this transaction
// only): it only guards against retrying in a tight loop a message that
// makes the process crash, and a process crash (kill -9, a fatal error)
// keeps a NORMAL commit, which is in the operating system's hands. Power
// loss may undo it, and then the attempt is simply made again at start-up,
// as if it had never begun; the next fsync'd commit of the queue makes it
// durable anyway. One fsync less per attempt.
func (q *Queue) saveAttempt(ctx context.Context, id string, rcpts []string, next, now time.Time) error {
	conn, err := q.db.Write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return err
	}
	// Whatever happens, the connection goes back FULL or not at all: every
	// other write of the queue must be durable on commit.
	defer func() {
		if _, err := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); err != nil {
			q.log.Error("queue: restore synchronous = FULL; dropping the connection", "err", err)
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, r := range rcpts {
		if _, err := tx.ExecContext(ctx, `UPDATE recipients SET attempts = attempts + 1, next_attempt = ?, last_attempt = ?
			WHERE message_id = ? AND rcpt = ?`, next.UnixNano(), now.UnixNano(), id, r); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// record stores results right after the remote's reply: delivered and
// permanently failed recipients leave the pending state; temporary
// failures stay pending (the next attempt time was saved before the
// attempt) unless the message has expired, which makes them fail.
func (q *Queue) record(m *msgInfo, results []result) {
	// Use a context that Shutdown does not cancel: a 250 we got must be
	// written down, or the message would go out twice.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	now := q.opts.Now()
	expired := now.Sub(m.created) >= q.opts.Expiry
	var rows []recordRow
	for _, r := range results {
		if r.interrupted {
			continue
		}
		state := StatePending
		reply := r.reply.String()
		switch {
		case r.delivered():
			state = StateDelivered
		case r.reply.Permanent():
			state = StateFailed
		case expired:
			state = StateFailed
			reply = fmt.Sprintf("%s (giving up after %s)", reply, q.opts.Expiry)
		}
		rows = append(rows, recordRow{rcpt: r.rcpt, state: string(state), reply: reply, remote: r.remote})
	}
	finished, err := q.st.record(ctx, m.id, rows)
	if err != nil {
		q.log.Error("queue: record results", "queueid", m.id, "err", err)
		return
	}
	if finished {
		q.log.Debug("finished", "queueid", m.id)
	}
}

// Local failure replies. They are stored and reported like remote replies.
var (
	replyNullMX      = smtpclient.Reply{Code: 556, Enhanced: "5.1.10", Text: "recipient domain does not accept mail (null MX, RFC 7505)"}
	replyNoDomain    = smtpclient.Reply{Code: 550, Enhanced: "5.1.2", Text: "recipient domain does not exist"}
	replyNoMailHost  = smtpclient.Reply{Code: 550, Enhanced: "5.1.2", Text: "recipient domain has no mail server"}
	replyDNSTemp     = smtpclient.Reply{Code: 451, Enhanced: "4.4.3", Text: "temporary DNS failure looking up the recipient domain"}
	replyNoConnect   = smtpclient.Reply{Code: 451, Enhanced: "4.4.1", Text: "could not connect to any mail server of the recipient domain"}
	replyTooBig      = smtpclient.Reply{Code: 552, Enhanced: "5.3.4", Text: "message too big for the recipient's server"}
	replyNeedUTF8    = smtpclient.Reply{Code: 553, Enhanced: "5.6.7", Text: "recipient's server does not support SMTPUTF8 addresses"}
	replyNeed8Bit    = smtpclient.Reply{Code: 554, Enhanced: "5.6.3", Text: "message has 8-bit content and the recipient's server does not support 8BITMIME"}
	replySpoolLost   = smtpclient.Reply{Code: 554, Enhanced: "5.3.0", Text: "message file missing from the queue"}
	replyLoop        = smtpclient.Reply{Code: 451, Enhanced: "4.4.6", Text: "mail for the recipient domain loops back to this server"}
	replyConnDropped = smtpclient.Reply{Code: 451, Enhanced: "4.4.2", Text: "connection lost during delivery"}
)

func allResults(rcpts []string, r smtpclient.Reply, remote string) []result {
	res := make([]result, len(rcpts))
	for i, rc := range rcpts {
		res[i] = result{rcpt: rc, reply: r, remote: remote}
	}
	return res
}

func interrupted(rcpts []string) []result {
	res := make([]result, len(rcpts))
	for i, rc := range rcpts {
		res[i] = result{rcpt: rc, interrupted: true}
	}
	return res
}

// target is one host to try, with its addresses resolved lazily.
type target struct {
	host     string
	implicit bool // no MX: the domain itself (RFC 5321 §5.1)
	addr     netip.Addr
}

// deliverDomain makes one attempt for p and returns one result per
// recipient; conclude records those the session did not.
func (q *Queue) deliverDomain(ctx context.Context, p *prepared) []result {
	m, domain, rcpts := p.m, p.j.domain, p.rcpts
	if b, err := q.st.body(ctx, m.id); err != nil {
		q.log.Error("queue: spool file missing", "queueid", m.id, "err", err)
		return allResults(rcpts, replySpoolLost, "")
	} else {
		b.Close()
	}
	local, err := q.isLocalDomain(ctx, domain)
	if err != nil {
		q.log.Error("queue: local domain check", "queueid", m.id, "domain", domain, "err", err)
		return allResults(rcpts, replyLocalTemp, "")
	}
	if local {
		return q.deliverLocalAttempt(ctx, p)
	}
	var targets []target
	if lit, ok := addressLiteral(domain); ok {
		targets = []target{{host: domain, addr: lit}}
	} else {
		if q.opts.Resolver == nil {
			return allResults(rcpts, replyDNSTemp, "")
		}
		mxs, err := q.opts.Resolver.LookupMX(ctx, domain)
		switch {
		case errors.Is(err, dns.ErrNotFound):
			return allResults(rcpts, replyNoDomain, "")
		case err != nil:
			q.log.Warn("queue: MX lookup", "queueid", m.id, "domain", domain, "err", err)
			return allResults(rcpts, replyDNSTemp, "")
		}
		// RFC 5321 §5.1: if we are one of the MX hosts, only hosts
		// preferred over us may be tried; none means the mail would loop.
		self := -1
		for _, mx := range mxs {
			if strings.EqualFold(mx.Host, strings.TrimSuffix(q.opts.Hostname, ".")) && (self < 0 || int(mx.Pref) < self) {
				self = int(mx.Pref)
			}
		}
		hosts := make([]string, 0, len(mxs))
		null := false
		for _, mx := range mxs {
			if mx.Host == "." || mx.Host == "" {
				null = true
				continue
			}
			if self >= 0 && int(mx.Pref) >= self {
				continue
			}
			hosts = append(hosts, mx.Host)
		}
		if len(hosts) == 0 && null {
			return allResults(rcpts, replyNullMX, "")
		}
		if len(hosts) == 0 && self >= 0 {
			q.log.Error("queue: mail for the domain loops back to this server (our hostname is its best MX)", "queueid", m.id, "domain", domain)
			return allResults(rcpts, replyLoop, "")
		}
		if len(hosts) == 0 {
			targets = []target{{host: domain, implicit: true}}
		} else {
			for _, h := range hosts {
				targets = append(targets, target{host: h})
			}
		}
	}

	lastErr := replyNoConnect
	lastRemote := ""
	tries := 0
	var busyOnly time.Duration // every address was at its connection limit: retry after this
	for _, t := range targets {
		addrs := []netip.Addr{t.addr}
		if !t.addr.IsValid() {
			var err error
			addrs, err = q.opts.Resolver.LookupIP(ctx, t.host)
			if err != nil {
				if t.implicit && errors.Is(err, dns.ErrNotFound) {
					return allResults(rcpts, replyNoMailHost, "")
				}
				q.log.Warn("queue: address lookup", "queueid", m.id, "host", t.host, "err", err)
				if !errors.Is(err, dns.ErrNotFound) {
					lastErr = replyDNSTemp
				}
				continue
			}
		}
		for _, a := range addrs {
			if tries >= maxConnectTries || ctx.Err() != nil {
				break
			}
			res, reply, done, busy := q.session(ctx, p, t.host, a)
			if done {
				return res
			}
			if busy > 0 {
				// Not a try: no connection was made. A real failure
				// elsewhere in this attempt still explains better.
				if tries == 0 {
					busyOnly = max(busyOnly, busy)
					lastErr, lastRemote = reply, t.host
				}
				continue
			}
			tries++
			busyOnly = 0
			lastErr, lastRemote = reply, t.host
		}
	}
	if ctx.Err() != nil {
		return interrupted(rcpts)
	}
	p.busy = busyOnly
	return allResults(rcpts, lastErr, lastRemote)
}

// addressLiteral parses "[192.0.2.1]" or "[IPv6:2001:db8::1]".
func addressLiteral(domain string) (netip.Addr, bool) {
	if len(domain) < 3 || domain[0] != '[' || domain[len(domain)-1] != ']' {
		return netip.Addr{}, false
	}
	s := domain[1 : len(domain)-1]
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	a, err := netip.ParseAddr(s)
	return a, err == nil
}

// session talks to one server address. done reports that the transaction
// produced per-recipient results (res); otherwise reply explains why this
// host did not work and the caller tries the next one. busy: the address
// was at its connection limit (MaxPerHost, or one for a host that failed)
// and was not tried: the attempt is to be made again after busy.
//
// Once p is through, the connection carries other due messages for the
// same domain (at most maxMessagesPerConnection), each a complete attempt
// of its own: this spares a connection and a TLS handshake per message
// when a backlog for one destination drains.
func (q *Queue) session(ctx context.Context, p *prepared, host string, addr netip.Addr) (res []result, reply smtpclient.Reply, done bool, busy time.Duration) {
	// A connection idling at this address (for another domain whose mail
	// server it also is) takes the message: no new connection, TLS
	// handshake and EHLO for it.
	if res, ok := q.offer(p, host, addr); ok {
		return res, smtpclient.Reply{}, true, 0
	}
	if r, delay, ok, res, handed := q.acquireHost(ctx, p, host, addr); handed {
		return res, smtpclient.Reply{}, true, 0
	} else if !ok {
		return nil, r, false, delay
	}
	// How the connection ended, for the host's state: a completed
	// transaction, or a failure that makes it a host to probe one
	// connection at a time.
	completed, failure := false, ""
	defer func() { q.releaseHost(addr, completed, failure) }()
	lost := func(err error) smtpclient.Reply {
		r, hostFailed := lostReply(err, host, addr)
		if hostFailed && ctx.Err() == nil {
			failure = r.Text
		}
		return r
	}

	log := q.log.With("queueid", p.m.id, "remote", host, "addr", addr.String())
	hostport := net.JoinHostPort(addr.String(), strconv.Itoa(q.opts.RemotePort))
	conn, err := q.opts.Dial(ctx, "tcp", hostport)
	if err != nil {
		log.Info("connect failed", "err", err)
		r := smtpclient.Reply{Code: 451, Enhanced: "4.4.1", Text: "connection to " + hostAddr(host, addr) + " failed"}
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
			r.Text = "timeout connecting to " + hostAddr(host, addr)
		}
		if ctx.Err() == nil {
			failure = r.Text
		}
		return nil, r, false, 0
	}
	// Cancel blocks on the connection when ctx ends (Shutdown).
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := smtpclient.New(ctx, conn, host, q.opts.Timeouts)
	defer conn.Close()

	r, err := c.Greeting()
	if err != nil {
		r := lost(err)
		log.Info("no greeting", "reply", r.String(), "err", err)
		return nil, r, false, 0
	}
	if r.Code != 220 {
		log.Info("greeting refused", "reply", r.String())
		c.Quit()
		return nil, r, false, 0
	}
	hello := func() (smtpclient.Reply, bool) {
		r, err := c.Hello(q.opts.Hostname)
		if err != nil {
			r := lost(err)
			log.Info("no reply to EHLO", "reply", r.String(), "err", err)
			return r, false
		}
		if r.Code != 250 {
			c.Quit()
			return r, false
		}
		return r, true
	}
	if r, ok := hello(); !ok {
		return nil, r, false, 0
	}
	if c.Has("STARTTLS") && !q.opts.DisableTLS {
		if q.tlsFailedRecently(host) {
			log.Warn("STARTTLS skipped: it failed with this host on an earlier attempt")
		} else {
			if err := c.StartTLS(q.opts.TLS, host); err != nil {
				log.Warn("STARTTLS failed; temporary failure, the next attempt may go without TLS", "err", err)
				q.noteTLSFailure(host)
				return nil, smtpclient.Reply{Code: 451, Enhanced: "4.7.0", Text: "TLS negotiation with " + host + " failed"}, false, 0
			}
			// RFC 3207 §4.2: EHLO again over TLS.
			if r, ok := hello(); !ok {
				return nil, r, false, 0
			}
		}
	}

	res, broken, cause := q.sendMessage(c, p, host, addr)
	if broken {
		lost(cause)
		return res, smtpclient.Reply{}, true, 0
	}
	completed = true
	if waiting := q.hostAnswered(addr); len(waiting) > 0 {
		q.wakeWaiting(ctx, waiting)
	}
	// p is done: conclude it now, not after the messages that follow.
	if failed := q.conclude(ctx, p, res); failed {
		q.followUp(ctx, p.j.id)
	}
	p.concluded = true
	for n := 1; n < maxMessagesPerConnection; n++ {
		// A message begun late in the connection's time limit could be
		// cut off by it: only the first half carries more messages.
		if left, limit := c.Remaining(); left < limit/2 {
			break
		}
		p2 := q.claimNext(ctx, p.j.domain)
		if p2 == nil {
			var ho *handoff
			if p2, ho = q.awaitNext(ctx, p.j.domain, addr); ho != nil {
				if broken, cause := q.carry(c, ho, addr); broken {
					if lost(cause); failure != "" {
						completed = false
					}
					return res, smtpclient.Reply{}, true, 0
				}
				continue
			}
			if p2 == nil {
				break
			}
		}
		res2, broken, cause := q.sendMessage(c, p2, host, addr)
		failed := q.conclude(ctx, p2, res2)
		q.unclaim(p2.j)
		if failed {
			q.followUp(ctx, p2.j.id)
		}
		if broken {
			if lost(cause); failure != "" {
				completed = false
			}
			return res, smtpclient.Reply{}, true, 0
		}
	}
	c.Quit()
	return res, smtpclient.Reply{}, true, 0
}

// maxMessagesPerConnection bounds how many messages one connection
// carries.
const maxMessagesPerConnection = 100

// connIdleTime is how long a connection that delivered its message stays
// open for the next message to the same domain, when slots are free: mail
// to one destination often comes in runs (a list, a busy correspondent),
// and each new connection costs DNS look-ups, a TCP and maybe a TLS
// handshake, and EHLO. Postfix keeps such connections for up to 2 s
// (smtp_connection_cache_time_limit).
const connIdleTime = time.Second

// carry runs a handed-off attempt's transaction on this connection and
// sends its results back to the attempt, which concludes it. broken: the
// connection is unusable (cause says why).
func (q *Queue) carry(c *smtpclient.Client, ho *handoff, addr netip.Addr) (broken bool, cause error) {
	var res []result
	// Always answer, or the attempt would wait for ever; nil results (a
	// panic) leave its recipients to their saved next attempt.
	defer func() { ho.done <- res }()
	res, broken, cause = q.sendMessage(c, ho.p, ho.host, addr)
	return broken, cause
}

// awaitNext waits up to connIdleTime for a message to domain to be
// enqueued and claims it, or for an attempt to another domain whose
// server resolved to addr to hand its message over (ho); neither when none
// came, or when no slot is free for other domains and no attempt waits
// for this server (an idle connection must not keep their mail waiting).
// While it waits the scheduler leaves domain's new messages to it.
func (q *Queue) awaitNext(ctx context.Context, domain string, addr netip.Addr) (p *prepared, ho *handoff) {
	q.mu.Lock()
	h := q.hosts[addr]
	if h == nil || !q.running || (q.total >= q.opts.MaxConcurrent && h.waiters == 0) {
		q.mu.Unlock()
		return nil, nil
	}
	idle := h.idle
	q.idle[domain]++
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		if q.idle[domain]--; q.idle[domain] <= 0 {
			delete(q.idle, domain)
			delete(q.enqueued, domain) // nobody waits on it
		}
		q.mu.Unlock()
		// Anything enqueued for domain meanwhile and not taken here is the
		// scheduler's again.
		q.wake()
	}()
	t := time.NewTimer(connIdleTime)
	defer t.Stop()
	for {
		q.mu.Lock()
		ch := q.enqueued[domain]
		if ch == nil {
			ch = make(chan struct{})
			q.enqueued[domain] = ch
		}
		q.mu.Unlock()
		// Claimed after ch is taken: an Enqueue between the two is seen
		// by one or the other.
		if p := q.claimNext(ctx, domain); p != nil {
			return p, nil
		}
		select {
		case <-ch:
		case ho := <-idle:
			return nil, ho
		case <-t.C:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

// sendMessage runs p's transactions on an open connection and records
// their results as soon as the remote answers. broken: the connection is
// unusable (results say so for the recipients it did not reach).
//
// cause is the error that broke the connection (nil when an RSET was
// refused).
func (q *Queue) sendMessage(c *smtpclient.Client, p *prepared, host string, addr netip.Addr) (res []result, broken bool, cause error) {
	m, rcpts := p.m, p.rcpts
	// Checks the server's EHLO lets us make before sending anything.
	switch {
	case c.MaxSize() > 0 && m.size+int64(len(m.dkim)) > c.MaxSize():
		return allResults(rcpts, replyTooBig, host), false, nil
	case m.smtputf8 && !c.Has("SMTPUTF8"):
		return allResults(rcpts, replyNeedUTF8, host), false, nil
	case m.eightbit && !c.Has("8BITMIME"):
		return allResults(rcpts, replyNeed8Bit, host), false, nil
	}
	res = make([]result, 0, len(rcpts))
	for start := 0; start < len(rcpts); start += smtpclient.MaxRcptsPerTransaction {
		chunk := rcpts[start:min(start+smtpclient.MaxRcptsPerTransaction, len(rcpts))]
		if !q.st.leaseValid() {
			// Another node may have this job by now: send nothing.
			q.log.Warn("queue: claim may be lost, not sending", "queueid", m.id, "remote", host)
			return append(res, interrupted(rcpts[start:])...), true, errLeaseLost
		}
		f, err := q.st.body(context.Background(), m.id)
		if err != nil {
			q.log.Error("queue: open spool", "queueid", m.id, "err", err)
			res = append(res, allResults(chunk, smtpclient.Reply{Code: 451, Enhanced: "4.3.0", Text: "local error reading the queued message"}, "")...)
			continue
		}
		body := io.MultiReader(strings.NewReader(m.dkim), io.NewSectionReader(f, 0, f.Size()))
		params := smtpclient.MailParams{Size: m.size + int64(len(m.dkim)), EightBit: m.eightbit, SMTPUTF8: m.smtputf8}
		replies, err := c.Transaction(m.mailFrom, chunk, params, body)
		f.Close()
		// A recipient without a reply gets what broke the connection.
		lostR := replyConnDropped
		if err != nil {
			lostR, _ = lostReply(err, host, addr)
		}
		chunkRes := make([]result, len(chunk))
		for i, rc := range chunk {
			chunkRes[i] = result{rcpt: rc, reply: replies[i], remote: host}
			if replies[i].Code == 0 {
				chunkRes[i].reply = lostR
			}
		}
		// Record at once: these recipients must never get this message
		// again, whatever happens next.
		q.record(m, chunkRes)
		for i := range chunkRes {
			chunkRes[i].recorded = true
		}
		res = append(res, chunkRes...)
		if err != nil {
			q.log.Info("connection lost", "queueid", m.id, "remote", host, "reply", lostR.String(), "err", err)
			for _, rc := range rcpts[start+len(chunk):] {
				res = append(res, result{rcpt: rc, reply: lostR, remote: host})
			}
			return res, true, err
		}
		if start+len(chunk) < len(rcpts) {
			if r, err := c.Reset(); err != nil || r.Code != 250 {
				lostR := replyConnDropped
				if err != nil {
					lostR, _ = lostReply(err, host, addr)
				}
				for _, rc := range rcpts[start+len(chunk):] {
					res = append(res, result{rcpt: rc, reply: lostR, remote: host})
				}
				return res, true, err
			}
		}
	}
	return res, false, nil
}

// claimNext finds another due message for domain that no worker holds,
// claims it and prepares it; nil when there is none or we are stopping.
// The claimed job shares its connection's concurrency slot.
func (q *Queue) claimNext(ctx context.Context, domain string) *prepared {
	if ctx.Err() != nil {
		return nil
	}
	jobs, err := q.st.due(ctx, q.opts.Now().UnixNano(), domain, nil, 1)
	if err != nil {
		return nil
	}
	for _, j := range jobs {
		q.mu.Lock()
		ok := q.running && !q.inflight[j]
		if ok {
			q.inflight[j] = true
		}
		q.mu.Unlock()
		if !ok {
			q.st.release(j)
			continue
		}
		if p := q.prepare(ctx, j); p != nil {
			return p
		}
		q.unclaim(j)
	}
	return nil
}

func (q *Queue) unclaim(j job) {
	q.mu.Lock()
	delete(q.inflight, j)
	q.mu.Unlock()
	q.st.release(j)
}

func (q *Queue) tlsFailedRecently(host string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	t, ok := q.tlsFail[host]
	if !ok {
		return false
	}
	// At least a minute later means a later attempt (the first retry comes
	// after 5 minutes), never another address tried in the same attempt.
	d := q.opts.Now().Sub(t)
	return d >= time.Minute && d < tlsFallbackWindow
}

func (q *Queue) noteTLSFailure(host string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tlsFail[host] = q.opts.Now()
}
