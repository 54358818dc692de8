package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/postgres"
)

// pgName is the column of Posthouse on the postgres backend.
const pgName = "Posthouse (PostgreSQL)"

// pgMethodology is the notes' account of that column.
const pgMethodology = pgName + ": the same binary and settings with [store] backend = \"postgres\": messages (bodies included), users and the queue in one database of a PostgreSQL started for the run (see the header), reached over loopback TCP; a delivery commits its transaction (WAL fsynced, synchronous_commit = on) before the 250. Its CPU rows add every PostgreSQL process (the postmaster, its backends, WAL writer, checkpointer, autovacuum) to Posthouse's. Its disk row is the growth of PostgreSQL's whole data directory (tables, TOAST, indexes and pg_wal, which grows by 16 MiB segments, so small runs are coarse); PostgreSQL compresses bodies over 2 KB (TOAST, pglz), and the generated messages, drawn from a small vocabulary, compress well. Its mailboxes are filled (not timed) through the store's import path (batches of 128 messages per statement, one transaction per account) with Posthouse stopped, as posthouse admin store copy fills them."

// pgServer is the posthouse binary with [store] backend = "postgres": mail,
// users and the queue in a private PostgreSQL started for the benchmark
// (initdb into a temporary directory, run as nobody when the benchmark runs
// as root, listening on 127.0.0.1 only, PostgreSQL's durability defaults:
// fsync, synchronous_commit and full_page_writes on).
type pgServer struct {
	*phServer
	pg      *pgtest.Server
	dsn     string
	version string // PostgreSQL's server_version

	// uidValidity and emailID number the imported mailboxes and
	// messages, so that every import gets values never seen before.
	uidValidity uint32
	emailID     int64
}

func startPosthousePG(ctx context.Context, log *slog.Logger, opts phOptions) (_ *pgServer, err error) {
	pg, err := pgtest.StartWith(pgtest.StartOptions{Durable: true, Loopback: true})
	if err != nil {
		return nil, err
	}
	s := &pgServer{pg: pg, uidValidity: uint32(time.Now().Unix()), emailID: 1 << 40}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	db, err := pg.CreateDatabase(ctx)
	if err != nil {
		return nil, err
	}
	s.dsn = pg.DSN(db)
	c, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := c.QueryRow(ctx, "SHOW server_version").Scan(&s.version); err != nil {
		return nil, err
	}
	// pgtest preloads pg_stat_statements where the package has it.
	if _, err := c.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		log.Warn("no pg_stat_statements: the PostgreSQL statement figures are left out", "err", err)
	}
	opts.StoreDSN = s.dsn
	if s.phServer, err = startPosthouse(ctx, log, opts); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *pgServer) Name() string { return pgName }

// describe is the header's account of the PostgreSQL side.
func (s *pgServer) describe() string {
	return fmt.Sprintf("%s: PostgreSQL %s, a private instance (initdb in a temporary directory, loopback TCP, PostgreSQL's durability defaults: fsync = on, synchronous_commit = on, full_page_writes = on; shared_buffers = 64MB), mail, users and queue in one database", pgName, s.version)
}

// MailRoot is PostgreSQL's data directory (tables, indexes and pg_wal):
// the disk row measures it.
func (s *pgServer) MailRoot() string { return s.pg.DataDir() }

func (s *pgServer) FastPopulate() string { return "import" }

// PIDs are Posthouse's processes and PostgreSQL's (the postmaster reaps
// its backends, so their CPU is in its cutime once they exit).
func (s *pgServer) PIDs() []int {
	var out []int
	if s.phServer != nil {
		out = s.phServer.PIDs()
	}
	return append(out, descendants(s.pg.PID())...)
}

func (s *pgServer) Close() error {
	var err error
	if s.phServer != nil {
		err = s.phServer.Close()
	}
	if os.Getenv("BENCH_KEEP") != "" {
		s.phServer.log.Info("keeping PostgreSQL running", "dsn", s.dsn, "data", s.pg.DataDir())
		return err
	}
	return errors.Join(err, s.pg.Stop())
}

// fill is one mailbox to fill with n messages from gen.
type fill struct {
	mailbox string
	n       int
	gen     func(i int) []byte
}

