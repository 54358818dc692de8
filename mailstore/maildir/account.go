package maildir

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthouse/posthouse/internal/durable"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// File and directory names inside an account directory.
const (
	indexFile       = "index.sqlite"
	maildirDir      = "maildir"
	mailboxMetaFile = "posthouse-mailbox.json"
)

// account is the state every handle on one account shares: the index, the
// writer lock, watchers and the maildrop lock.
type account struct {
	store *Store
	name  string
	dir   string // absolute account directory
	log   *slog.Logger

	ready   chan struct{} // closed when open finished
	openErr error
	refs    int         // under store.mu
	gone    atomic.Bool // removed, or the store closed: handles get ErrClosed

	db        *sqlitedb.DB
	indexInfo os.FileInfo // of index.sqlite when opened, to notice removal by another process

	// wmu makes this the one writer of the account: write transactions
	// and the delivery of their events happen under it, so events are in
	// commit order.
	wmu sync.Mutex
	// used is the sum of message sizes, kept under wmu and read atomically.
	used atomic.Int64
	// unlinked are trash paths already removed from disk whose rows the
	// next write transaction deletes (under wmu).
	unlinked []string
	relaxed  relaxedState // synchronous mode of relaxed commits (relaxed.go)
	// unlink removes relaxed commits' trash in the background (relaxed.go).
	unlink unlinker
	// fold checkpoints the WAL into the index once writes pause
	// (walsize.go); it, foldArmed (it waits) and lastWrite (the last
	// commit's time) are under wmu.
	fold      *time.Timer
	foldArmed bool
	lastWrite time.Time

	stmtMu sync.Mutex // guards db for readers

	watchMu  sync.Mutex
	watchSeq uint64
	watchers atomic.Pointer[[]watcher]

	inflightM sync.Mutex
	inflight  map[string]struct{} // files renamed into place, row not yet committed

	// dirSync shares directory fsyncs between concurrent deliveries.
	dirSync durable.DirSyncers
	// spares are empty files ready in the tmp/ of warm mailboxes (spares.go).
	spares sparePool
	// j tracks the account's journaled messages (journal.go).
	j journalState

	snapMu    sync.Mutex
	snapCache []cachedSnap // oldest first (messages.go)

	// Group commit of appends (deliver.go).
	gcMu     sync.Mutex
	gcLeader bool
	gcQueue  []*pendingAppend

	dropMu     sync.Mutex
	dropLocked bool

	// rebuild is set while open rebuilds a lost or damaged index (on the
	// opening goroutine, before any handle exists).
	rebuild *rebuildState
	// forced, set before open, makes open treat the index as damaged
	// (CheckAccount found it so), with this reason.
	forced string
}

type watcher struct {
	id uint64
	fn func(mailstore.Event)
}

func newAccount(s *Store, name string) *account {
	return &account{
		store:    s,
		name:     name,
		dir:      filepath.Join(s.dir, accountDirName(name)),
		log:      s.log.With("user", name),
		ready:    make(chan struct{}),
		inflight: make(map[string]struct{}),
	}
}

func (a *account) maildir() string { return filepath.Join(a.dir, maildirDir) }

func (a *account) mailboxDir(id int64) string {
	return filepath.Join(a.dir, maildirDir, strconv.FormatInt(id, 10))
}

