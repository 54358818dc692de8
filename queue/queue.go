package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/internal/durable"
	"github.com/posthouse/posthouse/internal/mailaddr"
	"github.com/posthouse/posthouse/internal/regfile"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
	"github.com/posthouse/posthouse/smtpclient"
)

// Defaults for Options.
const (
	DefaultExpiry        = 5 * 24 * time.Hour
	DefaultDelayWarning  = 4 * time.Hour
	DefaultRemotePort    = 25
	DefaultMaxConcurrent = 50
	DefaultMaxPerDomain  = 5
	DefaultMaxPerHost    = 10
	DefaultPollInterval  = 5 * time.Second
	DefaultDialTimeout   = 30 * time.Second
	// maxHeaderBytes bounds how much of a message's header we read to find
	// From (for DKIM) and to quote in a DSN.
	maxHeaderBytes = 256 << 10
)

// Sentinel errors.
var (
	ErrNotFound   = errors.New("queue: no such message")
	ErrBadID      = errors.New("queue: malformed queue id")
	ErrNoRcpts    = errors.New("queue: no recipients")
	ErrBadAddress = errors.New("queue: malformed address")
	ErrTooBig     = errors.New("queue: message too big")
	ErrClosed     = errors.New("queue: closed")
)

// Resolver is the DNS the queue needs; *dns.Resolver implements it.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]dns.MX, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// Locals tells the queue which domains are ours: their recipients, and DSNs
// to their senders, go to Options.Local instead of out by MX.
// cmd/posthouse adapts *auth.DB to it (the queue does not import auth, so
// it builds and tests on its own).
type Locals interface {
	IsLocalDomain(ctx context.Context, domain string) (bool, error)
}

// Options configure Open.
type Options struct {
	// DataDir holds queue.sqlite and the spool directory queue/.
	DataDir string
	// Hostname is our name in EHLO, DSNs and Message-IDs.
	Hostname string
	Logger   *slog.Logger

	// Resolver answers MX and address lookups (required to deliver).
	Resolver Resolver
	// Dial opens connections to remote servers (default: net.Dialer with
	// DefaultDialTimeout). Tests replace it.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// RemotePort is the port remote MX hosts are contacted on (default 25).
	RemotePort int
	// TLS is the client configuration for opportunistic STARTTLS. nil: a
	// configuration that does not verify certificates, since opportunistic
	// TLS without MTA-STS or DANE has nothing to verify against (RFC 7435).
	TLS *tls.Config
	// DisableTLS turns STARTTLS off entirely.
	DisableTLS bool
	// Timeouts bound each step of a conversation with a remote server and
	// the whole connection (RFC 5321 §4.5.3.2; zero fields: its defaults).
	Timeouts smtpclient.Timeouts

	// Expiry is how long a message is retried before it bounces (default
	// DefaultExpiry).
	Expiry time.Duration
	// DelayWarning is when a "still trying" DSN goes out (default 4 h,
	// negative: never).
	DelayWarning time.Duration
	// MaxConcurrent bounds delivery attempts in flight in total,
	// MaxPerDomain per destination domain, MaxPerHost connections per
	// mail server address (many domains may share one MX). A host whose
	// last connection timed out or could not be made gets one connection
	// at a time until a transaction with it completes.
	MaxConcurrent int
	MaxPerDomain  int
	MaxPerHost    int
	// MaxMessageSize refuses larger messages at Enqueue (0: no limit).
	MaxMessageSize int64
	// PollInterval is how often the scheduler looks at the database even
	// without a wake-up (admin commands from another process, clock).
	PollInterval time.Duration

	// Locals and Local deliver to recipients in our own domains (the
	// local transport) and DSNs to local senders, through the local
	// delivery pipeline. Either may be nil: then every recipient and DSN
	// goes out by MX.
	Locals Locals
	Local  LocalDelivery

	// SRS, when set (with Locals), rewrites the envelope sender of mail
	// relayed for senders outside our domains (srs.go).
	SRS SenderRewriter

	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time

	// OnAttempt, when set, hears the result of each delivery attempt for
	// one recipient: "delivered", "deferred" or "bounced" (cmd feeds
	// package metrics). It must not block.
	OnAttempt func(result string)

	// Postgres, when set, keeps the messages in PostgreSQL (tables
	// queue_*, migrated on Open) instead of queue.sqlite and spool files,
	// shared by every node using the same database: each due job is
	// claimed by one node (Node, unique among the processes; default
	// the machine's hostname and a random suffix) for Lease (default
	// DefaultLease), renewed while the node runs. DKIM keys stay in
	// queue.sqlite. ClosePostgres makes Close close the pool.
	Postgres      *pgxpool.Pool
	Node          string
	Lease         time.Duration
	ClosePostgres bool

	// Shared says another process (a running server) may be using the
	// queue: Open skips its start-up cleanup, which would otherwise take a
	// message being enqueued right now for an orphan. Admin commands set
	// it; Start is not meant for a shared queue.
	Shared bool
}