// Load replaces user's account with one holding INBOX and the fills (not
// timed): Posthouse is stopped, the account goes in through the store's
// import path (mailstore.Importer, as posthouse admin store copy writes
// it: batches of messages, one transaction), the database is vacuumed
// and analysed, and Posthouse restarts. It
// does nothing when every mailbox already holds its messages.
func (s *pgServer) Load(ctx context.Context, user string, fills []fill) error {
	if done, err := s.filled(user, fills); err != nil || done {
		return err
	}
	s.stop()
	err := s.importAccount(ctx, user, fills)
	if serr := s.launch(ctx); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if done, err := s.filled(user, fills); err != nil || !done {
		return errors.Join(err, fmt.Errorf("%s: the imported mailboxes of %s do not hold their messages", s.Name(), user))
	}
	return nil
}

// filled reports whether every fill's mailbox holds at least its messages.
func (s *pgServer) filled(user string, fills []fill) (bool, error) {
	c, err := imapLogin(s.Addr("imap"), user)
	if err != nil {
		return false, err
	}
	defer c.Close()
	for _, f := range fills {
		d, err := c.Select(f.mailbox, nil).Wait()
		var ie *imap.Error
		if errors.As(err, &ie) {
			return false, nil // no such mailbox yet
		}
		if err != nil {
			return false, err
		}
		if int(d.NumMessages) < f.n {
			return false, nil
		}
	}
	return true, nil
}

func (s *pgServer) importAccount(ctx context.Context, user string, fills []fill) error {
	st, err := postgres.Open(ctx, postgres.Options{DSN: s.dsn})
	if err != nil {
		return err
	}
	defer st.Close()
	src := &genSource{fills: map[string]fill{}, date: time.Now().Truncate(time.Second), emailID: &s.emailID}
	src.acc.Name = user
	byName := map[string]fill{"INBOX": {mailbox: "INBOX"}}
	for _, f := range fills {
		byName[f.mailbox] = f
	}
	for name, f := range byName {
		s.uidValidity++
		src.fills[name] = f
		src.acc.Mailboxes = append(src.acc.Mailboxes, mailstore.ImportMailbox{
			Name:          name,
			UIDValidity:   s.uidValidity,
			UIDNext:       imap.UID(f.n + 1),
			HighestModSeq: uint64(max(f.n, 1)),
			RecentUID:     imap.UID(f.n + 1),
			Messages:      int64(f.n),
		})
		src.acc.Subscriptions = append(src.acc.Subscriptions, name)
		src.acc.Messages += int64(f.n)
	}
	sort.Slice(src.acc.Mailboxes, func(i, j int) bool { return src.acc.Mailboxes[i].Name < src.acc.Mailboxes[j].Name })
	sort.Strings(src.acc.Subscriptions)
	if _, err = st.Import(ctx, src, mailstore.ImportOptions{Force: true}); err != nil {
		return err
	}
	// As after any bulk load: statistics for the planner and the
	// visibility map, so that autovacuum does not do it during the
	// timed runs.
	c, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, "VACUUM (ANALYZE)")
	return err
}

// genSource is a mailstore.ImportSource of generated messages.
type genSource struct {
	acc     mailstore.ImportAccount
	fills   map[string]fill
	date    time.Time
	emailID *int64
}

func (g *genSource) Account() mailstore.ImportAccount { return g.acc }

func (g *genSource) Messages(ctx context.Context, mailbox string, fn func(*mailstore.ImportMessage) error) error {
	f := g.fills[mailbox]
	for i := range f.n {
		if i%1000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		b := f.gen(i)
		*g.emailID++
		if err := fn(&mailstore.ImportMessage{
			UID:          imap.UID(i + 1),
			ModSeq:       uint64(i + 1),
			InternalDate: g.date,
			EmailID:      fmt.Sprintf("E%d", *g.emailID),
			Size:         int64(len(b)),
			Body:         bytes.NewReader(b),
		}); err != nil {
			return err
		}
	}
	return nil
}

func (g *genSource) Unchanged(context.Context) error { return nil }
func (g *genSource) Close() error                    { return nil }

// pgProbe holds PostgreSQL's counters at the start of a measured span.
type pgProbe struct {
	s                    *pgServer
	lsn                  string
	walSync, walWrite    int64
	dbSize               int64
	statementsAvailable  bool
	walRecords, walBytes int64
	cpu                  time.Duration // of PostgreSQL's processes
}