// open creates or opens the account's storage. A missing or corrupt index
// is rebuilt from the Maildir tree; reconcile runs on the first open in the
// process.
func (a *account) open(ctx context.Context, reconcile bool) error {
	if err := os.MkdirAll(a.maildir(), 0o700); err != nil {
		return fmt.Errorf("maildir: create account %s: %w", a.name, err)
	}
	addr := filepath.Join(a.dir, addressFile)
	if b, err := os.ReadFile(addr); err != nil {
		if err := durable.WriteFile(addr, []byte(a.name+"\n"), 0o600); err != nil {
			return fmt.Errorf("maildir: create account %s: %w", a.name, err)
		}
		durable.SyncDir(a.store.dir)
	} else if strings.TrimSpace(string(b)) != a.name {
		return fmt.Errorf("maildir: account directory %s belongs to %q: %w", a.dir, strings.TrimSpace(string(b)), mailstore.ErrBadAccountName)
	}

	idx := filepath.Join(a.dir, indexFile)
	fi, statErr := os.Stat(idx)
	missing := errors.Is(statErr, os.ErrNotExist)
	var rb *rebuildState // non-nil: the index is rebuilt from the Maildir
	switch {
	case missing && a.hasMailboxDirs():
		rb = &rebuildState{reason: "index missing", start: time.Now()}
		a.log.Error("index missing; rebuilding it from the Maildir")
		// A -wal or -shm left without its database belongs to no
		// index the new one could use; keep it aside too.
		if _, err := a.moveIndexAside(idx); err != nil {
			return err
		}
	case statErr == nil && fi.Mode().IsRegular() && fi.Size() == 0 && a.hasMailboxDirs():
		// SQLite would take an empty file for a new database: the index
		// was truncated.
		aside, err := a.moveIndexAside(idx)
		if err != nil {
			return err
		}
		rb = &rebuildState{reason: "index empty (truncated)", aside: aside, start: time.Now()}
		a.log.Error("index empty; moved it aside and rebuilding it from the Maildir", "damaged_index_kept_as", aside)
	}
	var db *sqlitedb.DB
	var err error
	if a.forced != "" && rb == nil && !missing {
		err = fmt.Errorf("%w: %s", errCorrupt, a.forced)
	} else {
		db, err = sqlitedb.Open(ctx, idx, migrations, indexOptions)
		if err == nil && !missing && rb == nil && reconcile {
			err = quickCheck(ctx, db)
			if err != nil {
				db.Close()
			}
		}
	}
	if err != nil {
		if !isCorrupt(err) {
			return fmt.Errorf("maildir: open index of %s: %w", a.name, err)
		}
		start := time.Now()
		aside, aerr := a.moveIndexAside(idx)
		if aerr != nil {
			return aerr
		}
		rb = &rebuildState{reason: "index corrupt: " + err.Error(), aside: aside, start: start}
		rb.salvage = readSalvage(ctx, aside)
		a.log.Error("index corrupt; moved it aside and rebuilding it from the Maildir, keeping what it still says",
			"err", err, "damaged_index_kept_as", aside, "mailboxes_readable", len(rb.salvage.mailboxes))
		db, err = sqlitedb.Open(ctx, idx, migrations, indexOptions)
		if err != nil {
			return fmt.Errorf("maildir: open index of %s: %w", a.name, err)
		}
	}
	a.db = db
	if err := a.limitWAL(ctx); err != nil {
		a.close()
		return fmt.Errorf("maildir: open index of %s: %w", a.name, err)
	}
	if rb != nil {
		a.rebuild = rb
		defer func() { a.rebuild = nil }()
		if err := a.rebuildMailboxes(ctx, rb); err != nil {
			a.close()
			return err
		}
		reconcile = true
	}
	if err := a.ensureDefaults(ctx); err != nil {
		a.close()
		return err
	}
	if err := a.loadUsage(ctx); err != nil {
		a.close()
		return err
	}
	if reconcile {
		if err := a.recoverJournal(ctx); err != nil {
			a.close()
			return err
		}
		if err := a.reconcile(ctx); err != nil {
			a.close()
			return err
		}
	}
	if rb != nil {
		if err := a.finishRebuild(ctx, rb); err != nil {
			a.close()
			return err
		}
	}
	fi, err = os.Stat(idx)
	if err != nil {
		a.close()
		return fmt.Errorf("maildir: open index of %s: %w", a.name, err)
	}
	a.indexInfo = fi
	return nil
}

// stale reports whether the account's index is no longer the file this
// state opened: another process (posthouse admin) removed the account, and
// perhaps a new one was created since. A stale state must not take mail.
func (a *account) stale() bool {
	fi, err := os.Stat(filepath.Join(a.dir, indexFile))
	return err != nil || !os.SameFile(fi, a.indexInfo)
}

func quickCheck(ctx context.Context, db *sqlitedb.DB) error {
	var res string
	if err := db.Write.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("%w: quick_check: %s", errCorrupt, res)
	}
	return nil
}

var errCorrupt = errors.New("database disk image is malformed")

