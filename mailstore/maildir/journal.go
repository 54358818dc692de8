package maildir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/posthouse/posthouse/internal/durable"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// Journaled deliveries. A message of up to journalMax bytes is not fsynced
// on its way in: its file is written and renamed into cur/ (under a
// journalName), and its bytes go into the index beside its row, in the
// pending table, in the same transaction. That one commit, one WAL fsync,
// makes the message durable, so the caller hears of success after one
// device flush instead of two in a row (the file's fsync, then the commit
// beside the fsync of cur/).
//
// The store's journal then writes the files out in batches, one syncfs(2)
// for every message that arrived in the last journalSyncEvery. A pending row
// goes only once a device flush that began after that sync has ended (a
// durable commit of the account that certainly writes, such as a delivery,
// or the fsync its WAL fold makes when it is idle): on a file system
// without a journal, syncfs leaves the last inode and directory blocks in
// the device's volatile cache (durable.SyncFiles), and a row deleted before
// they are flushed could reach the disk without them. The account's next
// durable write, or its fold, then deletes the row.
// Until then a message is in two places: its file (in the page cache at
// least) and its row's copy. After a crash (the first open in a process)
// recoverJournal rewrites, from the copy, the file of every pending row
// whose message is still there, fsynced, before reconciliation looks at the
// files, whatever the file held; so no acknowledged message is lost or comes
// back torn. A journalName file without a row was never acknowledged (its
// row did not commit) and may hold anything after a power loss:
// reconciliation removes it.
//
// COPY and MOVE hard-link files; a link to a file not yet durable would
// outlive its pending row, so they first wait for the journal to sync
// the files they link (flush). Their own fsync of the target cur/, before
// their commit, then flushes what syncfs wrote.
//
// A syncfs writes out everything dirty on the file system and flushes the
// device, and the commits' WAL fsyncs queue behind it: under imaptest's
// stress, one every 20 ms cost APPEND a quarter of a millisecond against
// one every 100 ms (5.43 against 5.19 ms, three alternating runs each),
// while a single SMTP connection delivered as many messages either way.
const (
	journalMax       = 64 << 10
	journalSyncEvery = 100 * time.Millisecond
	// journalRetry is the pause after a sync that failed before the next
	// attempt; the messages stay safe in the index meanwhile.
	journalRetry = time.Second
)

// journal syncs journaled files in batches for every account of a store.
type journal struct {
	log *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond // on mu: synced or failures changed, or closed
	queue   []journaled
	queued  uint64 // entries ever queued
	synced  uint64 // entries ever queued up to which all are synced
	fails   uint64 // syncs that failed
	lastErr error
	urgent  bool // a flush is waiting
	closed  bool
	wake    chan struct{}
	stop    chan struct{} // closed by close
	done    chan struct{}
}

// journaled is one message file waiting for its sync.
type journaled struct {
	a    *account
	id   int64  // its pending row
	key  string // messagePath, for the account's held set
	path string // absolute path of the file
}

// testHookSyncFiles, set by tests only, replaces durable.SyncFiles.
var testHookSyncFiles func(paths []string) error

func newJournal(log *slog.Logger) *journal {
	j := &journal{log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	j.cond = sync.NewCond(&j.mu)
	go j.run()
	return j
}

// add queues a committed journaled message for its sync.
func (j *journal) add(e journaled) {
	j.mu.Lock()
	first := len(j.queue) == 0
	j.queue = append(j.queue, e)
	j.queued++
	j.mu.Unlock()
	if first {
		// The run loop wakes once per batch: it takes everything
		// queued when it syncs (or, after a failed sync, pokes itself).
		j.poke()
	}
}

func (j *journal) poke() {
	select {
	case j.wake <- struct{}{}:
	default:
	}
}

// flush syncs at once every message queued so far and waits for it. It
// fails if a sync fails meanwhile or the journal is closed first.
func (j *journal) flush(ctx context.Context) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	target, fails := j.queued, j.fails
	if j.synced >= target {
		return nil
	}
	j.urgent = true
	j.poke()
	stop := context.AfterFunc(ctx, func() {
		j.mu.Lock()
		j.cond.Broadcast()
		j.mu.Unlock()
	})
	defer stop()
	for j.synced < target {
		switch {
		case j.fails != fails:
			return fmt.Errorf("maildir: sync message files: %w", j.lastErr)
		case j.closed:
			return fmt.Errorf("maildir: sync message files: store closed")
		case ctx.Err() != nil:
			return ctx.Err()
		}
		j.cond.Wait()
	}
	return nil
}