// Queue is the durable outbound queue. It is safe for concurrent use.
type Queue struct {
	opts Options
	log  *slog.Logger
	db   *sqlitedb.DB
	dkim *dkim.Keys
	// st keeps the messages: sqliteStore, or pgBackend (OpenShared).
	st       storage
	spoolDir string
	tmpDir   string
	// spoolSync shares the fsync of spoolDir between concurrent Enqueues.
	spoolSync durable.DirSyncer
	// dbPath is the database file; reap holds the spool files of finished
	// messages until their commit is durable (reap.go).
	dbPath string
	reap   reaper
	// committer shares commits between concurrent Enqueues (groupcommit.go).
	committer enqueueCommitter
	// recycled holds emptied spool files in tmp/ for Enqueue to reuse
	// (reap.go).
	recycled chan string

	kick chan struct{}

	// enqueued holds, per domain, a channel that connections waiting idle
	// for more mail to that domain (awaitNext) wait on; an Enqueue with
	// recipients there closes and drops it, so it wakes only them.
	enqueued map[string]chan struct{}
	// idle counts, per domain, the connections waiting for its next
	// message; the scheduler leaves that domain's new messages to them.
	idle map[string]int

	mu       sync.Mutex
	running  bool
	stop     context.CancelFunc
	inflight map[job]bool
	perDom   map[string]int
	total    int
	tlsFail  map[string]time.Time // host → last failed STARTTLS
	hosts    map[netip.Addr]*hostState
	workers  sync.WaitGroup
	bounceMu sync.Mutex
	sched    sync.WaitGroup
	closed   bool
}