func isCorrupt(err error) bool {
	// A failed upgrade left the index as it was (sqlitedb keeps a copy
	// too): never rebuild it, which would give mailboxes new UIDVALIDITYs.
	if _, ok := errors.AsType[*sqlitedb.MigrationError](err); ok {
		return false
	}
	if errors.Is(err, errCorrupt) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "malformed") || strings.Contains(s, "not a database") ||
		strings.Contains(s, "corrupt")
}

func (a *account) loadUsage(ctx context.Context) error {
	var used sql.NullInt64
	if err := a.db.Read.QueryRowContext(ctx, `SELECT sum(bytes) FROM mailboxes`).Scan(&used); err != nil {
		return fmt.Errorf("maildir: usage of %s: %w", a.name, err)
	}
	a.used.Store(used.Int64)
	return nil
}

// ensureDefaults creates the DefaultMailboxes that are missing, which is
// all of them on an account's first open.
func (a *account) ensureDefaults(ctx context.Context) error {
	var n int
	if err := a.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes`).Scan(&n); err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	if n > 0 {
		// An existing account keeps what its user made of it, except
		// that INBOX always exists.
		var inbox int
		if err := a.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM mailboxes WHERE name = ?`, mailstore.Inbox).Scan(&inbox); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
		if inbox > 0 {
			return nil
		}
	}
	return a.write(ctx, func(w *wtx) error {
		for _, d := range mailstore.DefaultMailboxes {
			if n > 0 && d.Name != mailstore.Inbox {
				continue
			}
			if _, err := w.createMailbox(d.Name, d.SpecialUse, 0); err != nil {
				return err
			}
			if _, err := w.Exec(`INSERT OR IGNORE INTO subscriptions (name) VALUES (?)`, d.Name); err != nil {
				return err
			}
		}
		return nil
	})
}

// close closes the index. Handles see ErrClosed only if gone is set.
func (a *account) close() error {
	a.spares.close()
	a.settleJournal()
	a.settleUnlinks(true)
	a.wmu.Lock()
	defer a.wmu.Unlock()
	if a.db == nil {
		return nil
	}
	a.stopFlush()
	if a.fold != nil {
		a.fold.Stop()
		a.foldArmed = false
	}
	a.stmtMu.Lock()
	db := a.db
	a.db = nil
	a.stmtMu.Unlock()
	return db.Close()
}

// readTx runs fn in a read transaction: one consistent view of the index.
// The transaction is BEGIN and ROLLBACK on a pooled connection, and its
// queries see a Quiet context: database/sql starts no goroutine for it
// (sqlitedb.Quiet), while an ended ctx still interrupts SQLite. Its
// statements are go-sqlite3's, kept prepared per connection by text.
func (a *account) readTx(ctx context.Context, fn func(r *rtx) error) error {
	a.stmtMu.Lock()
	db := a.db
	a.stmtMu.Unlock()
	if db == nil || a.gone.Load() {
		return mailstore.ErrClosed
	}
	c, err := db.Read.Conn(ctx)
	if err != nil {
		return a.wrapErr(err)
	}
	defer c.Close()
	qctx := sqlitedb.Quiet(ctx)
	if _, err := c.ExecContext(qctx, `BEGIN`); err != nil {
		return a.wrapErr(err)
	}
	err = fn(&rtx{c: c, a: a, ctx: qctx})
	if rerr := sqlitedb.EndTx(qctx, c, `ROLLBACK`); err == nil {
		err = rerr
	}
	return a.wrapErr(err)
}

// readValues runs a one-column query in a read transaction.
func readValues[T any](ctx context.Context, a *account, q string, args ...any) ([]T, error) {
	var out []T
	err := a.readTx(ctx, func(r *rtx) error {
		rows, err := r.query(q, args...)
		out, err = sqlitedb.Collect(rows, err, sqlitedb.Value[T])
		return err
	})
	return out, err
}

// mailboxIDs lists the account's mailbox ids in ascending order.
func (a *account) mailboxIDs(ctx context.Context) ([]int64, error) {
	return readValues[int64](ctx, a, `SELECT id FROM mailboxes ORDER BY id`)
}