// statsSettle is how long PostgreSQL 15's backends may keep their WAL
// counters before reporting them to pg_stat_wal when they go idle
// (PGSTAT_IDLE_INTERVAL, 10 s).
const statsSettle = 11 * time.Second

// probe resets pg_stat_statements and reads the WAL position and
// counters.
func (s *pgServer) probe(ctx context.Context) (*pgProbe, error) {
	c, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	p := &pgProbe{s: s, cpu: cpuTime(descendants(s.pg.PID()))}
	_, err = c.Exec(ctx, "SELECT pg_stat_statements_reset()")
	p.statementsAvailable = err == nil
	err = c.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, w.wal_sync, w.wal_write, w.wal_records, w.wal_bytes::bigint,
		pg_database_size(current_database()) FROM pg_stat_wal w`).
		Scan(&p.lsn, &p.walSync, &p.walWrite, &p.walRecords, &p.walBytes, &p.dbSize)
	return p, err
}

// pgStatement is one pg_stat_statements entry over a span.
type pgStatement struct {
	query        string
	calls, rows  int64
	meanMs       float64
	walBytes     int64
	totalMs      float64
	perOperation float64
}

// pgFigures are PostgreSQL's costs over a span, per operation.
type pgFigures struct {
	ops                           int
	statements, commits           float64 // per operation
	walBytes, walSyncs, walWrites float64 // per operation
	walRecords                    float64 // per operation (pg_stat_wal)
	dbGrowth                      float64 // bytes of pg_database_size per operation
	top                           []pgStatement
	statementsAvailable           bool
	cpuMs                         float64 // PostgreSQL's processes' CPU per operation
}

// finish reads the counters again after statsSettle and returns the
// figures per operation (ops of them in the span).
func (p *pgProbe) finish(ctx context.Context, ops int) (pgFigures, error) {
	f := pgFigures{ops: ops, statementsAvailable: p.statementsAvailable}
	c, err := pgx.Connect(ctx, p.s.dsn)
	if err != nil {
		return f, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	// WAL bytes by position first, before the stats wait adds
	// background writes (checkpoints, autovacuum) to the span.
	var walBytes, dbSize int64
	if err := c.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint, pg_database_size(current_database())`, p.lsn).
		Scan(&walBytes, &dbSize); err != nil {
		return f, err
	}
	per := func(v int64) float64 { return float64(v) / float64(ops) }
	f.walBytes, f.dbGrowth = per(walBytes), per(dbSize-p.dbSize)
	f.cpuMs = ms(cpuTime(descendants(p.s.pg.PID()))-p.cpu) / float64(ops)
	if p.statementsAvailable {
		if f.top, err = readStatements(ctx, c, ops); err != nil {
			return f, err
		}
		for _, st := range f.top {
			f.statements += st.perOperation
			if strings.EqualFold(strings.TrimSpace(st.query), "commit") {
				f.commits += st.perOperation
			}
		}
	}
	select {
	case <-ctx.Done():
		return f, ctx.Err()
	case <-time.After(statsSettle):
	}
	var sync, write, records int64
	if err := c.QueryRow(ctx, `SELECT wal_sync, wal_write, wal_records FROM pg_stat_wal`).Scan(&sync, &write, &records); err != nil {
		return f, err
	}
	f.walSyncs, f.walWrites, f.walRecords = per(sync-p.walSync), per(write-p.walWrite), per(records-p.walRecords)
	return f, nil
}

// readStatements lists pg_stat_statements since its last reset, most
// called first, leaving out the probes' own statements.
func readStatements(ctx context.Context, c *pgx.Conn, ops int) ([]pgStatement, error) {
	rows, err := c.Query(ctx, `SELECT regexp_replace(query, '\s+', ' ', 'g'), calls, rows, mean_exec_time, total_exec_time, wal_bytes::bigint
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND query NOT LIKE '%pg_stat%' AND query NOT LIKE '%pg_current_wal_lsn%' ORDER BY calls DESC, total_exec_time DESC`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgStatement, error) {
		var st pgStatement
		err := r.Scan(&st.query, &st.calls, &st.rows, &st.meanMs, &st.totalMs, &st.walBytes)
		st.perOperation = float64(st.calls) / float64(ops)
		return st, err
	})
}