// Open opens (creating) the queue database and spool in opts.DataDir and
// removes spool files that never got a database row (an Enqueue that did
// not return). It does not start delivering: call Start.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if opts.DataDir == "" {
		return nil, errors.New("queue: no data directory")
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("queue: hostname: %w", err)
		}
		opts.Hostname = h
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Dial == nil {
		d := &net.Dialer{Timeout: DefaultDialTimeout}
		opts.Dial = d.DialContext
	}
	if opts.RemotePort == 0 {
		opts.RemotePort = DefaultRemotePort
	}
	if opts.TLS == nil {
		opts.TLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	}
	if opts.Expiry <= 0 {
		opts.Expiry = DefaultExpiry
	}
	if opts.DelayWarning == 0 {
		opts.DelayWarning = DefaultDelayWarning
	}
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxPerDomain <= 0 {
		opts.MaxPerDomain = DefaultMaxPerDomain
	}
	if opts.MaxPerHost <= 0 {
		opts.MaxPerHost = DefaultMaxPerHost
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	q := &Queue{
		opts:     opts,
		log:      opts.Logger,
		spoolDir: filepath.Join(opts.DataDir, "queue"),
		tmpDir:   filepath.Join(opts.DataDir, "queue", "tmp"),
		kick:     make(chan struct{}, 1),
		recycled: make(chan string, maxRecycled),
		enqueued: map[string]chan struct{}{},
		idle:     map[string]int{},
		inflight: make(map[job]bool),
		perDom:   make(map[string]int),
		tlsFail:  make(map[string]time.Time),
		hosts:    make(map[netip.Addr]*hostState),
	}
	if err := os.MkdirAll(q.tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	// The database holds DKIM private keys: create it owner-only before
	// SQLite does (its -wal and -shm files copy the main file's mode).
	dbPath := filepath.Join(opts.DataDir, "queue.sqlite")
	if f, err := os.OpenFile(dbPath, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	if err := os.Chmod(dbPath, 0o600); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	db, err := sqlitedb.Open(ctx, dbPath, migrations, sqlitedb.Options{})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q.db = db
	q.dbPath = dbPath
	q.st = sqliteStore{q}
	q.dkim = dkim.NewKeys(db, opts.Now)
	if opts.Postgres != nil {
		node := opts.Node
		if node == "" {
			// Unique per process: several nodes may share a hostname
			// (behind one name) or run on one machine.
			host, _ := os.Hostname()
			node = host + "-" + newID()[:8]
		}
		pg, err := openPG(ctx, opts.Postgres, node, opts.Lease)
		if err != nil {
			db.Close()
			return nil, err
		}
		pg.perDomain = opts.MaxPerDomain
		q.st = pgBackend{pg, q}
		// The signing keys are shared too: a key made on one node signs
		// on all.
		if q.dkim, err = dkim.OpenPostgresKeys(ctx, opts.Postgres, opts.Now); err != nil {
			db.Close()
			return nil, fmt.Errorf("queue: %w", err)
		}
		var left int
		if err := db.Read.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&left); err == nil && left > 0 {
			q.log.Warn("queue: messages left in queue.sqlite are not delivered while the queue is in PostgreSQL", "messages", left)
		}
		if !opts.Shared {
			// Claims this node held before a restart are void (no
			// attempt of this process holds them): expired, so that
			// any node takes them over at once and retries.
			if _, err := opts.Postgres.Exec(ctx, `UPDATE queue_claims SET lease_until = '-infinity' WHERE node = $1`, node); err != nil {
				db.Close()
				return nil, fmt.Errorf("queue: %w", err)
			}
		}
	}
	if opts.Shared {
		return q, nil
	}
	if err := q.reconcile(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return q, nil
}

var migrations = []sqlitedb.Migration{
	sqlitedb.Exec(
		`CREATE TABLE messages (
			id        TEXT PRIMARY KEY,
			sender    TEXT NOT NULL,            -- '' is the null sender <>
			size      INTEGER NOT NULL,
			created   INTEGER NOT NULL,         -- unix nanoseconds
			eightbit  INTEGER NOT NULL DEFAULT 0,
			smtputf8  INTEGER NOT NULL DEFAULT 0,
			kind      TEXT NOT NULL DEFAULT '', -- 'dsn' for our own reports
			dkim      TEXT NOT NULL DEFAULT '', -- DKIM-Signature fields to prepend
			warned    INTEGER NOT NULL DEFAULT 0
		)`,
		`CREATE TABLE recipients (
			message_id   TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
			rcpt         TEXT NOT NULL,
			domain       TEXT NOT NULL,
			state        TEXT NOT NULL DEFAULT 'pending', -- pending, delivered, failed
			attempts     INTEGER NOT NULL DEFAULT 0,
			next_attempt INTEGER NOT NULL,
			last_attempt INTEGER NOT NULL DEFAULT 0,
			reply        TEXT NOT NULL DEFAULT '',
			remote       TEXT NOT NULL DEFAULT '',
			dsn_sent     INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (message_id, rcpt)
		)`,
		`CREATE INDEX recipients_due ON recipients(state, next_attempt)`,
		`CREATE INDEX messages_created ON messages(created)`,
		`CREATE TABLE dkim_keys (
			domain      TEXT NOT NULL,
			selector    TEXT NOT NULL,
			algorithm   TEXT NOT NULL,   -- 'ed25519' or 'rsa'
			private_key BLOB NOT NULL,   -- PKCS #8 DER
			created     INTEGER NOT NULL,
			PRIMARY KEY (domain, selector)
		)`,
	),
	// 2: due recipients by destination, for connection reuse.
	sqlitedb.Exec(`CREATE INDEX recipients_domain_due ON recipients(domain, state, next_attempt)`),
	// 3: a message of up to inlineMax bytes is kept in its row, not a
	// spool file (NULL: in queue/<id>).
	sqlitedb.Exec(`ALTER TABLE messages ADD COLUMN body BLOB`),
}

// DKIM returns the signing keys, which live in the queue's database.
func (q *Queue) DKIM() *dkim.Keys { return q.dkim }

// Close closes the database. Call Shutdown first if Start was called.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	q.mu.Unlock()
	q.closeReaper()
	q.dkim.Close()
	if q.opts.Postgres != nil && q.opts.ClosePostgres {
		defer q.opts.Postgres.Close()
	}
	return q.db.Close()
}

// reconcile removes spool files without a row (their Enqueue never
// returned, so nobody was told the message was accepted) and leftovers in
// tmp/. Rows whose spool file vanished are kept and fail at delivery with a
// DSN, so the loss is reported rather than silent.
func (q *Queue) reconcile(ctx context.Context) error {
	tmps, _ := os.ReadDir(q.tmpDir)
	for _, e := range tmps {
		os.Remove(filepath.Join(q.tmpDir, e.Name()))
	}
	entries, err := os.ReadDir(q.spoolDir)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		id := e.Name()
		var one int
		err := q.db.Read.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			q.log.Warn("queue: removing spool file without a queue entry", "queueid", id)
			os.Remove(filepath.Join(q.spoolDir, id))
		} else if err != nil {
			return fmt.Errorf("queue: reconcile: %w", err)
		}
	}
	return nil
}