// wrapErr turns errors caused by a concurrent close into ErrClosed.
func (a *account) wrapErr(err error) error {
	if err != nil && a.gone.Load() && !errors.Is(err, mailstore.ErrClosed) {
		return fmt.Errorf("%w (%v)", mailstore.ErrClosed, err)
	}
	return err
}

// rtx is a read transaction (readTx).
type rtx struct {
	c   *sql.Conn
	a   *account
	ctx context.Context // Quiet
}

func (r *rtx) query(q string, args ...any) (*sql.Rows, error) {
	return r.c.QueryContext(r.ctx, q, args...)
}

func (r *rtx) queryRow(q string, args ...any) *sql.Row {
	return r.c.QueryRowContext(r.ctx, q, args...)
}

// wtx is a write transaction with what happens after it commits.
type wtx struct {
	c       *sql.Conn
	a       *account
	ctx     context.Context // Quiet
	events  []mailstore.Event
	modseqs map[int64]uint64
	// trash paths (relative to the account directory) to remove once
	// committed; their rows are in the trash table.
	trash     []string
	usedDelta int64
	// synced is how many of the account's synced journal rows this
	// transaction deletes (deleteSynced).
	synced int
	// wrote: the transaction certainly changes the index, so a durable
	// commit of it fsyncs the WAL (a commit that changes nothing writes
	// nothing); the journal counts only such commits as flushes.
	wrote bool
}

// Exec, Query and QueryRow run statements by text: go-sqlite3 keeps them
// prepared on the write connection (sqlitedb's statement cache).
func (w *wtx) Exec(q string, args ...any) (sql.Result, error) {
	return w.c.ExecContext(w.ctx, q, args...)
}

func (w *wtx) Query(q string, args ...any) (*sql.Rows, error) {
	return w.c.QueryContext(w.ctx, q, args...)
}

func (w *wtx) QueryRow(q string, args ...any) *sql.Row {
	return w.c.QueryRowContext(w.ctx, q, args...)
}

// bump gives the mailbox its next modseq, once per transaction: every
// change of one transaction shares it, so an event's ModSeq is never above
// what a Snapshot taken after the commit reports.
func (w *wtx) bump(mailbox int64) (uint64, error) {
	if m, ok := w.modseqs[mailbox]; ok {
		return m, nil
	}
	var m uint64
	err := w.QueryRow(`UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq`, mailbox).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, mailstore.ErrNoSuchMailbox
	}
	if err != nil {
		return 0, err
	}
	if w.modseqs == nil {
		w.modseqs = make(map[int64]uint64)
	}
	w.modseqs[mailbox] = m
	return m, nil
}

func (w *wtx) event(e mailstore.Event) { w.events = append(w.events, e) }

// addTrash records a file or directory to delete after commit.
func (w *wtx) addTrash(rel string) error {
	if _, err := w.Exec(`INSERT OR IGNORE INTO trash (path) VALUES (?)`, rel); err != nil {
		return err
	}
	w.trash = append(w.trash, rel)
	return nil
}

// write runs fn in the account's write transaction. After the commit it
// publishes fn's events, in commit order, on this goroutine, then removes
// trashed files outside the lock (a relaxed commit's in the background).
func (a *account) write(ctx context.Context, fn func(w *wtx) error) error {
	return a.writeTx(ctx, true, fn)
}

// writeTx is write, durable on return or relaxed (relaxed.go).
func (a *account) writeTx(ctx context.Context, durable bool, fn func(w *wtx) error) error {
	a.wmu.Lock()
	if a.db == nil || a.gone.Load() {
		a.wmu.Unlock()
		return mailstore.ErrClosed
	}
	var flush uint64 // a durable commit that writes ends with a device flush (journal.go)
	if durable {
		flush = a.flushBegin()
	}
	unlinked := a.unlinked
	w, err := a.commitTx(ctx, durable, unlinked, fn)
	if err != nil {
		a.wmu.Unlock()
		return a.wrapErr(err)
	}
	if durable && w.wrote {
		a.flushEnd(flush)
	}
	a.committed(durable)
	a.armFold()
	a.forgetSynced(w.synced)
	if len(unlinked) > 0 {
		a.unlinked = a.unlinked[len(unlinked):]
	}
	a.used.Add(w.usedDelta)
	if ws := a.watchers.Load(); ws != nil {
		for _, e := range w.events {
			for _, wt := range *ws {
				wt.fn(e)
			}
		}
	}
	a.wmu.Unlock()

	if len(w.trash) > 0 {
		if durable {
			a.removeTrash(w.trash)
		} else {
			a.removeTrashAsync(w.trash)
		}
	}
	return nil
}