// close syncs what is queued (one last attempt) and stops the journal.
func (j *journal) close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	close(j.stop)
	j.poke()
	<-j.done
}

func (j *journal) run() {
	defer close(j.done)
	var last time.Time
	for {
		<-j.wake
		j.mu.Lock()
		urgent, closed := j.urgent, j.closed
		j.mu.Unlock()
		if !urgent && !closed {
			// Let a batch gather: one sync per journalSyncEvery at most.
			j.gather(journalSyncEvery - time.Since(last))
		}
		j.mu.Lock()
		batch, target := j.queue, j.queued
		j.queue, j.urgent = nil, false
		closed = j.closed
		j.mu.Unlock()
		err := j.sync(batch)
		last = time.Now()
		j.mu.Lock()
		if err != nil {
			j.queue = append(batch, j.queue...)
			j.fails++
			j.lastErr = err
		} else {
			j.synced = target
		}
		j.cond.Broadcast()
		j.mu.Unlock()
		if closed {
			return
		}
		if err != nil {
			j.log.Error("sync journaled message files; their bytes stay in the index", "files", len(batch), "err", err)
			select {
			case <-time.After(journalRetry):
			case <-j.stop:
			}
			j.poke()
		}
	}
}

// gather waits d, or less if a flush or close comes meanwhile.
func (j *journal) gather(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-j.wake:
			j.mu.Lock()
			urgent, closed := j.urgent, j.closed
			j.mu.Unlock()
			if urgent || closed {
				return
			}
		}
	}
}

// sync makes a batch's files durable and hands each account the pending
// rows its next write may delete.
func (j *journal) sync(batch []journaled) error {
	if len(batch) == 0 {
		return nil
	}
	paths := make([]string, len(batch))
	for i, e := range batch {
		paths[i] = e.path
	}
	sync := durable.SyncFiles
	if testHookSyncFiles != nil {
		sync = testHookSyncFiles
	}
	if err := sync(paths); err != nil {
		return err
	}
	accounts := map[*account]bool{}
	for _, e := range batch {
		e.a.journalSynced(e.key, e.id)
		accounts[e.a] = true
	}
	for a := range accounts {
		// Their pending rows go with the next write, or the WAL's fold.
		a.wmu.Lock()
		if a.db != nil {
			a.armFold()
		}
		a.wmu.Unlock()
	}
	return nil
}

// journalState is an account's side of the journal, under its own lock
// (taken inside wmu, never around it).
type journalState struct {
	mu     sync.Mutex
	held   map[string]int64 // messagePath → pending row, until synced
	synced []syncedRow      // pending rows of synced files, in sync order
	// flushes counts the device flushes begun for the account (durable
	// commits, the fold's fsync); flushed is the highest of them ended. A
	// synced row may be deleted once flushed passes its flushes.
	flushes, flushed uint64
}

// syncedRow is the pending row of a synced file, with the account's
// flushes count when the sync ended.
type syncedRow struct {
	id      int64
	flushes uint64
}

// journalHold records a message's file as not yet durable, before its
// row commits (a COPY that reads the row must find it held).
func (a *account) journalHold(key string, id int64) {
	a.j.mu.Lock()
	if a.j.held == nil {
		a.j.held = map[string]int64{}
	}
	a.j.held[key] = id
	a.j.mu.Unlock()
}