// imapStatements counts the statements (each one round trip) of an IMAP
// login, a SELECT of mailbox (want messages) and a UID FETCH 1:* (FLAGS),
// command by command, and returns them as a note.
//
// Each of extra runs after them, counted the same way, on its own
// connection.
func (s *pgServer) imapStatements(ctx context.Context, mailbox string, want int, extra ...pgStep) (string, error) {
	pc, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return "", err
	}
	defer pc.Close(context.WithoutCancel(ctx))
	var parts []string
	step := func(what string, f func() error) error {
		// Background statements (the queue's, the other sessions')
		// would count too: none run while the benchmark waits here.
		if _, err := pc.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
			return err
		}
		if err := f(); err != nil {
			return err
		}
		sts, err := readStatements(ctx, pc, 1)
		if err != nil {
			return err
		}
		var total int64
		var kinds []string
		for _, st := range sts {
			total += st.calls
			q := st.query
			if len(q) > 48 {
				q = q[:48] + "…"
			}
			kinds = append(kinds, fmt.Sprintf("%d× `%s` %.2f ms", st.calls, strings.ReplaceAll(q, "`", "'"), st.meanMs))
		}
		parts = append(parts, fmt.Sprintf("%s: %d (%s)", what, total, strings.Join(kinds, "; ")))
		return nil
	}
	var c *imapclient.Client
	if err := step("login", func() (err error) { c, err = imapLogin(s.Addr("imap"), userIMAP); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	if err := step(fmt.Sprintf("SELECT of %s msgs", n(want)), func() error {
		d, err := c.Select(mailbox, nil).Wait()
		if err == nil && int(d.NumMessages) != want {
			err = fmt.Errorf("SELECT %s: %d messages, want %d", mailbox, d.NumMessages, want)
		}
		return err
	}); err != nil {
		return "", err
	}
	if err := step("UID FETCH 1:* (FLAGS)", func() error { return fetchAllFlags(c, want) }); err != nil {
		return "", err
	}
	for _, x := range extra {
		if err := step(x.what, x.run); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s, statements (each one round trip) per IMAP command, from pg_stat_statements, count × statement and mean ms: %s.", pgName, strings.Join(parts, " — ")), nil
}

// pgStep is one more measured step of imapStatements.
type pgStep struct {
	what string
	run  func() error
}

// note is one line for the notes under the table.
func (f pgFigures) note(what, unit string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s, %s (%s): ", pgName, what, unit)
	if f.statementsAvailable {
		fmt.Fprintf(&b, "%.2f statements (each one round trip) and %.2f commits per %s; ", f.statements, f.commits, unit)
	}
	fmt.Fprintf(&b, "PostgreSQL's processes %.2f CPU ms per %s (part of the CPU row's figure, read after the span); ", f.cpuMs, unit)
	fmt.Fprintf(&b, "WAL %.1f KB per %s (pg_current_wal_lsn), %.2f WAL fsyncs and %.2f WAL writes per %s (pg_stat_wal, read 11 s later: background writes of that wait count too), database +%.1f KB per %s (pg_database_size: tables, TOAST, indexes; no WAL)",
		f.walBytes/1024, unit, f.walSyncs, f.walWrites, unit, f.dbGrowth/1024, unit)
	if len(f.top) > 0 {
		b.WriteString(". Statements (pg_stat_statements: calls per " + unit + ", mean ms, rows per call): ")
		for i, st := range f.top {
			if i == 8 {
				fmt.Fprintf(&b, "; %d more kinds", len(f.top)-i)
				break
			}
			if i > 0 {
				b.WriteString("; ")
			}
			q := st.query
			if len(q) > 90 {
				q = q[:90] + "…"
			}
			rowsPer := 0.0
			if st.calls > 0 {
				rowsPer = float64(st.rows) / float64(st.calls)
			}
			fmt.Fprintf(&b, "`%s` %.2f, %.3f ms, %.1f", strings.ReplaceAll(q, "`", "'"), st.perOperation, st.meanMs, rowsPer)
		}
	}
	return b.String()
}