// commitTx runs fn in a transaction and commits it; the caller holds wmu.
// The transaction is BEGIN IMMEDIATE and COMMIT on the write pool's one
// connection, its statements under a Quiet context: database/sql starts no
// goroutine for it (a sql.Tx watches its context with one, and so does
// every query under a cancellable context). Before fn it deletes the rows
// of trash already unlinked and, when durable, of synced journal entries.
func (a *account) commitTx(ctx context.Context, durable bool, unlinked []string, fn func(w *wtx) error) (*wtx, error) {
	c, err := a.db.Write.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("maildir: begin: %w", err)
	}
	defer c.Close()
	qctx := sqlitedb.Quiet(ctx)
	if err := a.setSynchronous(qctx, c, durable); err != nil {
		return nil, fmt.Errorf("maildir: synchronous: %w", err)
	}
	if _, err := c.ExecContext(qctx, `BEGIN IMMEDIATE`); err != nil {
		return nil, fmt.Errorf("maildir: begin: %w", err)
	}
	w := &wtx{c: c, a: a, ctx: qctx}
	err = w.prelude(durable, unlinked)
	if err == nil {
		err = fn(w)
	}
	if err != nil {
		sqlitedb.EndTx(qctx, c, `ROLLBACK`)
		return nil, err
	}
	if err := sqlitedb.EndTx(qctx, c, `COMMIT`); err != nil {
		return nil, fmt.Errorf("maildir: commit: %w", err)
	}
	return w, nil
}

// prelude deletes, first in a write transaction, the rows of trash already
// unlinked and, in a durable one, of synced journal entries (relaxed
// writes, flags and expunges, stay small: those rows go with durable ones,
// or the WAL's fold).
func (w *wtx) prelude(durable bool, unlinked []string) error {
	if durable {
		if err := w.deleteSynced(); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
	for _, p := range unlinked {
		if _, err := w.Exec(`DELETE FROM trash WHERE path = ?`, p); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
	}
	return nil
}

// removeTrash deletes committed trash from disk; the rows go with the next
// write transaction (or reconciliation).
func (a *account) removeTrash(paths []string) {
	dirs, done := a.unlinkTrash(paths)
	for d := range dirs {
		durable.SyncDir(d)
	}
	a.wmu.Lock()
	a.unlinked = append(a.unlinked, done...)
	a.wmu.Unlock()
}

// unlinkTrash removes trash paths from disk and returns their directories
// and the paths removed.
func (a *account) unlinkTrash(paths []string) (dirs map[string]bool, done []string) {
	dirs = map[string]bool{}
	for _, p := range paths {
		full := filepath.Join(a.dir, filepath.FromSlash(p))
		if err := os.RemoveAll(full); err != nil {
			a.log.Error("remove expunged file", "path", p, "err", err)
			continue
		}
		dirs[filepath.Dir(full)] = true
		done = append(done, p)
	}
	return dirs, done
}

// addWatcher registers fn; the returned func removes it.
func (a *account) addWatcher(fn func(mailstore.Event)) func() {
	a.watchMu.Lock()
	a.watchSeq++
	id := a.watchSeq
	old := a.watchers.Load()
	var l []watcher
	if old != nil {
		l = append(l, *old...)
	}
	l = append(l, watcher{id: id, fn: fn})
	a.watchers.Store(&l)
	a.watchMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.watchMu.Lock()
			defer a.watchMu.Unlock()
			old := a.watchers.Load()
			if old == nil {
				return
			}
			l := make([]watcher, 0, len(*old))
			for _, w := range *old {
				if w.id != id {
					l = append(l, w)
				}
			}
			a.watchers.Store(&l)
		})
	}
}