// journalRelease forgets a held file whose row did not commit.
func (a *account) journalRelease(key string) {
	a.j.mu.Lock()
	delete(a.j.held, key)
	a.j.mu.Unlock()
}

// journalSynced moves a synced file's pending row to the rows a write
// deletes once a flush begun from now on has ended.
func (a *account) journalSynced(key string, id int64) {
	a.j.mu.Lock()
	if a.j.held[key] == id {
		delete(a.j.held, key)
	}
	a.j.synced = append(a.j.synced, syncedRow{id: id, flushes: a.j.flushes})
	a.j.mu.Unlock()
}

// flushBegin counts a device flush about to begin (a durable commit, an
// fsync) and returns its number for flushEnd.
func (a *account) flushBegin() uint64 {
	a.j.mu.Lock()
	defer a.j.mu.Unlock()
	a.j.flushes++
	return a.j.flushes
}

// flushEnd records that flush n has ended.
func (a *account) flushEnd(n uint64) {
	a.j.mu.Lock()
	a.j.flushed = max(a.j.flushed, n)
	a.j.mu.Unlock()
}

// journalHeld reports whether any of keys is a file not yet durable.
func (a *account) journalHeld(keys []string) bool {
	a.j.mu.Lock()
	defer a.j.mu.Unlock()
	for _, k := range keys {
		if _, ok := a.j.held[k]; ok {
			return true
		}
	}
	return false
}

// journalBusy reports whether the account has files not yet synced, and
// pending rows of synced files.
func (a *account) journalBusy() (held, synced bool) {
	a.j.mu.Lock()
	defer a.j.mu.Unlock()
	return len(a.j.held) > 0, len(a.j.synced) > 0
}

// deleteSynced deletes, in the caller's write transaction, the pending rows
// of synced files that a flush has covered since; writeTx forgets them
// once it commits (forgetSynced).
func (w *wtx) deleteSynced() error {
	a := w.a
	a.j.mu.Lock()
	var ids []int64
	for _, r := range a.j.synced[w.synced:] {
		if r.flushes >= a.j.flushed {
			break // in sync order: the rest came later
		}
		ids = append(ids, r.id)
	}
	a.j.mu.Unlock()
	for _, id := range ids {
		if _, err := w.Exec(`DELETE FROM pending WHERE id = ?`, id); err != nil {
			return err
		}
	}
	w.synced += len(ids)
	w.wrote = w.wrote || len(ids) > 0
	return nil
}

// releaseSynced deletes every synced file's pending row, when the account
// has no durable write coming to do it (an idle account's fold, a close):
// an fsync of the account's directory first provides the flush the rows
// wait for, then a write (durable or relaxed) deletes them.
func (a *account) releaseSynced(ctx context.Context, durableWrite bool) error {
	n := a.flushBegin()
	if err := durable.SyncDir(a.dir); err != nil {
		return err
	}
	a.flushEnd(n)
	// (A durable writeTx deletes them itself; the call then finds none.)
	return a.writeTx(ctx, durableWrite, func(w *wtx) error { return w.deleteSynced() })
}

func (a *account) forgetSynced(n int) {
	if n == 0 {
		return
	}
	a.j.mu.Lock()
	a.j.synced = a.j.synced[n:]
	a.j.mu.Unlock()
}

// settleJournal, before the account closes, waits for its files to be
// synced and deletes their pending rows, so a clean close leaves none. An
// account removed or retired has nothing to settle.
func (a *account) settleJournal() {
	if a.gone.Load() {
		return
	}
	held, synced := a.journalBusy()
	if held {
		if err := a.store.journal.flush(context.Background()); err != nil {
			a.log.Warn("closing with journaled messages not yet synced; the next start restores them", "err", err)
			return
		}
		_, synced = a.journalBusy()
	}
	if synced {
		if err := a.releaseSynced(context.Background(), true); err != nil {
			a.log.Warn("delete synced journal rows", "err", err)
		}
	}
}