// newID returns a fresh queue id: 16 lower-case hex digits.
func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ParseID checks an id typed by an administrator.
func ParseID(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 16 {
		return "", ErrBadID
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", ErrBadID
		}
	}
	return s, nil
}

func (q *Queue) spoolPath(id string) string { return filepath.Join(q.spoolDir, id) }

// Enqueue stores a message for delivery to rcpts with envelope sender from
// ("" is the null sender). The message is durable in queue.sqlite (its
// row, or its row and its spool file) before it returns, so the caller may
// answer 250. Bare LF line endings are turned into CRLF. Messages whose
// From domain has DKIM keys are signed here, once.
func (q *Queue) Enqueue(ctx context.Context, from string, rcpts []string, body io.Reader) (string, error) {
	return q.enqueue(ctx, from, rcpts, body, "")
}

func (q *Queue) enqueue(ctx context.Context, from string, rcpts []string, body io.Reader, kind string) (id string, err error) {
	if len(rcpts) == 0 {
		return "", ErrNoRcpts
	}
	if from != "" {
		if _, ok := mailaddr.Domain(from); !ok {
			return "", fmt.Errorf("%w: sender %q", ErrBadAddress, from)
		}
	}
	type rc struct{ addr, domain string }
	var list []rc
	seen := make(map[string]bool)
	smtputf8 := !mailaddr.IsASCII(from)
	for _, r := range rcpts {
		d, ok := mailaddr.Domain(r)
		if !ok {
			return "", fmt.Errorf("%w: recipient %q", ErrBadAddress, r)
		}
		addr := r[:strings.LastIndexByte(r, '@')+1] + d
		if seen[addr] {
			continue
		}
		seen[addr] = true
		list = append(list, rc{addr, d})
		if !mailaddr.IsASCII(addr) {
			smtputf8 = true
		}
	}

	id = newID()
	rows := &queuedRows{id: id, from: from, created: q.opts.Now().UnixNano(), utf8: smtputf8, kind: kind}
	for _, r := range list {
		rows.rcpts = append(rows.rcpts, [2]string{r.addr, r.domain})
	}
	if err := q.st.put(ctx, rows, body); err != nil {
		return "", err
	}
	q.log.Info("queued", "queueid", id, "from", from, "rcpts", len(list), "size", rows.size)
	q.mu.Lock()
	for _, r := range list {
		if ch := q.enqueued[r.domain]; ch != nil {
			close(ch)
			delete(q.enqueued, r.domain)
		}
	}
	q.mu.Unlock()
	q.wake()
	return id, nil
}