// lockMaildrop takes the exclusive POP3 lock of the account.
func (a *account) lockMaildrop() (func(), error) {
	a.dropMu.Lock()
	defer a.dropMu.Unlock()
	if a.dropLocked {
		return nil, mailstore.ErrInUse
	}
	a.dropLocked = true
	var once sync.Once
	return func() {
		once.Do(func() {
			a.dropMu.Lock()
			a.dropLocked = false
			a.dropMu.Unlock()
		})
	}, nil
}

// nextUIDValidity hands out UIDVALIDITY values: the current time in seconds,
// or one more than the last value if that is not greater, so a value is never
// reused for a name (RFC 9051 §2.3.1.1), even after DELETE and CREATE.
func (w *wtx) nextUIDValidity() (uint32, error) {
	var last sql.NullString
	err := w.QueryRow(`SELECT value FROM meta WHERE key = 'uidvalidity'`).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	v := uint32(time.Now().Unix())
	if last.Valid {
		l, _ := strconv.ParseUint(last.String, 10, 32)
		if uint32(l) >= v {
			v = uint32(l) + 1
		}
	}
	if v == 0 {
		v = 1
	}
	if _, err := w.Exec(`INSERT INTO meta (key, value) VALUES ('uidvalidity', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, strconv.FormatUint(uint64(v), 10)); err != nil {
		return 0, err
	}
	return v, nil
}

// mailboxMeta is written in each mailbox directory so a lost index can be
// rebuilt with the mailbox's name.
// UIDValidity is the one the mailbox was created with: a rebuild that
// cannot keep the mailbox's UIDs gives it a greater one, never the same.
type mailboxMeta struct {
	Name        string `json:"name"`
	SpecialUse  string `json:"special_use,omitempty"`
	UIDValidity uint32 `json:"uidvalidity,omitempty"`
}

// readMailboxMeta reads a mailbox directory's name file.
func (a *account) readMailboxMeta(id int64) (mailboxMeta, error) {
	var m mailboxMeta
	b, err := os.ReadFile(filepath.Join(a.mailboxDir(id), mailboxMetaFile))
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}

// writeMailboxMeta writes a mailbox's name file; uidValidity 0 keeps the
// value the file holds (a rename).
func (a *account) writeMailboxMeta(id int64, name, specialUse string, uidValidity uint32) {
	if uidValidity == 0 {
		old, _ := a.readMailboxMeta(id)
		uidValidity = old.UIDValidity
	}
	b, _ := json.Marshal(mailboxMeta{Name: name, SpecialUse: specialUse, UIDValidity: uidValidity})
	p := filepath.Join(a.mailboxDir(id), mailboxMetaFile)
	if err := durable.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		a.log.Error("write mailbox name file", "mailbox", name, "err", err)
	}
}

// createMailbox inserts a mailbox row and creates its directories. id 0
// picks a new ID; a non-zero id is used by rebuilds.
func (w *wtx) createMailbox(name, specialUse string, id int64) (mailstore.Mailbox, error) {
	uv, err := w.nextUIDValidity()
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	var newID int64
	if id == 0 {
		err = w.QueryRow(`INSERT INTO mailboxes (name, special_use, uidvalidity) VALUES (?, ?, ?) RETURNING id`, name, specialUse, uv).Scan(&newID)
	} else {
		err = w.QueryRow(`INSERT INTO mailboxes (id, name, special_use, uidvalidity) VALUES (?, ?, ?, ?) RETURNING id`, id, name, specialUse, uv).Scan(&newID)
	}
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE") {
			return mailstore.Mailbox{}, fmt.Errorf("%w: %s", mailstore.ErrMailboxExists, name)
		}
		return mailstore.Mailbox{}, err
	}
	dir := w.a.mailboxDir(newID)
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return mailstore.Mailbox{}, err
		}
	}
	durable.SyncDir(dir)
	durable.SyncDir(w.a.maildir())
	w.a.writeMailboxMeta(newID, name, specialUse, uv)
	if _, err := w.bump(newID); err != nil {
		return mailstore.Mailbox{}, err
	}
	w.event(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: newID, ModSeq: w.modseqs[newID]})
	return mailstore.Mailbox{ID: newID, Name: name, SpecialUse: specialUse, UIDValidity: uv}, nil
}