// recoverJournal rewrites the file of every journaled message whose sync
// was not recorded, from the bytes its pending row holds, then deletes the
// pending rows. It runs on an account's first open in a process, before
// reconciliation: after a crash those files may be missing, empty or torn.
func (a *account) recoverJournal(ctx context.Context) error {
	type entry struct {
		id, mailbox int64
		file        string
		live        bool
	}
	var entries []entry
	err := a.readTx(ctx, func(r *rtx) error {
		rows, err := r.query(`SELECT p.id, p.mailbox, p.file, EXISTS (SELECT 1 FROM messages m
			WHERE m.mailbox = p.mailbox AND m.uid = p.uid AND m.file = p.file) FROM pending p ORDER BY p.id`)
		return sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
			var e entry
			if err := row.Scan(&e.id, &e.mailbox, &e.file, &e.live); err != nil {
				return err
			}
			entries = append(entries, e)
			return nil
		})
	})
	if err != nil || len(entries) == 0 {
		return err
	}
	restored := 0
	for _, e := range entries {
		if !e.live {
			continue // expunged or moved since: nothing to restore
		}
		// Written by us, but never trust a path to stay in its mailbox.
		if !strings.HasPrefix(e.file, "cur/") || !filepath.IsLocal(filepath.FromSlash(e.file)) {
			a.log.Error("ignoring journal entry outside the mailbox", "mailbox", e.mailbox, "path", e.file)
			continue
		}
		var body []byte
		if err := a.readTx(ctx, func(r *rtx) error {
			return r.queryRow(`SELECT body FROM pending WHERE id = ?`, e.id).Scan(&body)
		}); err != nil {
			return err
		}
		path := filepath.Join(a.mailboxDir(e.mailbox), filepath.FromSlash(e.file))
		if err := durable.WriteFile(path, body, 0o600); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				// The mailbox's directory is gone: reconciliation
				// recreates it (adoptOrphanDirs) or expunges the row.
				if merr := os.MkdirAll(filepath.Dir(path), 0o700); merr == nil {
					err = durable.WriteFile(path, body, 0o600)
				}
			}
			if err != nil {
				return fmt.Errorf("maildir: restore journaled message %s: %w", e.file, err)
			}
		}
		restored++
	}
	err = a.write(ctx, func(w *wtx) error {
		for _, e := range entries {
			if _, err := w.Exec(`DELETE FROM pending WHERE id = ?`, e.id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("maildir: clear journal: %w", err)
	}
	a.log.Warn("restored journaled messages from the index after an unclean stop", "restored", restored, "entries", len(entries))
	return nil
}

// bodyBufs are the in-memory copies of journaled messages, journalMax
// bytes each, reused.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, journalMax); return &b }}

// spillWriter keeps what it is given in a bodyBufs buffer while it fits;
// past that it writes to f, buffering like a bufio.Writer.
type spillWriter struct {
	f       *os.File
	buf     *[]byte
	spilled bool
}

func (w *spillWriter) Write(b []byte) (int, error) {
	buf := *w.buf
	if len(buf)+len(b) <= cap(buf) {
		*w.buf = append(buf, b...)
		return len(b), nil
	}
	w.spilled = true
	if err := w.flush(); err != nil {
		return 0, err
	}
	if len(b) >= cap(buf) {
		return w.f.Write(b)
	}
	*w.buf = append((*w.buf)[:0], b...)
	return len(b), nil
}

// flush writes the buffer to f and empties it.
func (w *spillWriter) flush() error {
	if len(*w.buf) == 0 {
		return nil
	}
	_, err := w.f.Write(*w.buf)
	*w.buf = (*w.buf)[:0]
	return err
}