// putSpool stores a message in queue.sqlite: a message of up to inlineMax
// bytes (most mail) in its row, committed with it in one WAL fsync; a
// larger one in a spool file, written and renamed into place, the file and
// the directory fsync'd together, then the rows committed with those of
// concurrent Enqueues.
func (q *Queue) putSpool(ctx context.Context, rows *queuedRows, body io.Reader) (err error) {
	sink := &spoolSink{q: q, id: rows.id, mem: inlineBufs.Get().(*[]byte)}
	*sink.mem = (*sink.mem)[:0]
	defer func() {
		if sink.f != nil {
			sink.f.Close()
		}
		if err != nil && sink.tmp != "" {
			os.Remove(sink.tmp)
		}
		inlineBufs.Put(sink.mem)
	}()
	bw := spoolWriters.Get().(*bufio.Writer)
	bw.Reset(sink)
	defer func() {
		bw.Reset(nil)
		spoolWriters.Put(bw)
	}()
	cw := &crlfWriter{w: bw, limit: q.opts.MaxMessageSize}
	buf := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(cw, body, *buf)
	copyBufs.Put(buf)
	if err != nil {
		if errors.Is(err, ErrTooBig) {
			return err
		}
		return fmt.Errorf("queue: spool: %w", err)
	}
	if err := cw.finish(); err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	// DKIM signing reads the body back (the header decides the signing
	// domain); the signature is stored in the row and prepended at
	// delivery, so the body stays the message as accepted.
	rows.size, rows.eightbit = cw.n, cw.eightbit
	if sink.f == nil {
		mem := *sink.mem
		if rows.dkim, err = q.sign(ctx, bytes.NewReader(mem), rows.from); err != nil {
			return err
		}
		rows.body = mem
		if err := q.commitRows(ctx, rows); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		return nil
	}
	f := sink.f
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	if rows.dkim, err = q.sign(ctx, f, rows.from); err != nil {
		return err
	}
	final := q.spoolPath(rows.id)
	if err := os.Rename(sink.tmp, final); err != nil {
		return fmt.Errorf("queue: spool: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(final)
		}
	}()
	// The file's fsync and its directory's run at once: only the row,
	// committed after both, makes the message queued, and a crash before
	// it leaves a spool file without a row, which start-up removes.
	dirSynced := q.spoolSync.Start(q.spoolDir)
	serr := f.Sync()
	if cerr := f.Close(); serr == nil {
		serr = cerr
	}
	sink.f = nil
	if derr := dirSynced(); serr == nil {
		serr = derr
	}
	if serr != nil {
		return fmt.Errorf("queue: spool: %w", serr)
	}
	if err := q.commitRows(ctx, rows); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// inlineMax is the largest message kept in its queue.sqlite row rather than
// a spool file.
const inlineMax = 64 << 10

// inlineBufs hold a message on its way into its row.
var inlineBufs = sync.Pool{New: func() any { b := make([]byte, 0, inlineMax); return &b }}

// spoolSink keeps what it is given in mem while that is at most inlineMax
// bytes; past that it opens a spool file in tmp/ and writes everything
// there.
type spoolSink struct {
	q   *Queue
	id  string
	mem *[]byte
	tmp string   // the spool file's path in tmp/ ("": none yet)
	f   *os.File // the spool file (nil: the message is in mem)
}

func (s *spoolSink) Write(p []byte) (int, error) {
	if s.f == nil && s.tmp == "" {
		if len(*s.mem)+len(p) <= inlineMax {
			*s.mem = append(*s.mem, p...)
			return len(p), nil
		}
		tmp, f, err := s.q.spoolTemp(s.id)
		if err != nil {
			return 0, err
		}
		s.tmp, s.f = tmp, f
		if _, err := f.Write(*s.mem); err != nil {
			return 0, err
		}
		*s.mem = (*s.mem)[:0]
	}
	if s.f == nil {
		return 0, os.ErrClosed
	}
	return s.f.Write(p)
}

// spoolTemp opens a file in tmp/ for a new spool file: an emptied one the
// reaper recycled (reap.go) when there is one, else tmp/<id>, created.
func (q *Queue) spoolTemp(id string) (string, *os.File, error) {
	for {
		select {
		case path := <-q.recycled:
			f, err := regfile.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0o600)
			if err == nil {
				return path, f, nil
			}
			os.Remove(path)
			continue
		default:
		}
		path := filepath.Join(q.tmpDir, id)
		f, err := regfile.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		return path, f, err
	}
}

