package gate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// Greylisting defaults (GreylistOptions' zero values).
const (
	DefaultGreylistDelay = 5 * time.Minute
	DefaultRetryWindow   = 24 * time.Hour
	DefaultAllowTTL      = 35 * 24 * time.Hour
	DefaultMaxTriplets   = 100_000
	DefaultMaxAllowed    = 100_000
	DefaultSweepInterval = time.Hour
	// allowRefresh: an allow-list entry's last use is written again only
	// when the stored one is older than this, so a busy sender costs one
	// read per recipient, not a write.
	allowRefresh = 24 * time.Hour
	// maxKeyLen bounds the addresses stored (smtpd's limit is lower).
	maxKeyLen = 512
)

// GreylistOptions configure greylisting.
type GreylistOptions struct {
	// Path is the database file (cmd: data_dir/greylist.sqlite).
	Path string
	// Postgres, when set, keeps the state in that PostgreSQL database
	// instead of Path (the postgres backend: every node greylists and
	// passes the same senders; greylist_postgres.go). Close does not close
	// the pool.
	Postgres *pgxpool.Pool
	// Delay is how long a new triplet is refused; a retry after it (and
	// within RetryWindow of the first attempt) passes. "5m".
	Delay time.Duration
	// RetryWindow is how long a first attempt is remembered. "24h".
	RetryWindow time.Duration
	// AllowTTL is how long an allow-listed sender (client network and
	// sender domain) stays listed after its last message. "35d".
	AllowTTL time.Duration
	// MaxTriplets and MaxAllowed bound the tables: past them the sweep
	// drops the oldest rows.
	MaxTriplets int
	MaxAllowed  int
	// SweepInterval is how often expired rows are deleted in the
	// background (DefaultSweepInterval); < 0: never (tests call Sweep).
	SweepInterval time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// Result is what greylisting decided for one recipient.
type Result int

const (
	// Allowed: the client network and sender domain are allow-listed.
	Allowed Result = iota
	// Passed: the triplet was retried after the delay; the sender is
	// allow-listed from now on.
	Passed
	// Greylisted: refuse for now (451 4.7.1).
	Greylisted
)

// Verdict is Check's answer.
type Verdict struct {
	Result Result
	// Waited is, for Passed, the time since the first attempt.
	Waited time.Duration
	// RetryAfter is, for Greylisted, how long until a retry would pass.
	RetryAfter time.Duration
}

// Greylist is the greylisting state in its SQLite database. Safe for
// concurrent use.
type Greylist struct {
	o   GreylistOptions
	db  greyDB
	now func() time.Time
	log *slog.Logger

	getAllowed *sql.Stmt // on the read pool: the hot path

	inserts atomic.Int64 // new triplets since the last sweep
	kick    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

var greylistSchema = []sqlitedb.Migration{
	sqlitedb.Exec(
		// One first attempt per (client network, sender, recipient).
		`CREATE TABLE triplets (
			net    TEXT NOT NULL,
			sender TEXT NOT NULL,
			rcpt   TEXT NOT NULL,
			first  INTEGER NOT NULL, -- unix seconds
			PRIMARY KEY (net, sender, rcpt)
		) WITHOUT ROWID`,
		`CREATE INDEX triplets_first ON triplets (first)`,
		// Client networks whose sender domain passed once.
		`CREATE TABLE allowed (
			net    TEXT NOT NULL,
			domain TEXT NOT NULL,
			last   INTEGER NOT NULL, -- unix seconds of the last use
			PRIMARY KEY (net, domain)
		) WITHOUT ROWID`,
		`CREATE INDEX allowed_last ON allowed (last)`,
	),
}

// OpenGreylist opens (creating) the database at o.Path and starts the
// background sweep.
func OpenGreylist(ctx context.Context, o GreylistOptions) (*Greylist, error) {
	if o.Path == "" && o.Postgres == nil {
		return nil, errors.New("gate: GreylistOptions.Path is required")
	}
	if o.Delay <= 0 {
		o.Delay = DefaultGreylistDelay
	}
	if o.RetryWindow <= 0 {
		o.RetryWindow = DefaultRetryWindow
	}
	if o.RetryWindow <= o.Delay {
		return nil, fmt.Errorf("gate: greylist retry window %s must be longer than the delay %s", o.RetryWindow, o.Delay)
	}
	if o.AllowTTL <= 0 {
		o.AllowTTL = DefaultAllowTTL
	}
	if o.MaxTriplets <= 0 {
		o.MaxTriplets = DefaultMaxTriplets
	}
	if o.MaxAllowed <= 0 {
		o.MaxAllowed = DefaultMaxAllowed
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// synchronous=NORMAL: a power loss may forget the last few rows, which
	// only means a sender is greylisted once more; FULL would fsync on
	// every first attempt, which spam makes plentiful.
	var db greyDB
	if o.Postgres != nil {
		pdb, err := openGreylistPostgres(ctx, o.Postgres)
		if err != nil {
			return nil, fmt.Errorf("gate: greylist: %w", err)
		}
		db = pdb
	} else {
		sdb, err := sqlitedb.Open(ctx, o.Path, greylistSchema, sqlitedb.Options{Synchronous: "NORMAL"})
		if err != nil {
			return nil, fmt.Errorf("gate: greylist: %w", err)
		}
		db = greyDB{Write: sdb.Write, Read: sdb.Read, close: sdb.Close}
	}
	var err error
	g := &Greylist{o: o, db: db, now: o.Now, log: o.Logger, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	g.getAllowed, err = db.Read.PrepareContext(ctx, `SELECT last FROM allowed WHERE net = ? AND domain = ?`)
	if err != nil {
		db.close()
		return nil, fmt.Errorf("gate: greylist: %w", err)
	}
	if o.SweepInterval > 0 {
		g.wg.Add(1)
		go g.sweeper()
	}
	return g, nil
}

// Close stops the sweep and closes the database.
func (g *Greylist) Close() error {
	close(g.stop)
	g.wg.Wait()
	g.getAllowed.Close()
	return g.db.close()
}

// greyNet is the client network a triplet and an allow-list entry hold:
// the IPv4 /24 or IPv6 /64, since big senders retry from another address
// of the same pool.
func greyNet(ip netip.Addr) string {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p.String()
}

// senderDomain is from's domain in lower case, "" for the null sender.
func senderDomain(from string) string {
	at := strings.LastIndexByte(from, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(from[at+1:])
}

func clip(s string) string { return strings.ToLower(s[:min(len(s), maxKeyLen)]) }

// Check decides on one recipient of a message from ip with envelope
// sender from ("" for the null sender), recording what it needs.
func (g *Greylist) Check(ctx context.Context, ip netip.Addr, from, rcpt string) (Verdict, error) {
	now := g.now()
	net, domain := greyNet(ip), clip(senderDomain(from))

	var last int64
	err := g.getAllowed.QueryRowContext(ctx, net, domain).Scan(&last)
	switch {
	case err == nil && now.Sub(time.Unix(last, 0)) <= g.o.AllowTTL:
		if now.Sub(time.Unix(last, 0)) > allowRefresh {
			if _, err := g.db.Write.ExecContext(ctx, `UPDATE allowed SET last = ? WHERE net = ? AND domain = ?`, now.Unix(), net, domain); err != nil {
				g.log.Error("greylist: refreshing allow-list entry", "err", err)
			}
		}
		return Verdict{Result: Allowed}, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return Verdict{}, fmt.Errorf("gate: greylist: %w", err)
	}
	return g.checkTriplet(ctx, now, net, domain, clip(from), clip(rcpt))
}

// checkTriplet is the first-attempt bookkeeping, in one write transaction.
func (g *Greylist) checkTriplet(ctx context.Context, now time.Time, net, domain, sender, rcpt string) (v Verdict, err error) {
	tx, err := g.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return Verdict{}, fmt.Errorf("gate: greylist: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
			err = fmt.Errorf("gate: greylist: %w", err)
			return
		}
		err = tx.Commit()
		if err != nil {
			err = fmt.Errorf("gate: greylist: %w", err)
		}
	}()
	if g.db.lock != "" {
		if _, err = tx.ExecContext(ctx, g.db.lock, net+" "+sender+" "+rcpt); err != nil {
			return Verdict{}, err
		}
	}
	var first int64
	err = tx.QueryRowContext(ctx, `SELECT first FROM triplets WHERE net = ? AND sender = ? AND rcpt = ?`, net, sender, rcpt).Scan(&first)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = tx.ExecContext(ctx, `INSERT INTO triplets (net, sender, rcpt, first) VALUES (?, ?, ?, ?)`, net, sender, rcpt, now.Unix())
		if err == nil {
			g.inserted()
		}
		return Verdict{Result: Greylisted, RetryAfter: g.o.Delay}, err
	}
	if err != nil {
		return Verdict{}, err
	}
	age := now.Sub(time.Unix(first, 0))
	switch {
	case age < g.o.Delay:
		// RFC 6647 §4.2: too early a retry is refused again, and does not
		// restart the delay.
		return Verdict{Result: Greylisted, RetryAfter: g.o.Delay - age}, nil
	case age > g.o.RetryWindow:
		// Retried too late: a new first attempt.
		_, err = tx.ExecContext(ctx, `UPDATE triplets SET first = ? WHERE net = ? AND sender = ? AND rcpt = ?`, now.Unix(), net, sender, rcpt)
		return Verdict{Result: Greylisted, RetryAfter: g.o.Delay}, err
	}
	if _, err = tx.ExecContext(ctx, `DELETE FROM triplets WHERE net = ? AND sender = ? AND rcpt = ?`, net, sender, rcpt); err != nil {
		return Verdict{}, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO allowed (net, domain, last) VALUES (?, ?, ?)
		ON CONFLICT (net, domain) DO UPDATE SET last = excluded.last`, net, domain, now.Unix())
	return Verdict{Result: Passed, Waited: age}, err
}

// inserted counts a new triplet and asks for an early sweep when a tenth
// of MaxTriplets arrived since the last one, so a flood cannot outgrow the
// bound by much between hourly sweeps.
func (g *Greylist) inserted() {
	if g.inserts.Add(1) >= int64(max(g.o.MaxTriplets/10, 1)) {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
}

func (g *Greylist) sweeper() {
	defer g.wg.Done()
	t := time.NewTicker(g.o.SweepInterval)
	defer t.Stop()
	for {
		g.sweepOnce()
		select {
		case <-g.stop:
			return
		case <-t.C:
		case <-g.kick:
		}
	}
}

// sweepOnce runs one background Sweep; a panic is logged with its stack
// and the sweeper goes on.
func (g *Greylist) sweepOnce() {
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("greylist sweep panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n, err := g.Sweep(ctx); err != nil {
		g.log.Error("greylist sweep", "err", err)
	} else if n > 0 {
		g.log.Debug("greylist sweep", "removed", n)
	}
}

// Sweep deletes first attempts older than RetryWindow and allow-list
// entries unused for AllowTTL, then the oldest rows past MaxTriplets and
// MaxAllowed. It returns how many rows went.
func (g *Greylist) Sweep(ctx context.Context) (int64, error) {
	g.inserts.Store(0)
	now := g.now()
	var total int64
	for _, q := range []struct {
		sql string
		arg any
	}{
		{`DELETE FROM triplets WHERE first < ?`, now.Add(-g.o.RetryWindow).Unix()},
		{`DELETE FROM allowed WHERE last < ?`, now.Add(-g.o.AllowTTL).Unix()},
		{`DELETE FROM triplets WHERE first <= (SELECT first FROM triplets ORDER BY first DESC LIMIT 1 OFFSET ?)`, g.o.MaxTriplets},
		{`DELETE FROM allowed WHERE last <= (SELECT last FROM allowed ORDER BY last DESC LIMIT 1 OFFSET ?)`, g.o.MaxAllowed},
	} {
		res, err := g.db.Write.ExecContext(ctx, q.sql, q.arg)
		if err != nil {
			return total, fmt.Errorf("gate: greylist sweep: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// Counts returns the number of first attempts and allow-list entries held.
func (g *Greylist) Counts(ctx context.Context) (triplets, allowed int64, err error) {
	err = g.db.Read.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM triplets), (SELECT count(*) FROM allowed)`).Scan(&triplets, &allowed)
	return triplets, allowed, err
}