// sign returns DKIM-Signature fields for the spool file f, one per key of
// its signing domain (dkim.SigningDomain); "" when that domain has no key.
func (q *Queue) sign(ctx context.Context, f io.ReadSeeker, envFrom string) (string, error) {
	domain := dkim.SigningDomain(ReadHeader(f, maxHeaderBytes), envFrom)
	if domain == "" {
		return "", nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", fmt.Errorf("queue: spool: %w", err)
	}
	keys, err := q.dkim.List(ctx, domain)
	if err != nil || len(keys) == 0 {
		return "", err
	}
	sig, err := dkim.Sign(f, keys)
	if err != nil {
		return "", fmt.Errorf("queue: %w", err)
	}
	return sig, nil
}

// spoolWriters are Enqueue's 64 KiB write buffers, reused.
var spoolWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// copyBufs are Enqueue's copy buffers, reused.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// crlfWriter copies a message turning bare LF into CRLF, counting bytes,
// noting 8-bit content and enforcing a size limit. finish adds a final CRLF
// when the message does not end with one.
type crlfWriter struct {
	w        *bufio.Writer
	n        int64
	limit    int64
	prevCR   bool
	last     byte
	eightbit bool
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	// Runs between line feeds go to the buffer whole: a byte at a time
	// was most of an Enqueue's CPU.
	done := 0
	for done < len(p) {
		rest := p[done:]
		run := rest
		lf := bytes.IndexByte(rest, '\n')
		if lf >= 0 {
			run = rest[:lf]
		}
		if len(run) > 0 {
			if c.limit > 0 && c.n+int64(len(run)) > c.limit {
				return done, ErrTooBig
			}
			if !c.eightbit && !isASCII(run) {
				c.eightbit = true
			}
			if _, err := c.w.Write(run); err != nil {
				return done, err
			}
			c.n += int64(len(run))
			c.last = run[len(run)-1]
			c.prevCR = c.last == '\r'
			done += len(run)
		}
		if lf < 0 {
			break
		}
		if !c.prevCR {
			if err := c.put('\r'); err != nil {
				return done, err
			}
		}
		if err := c.put('\n'); err != nil {
			return done, err
		}
		c.prevCR = false
		done++
	}
	return len(p), nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func (c *crlfWriter) put(b byte) error {
	c.n++
	if c.limit > 0 && c.n > c.limit {
		return ErrTooBig
	}
	c.last = b
	return c.w.WriteByte(b)
}

func (c *crlfWriter) finish() error {
	if c.n > 0 && c.last != '\n' {
		if c.last != '\r' {
			if err := c.put('\r'); err != nil {
				return err
			}
		}
		if err := c.put('\n'); err != nil {
			return err
		}
	}
	return c.w.Flush()
}
