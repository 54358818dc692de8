package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/regfile"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// writeTmp copies r into a new file in the mailbox's tmp/ (a spare where
// the mailbox has one, spares.go) and returns its unique name, size, and
// what the parser learnt from the bytes on their way to the file (one
// pass: the message is never read back). A message of up to journalMax
// bytes comes back in body too, a bodyBufs buffer for the caller to put
// back, and is not fsynced (it is journaled, journal.go); a larger one is
// fsynced and body is nil. With max > 0 a message longer than max bytes is
// refused with ErrOverQuota.
func (a *account) writeTmp(mailboxID int64, r io.Reader, max int64) (unique string, size int64, p parsed, body *[]byte, err error) {
	var (
		tmp string
		f   *os.File
	)
	if spare := a.spares.take(a, mailboxID); spare != nil {
		unique = uniqueName()
		tmp = filepath.Join(a.mailboxDir(mailboxID), "tmp", unique)
		if lerr := linkSpare(spare, tmp); lerr == nil {
			f = spare
		} else {
			spare.Close()
			if _, serr := os.Stat(filepath.Dir(tmp)); serr == nil {
				// tmp/ is there, so unnamed files cannot be linked
				// here (no /proc): stop making them.
				a.spares.unsupported()
				a.log.Warn("spare message files turned off", "err", lerr)
			}
		}
	}
	if f == nil {
		// No spare: a new file.
		unique = uniqueName()
		tmp = filepath.Join(a.mailboxDir(mailboxID), "tmp", unique)
		f, err = regfile.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if errors.Is(err, os.ErrNotExist) {
		// The directories of a mailbox are recreated if someone removed
		// them by hand.
		if merr := os.MkdirAll(filepath.Dir(tmp), 0o700); merr == nil {
			f, err = regfile.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		}
	}
	if err != nil {
		return "", 0, parsed{}, nil, fmt.Errorf("maildir: create message file: %w", err)
	}
	sw := &spillWriter{f: f, buf: bodyBufs.Get().(*[]byte)}
	*sw.buf = (*sw.buf)[:0]
	src := r
	if max > 0 {
		src = io.LimitReader(r, max+1)
	}
	cw := &countWriter{w: sw}
	// The parser reads to the end of src, so the file gets every byte.
	root, err := mimeparse.Parse(io.TeeReader(src, cw))
	n := cw.n
	kept := *sw.buf
	if err == nil {
		err = sw.flush()
	}
	if err == nil && max > 0 && n > max {
		err = fmt.Errorf("maildir: message of more than %d bytes: %w", max, mailstore.ErrOverQuota)
	}
	if err == nil && sw.spilled {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		p, err = encodeParsed(root)
	}
	if err != nil || sw.spilled {
		bodyBufs.Put(sw.buf)
	}
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, mailstore.ErrOverQuota) {
			return "", 0, parsed{}, nil, err
		}
		return "", 0, parsed{}, nil, fmt.Errorf("maildir: write message file: %w", err)
	}
	if !sw.spilled {
		*sw.buf = kept
		body = sw.buf
	}
	return unique, n, p, body, nil
}

// countWriter counts what it passes on.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// publish renames a tmp file into cur/, marking it in flight until its
// row is committed or it is removed. A fsync'd file (not journaled) also
// gets the fsync of cur/ started: the returned wait gives its outcome. The
// caller commits the row meanwhile and answers only once both are done, so
// the two flushes overlap instead of queueing (see "Durability" in doc.go
// for what power loss can leave). A journaled file is named by
// journalName and waits for nothing here: its commit carries its bytes.
func (a *account) publish(mailboxID int64, unique string, size int64, journaled bool) (rel string, wait func() error, err error) {
	dir := a.mailboxDir(mailboxID)
	name := curName(unique, size)
	if journaled {
		name = journalName(unique, size)
	}
	rel = "cur/" + name
	a.setInflight(messagePath(mailboxID, rel), true)
	if err := os.Rename(filepath.Join(dir, "tmp", unique), filepath.Join(dir, "cur", name)); err != nil {
		a.setInflight(messagePath(mailboxID, rel), false)
		os.Remove(filepath.Join(dir, "tmp", unique))
		return "", nil, fmt.Errorf("maildir: move message into cur: %w", err)
	}
	if journaled {
		return rel, func() error { return nil }, nil
	}
	var synced func() error
	if testHookSyncCur != nil {
		done := make(chan error, 1)
		go func() { done <- testHookSyncCur(filepath.Join(dir, "cur")) }()
		synced = func() error { return <-done }
	} else {
		synced = a.dirSync.Start(filepath.Join(dir, "cur"))
	}
	return rel, func() error {
		if err := synced(); err != nil {
			return fmt.Errorf("maildir: sync cur: %w", err)
		}
		return nil
	}, nil
}

// retract takes back a committed message whose directory entry could not
// be made durable (the fsync of cur/ failed): its row is deleted, as an
// expunge, and its file goes to the trash.
func (a *account) retract(mailboxID int64, uid imap.UID, rel string) {
	err := a.write(context.Background(), func(w *wtx) error {
		// Still the row it committed, unless expunged meanwhile.
		victims, err := fileRows(w.Query, mailboxID, []uidRange{{uid, uid}}, ` AND file = ?`, rel)
		if err != nil {
			return err
		}
		_, err = w.expungeRows(mailboxID, victims)
		return err
	})
	if err != nil {
		a.log.Error("take back a message whose directory could not be synced", "mailbox", mailboxID, "uid", uid, "path", rel, "err", err)
	}
}

// unpublish removes a file whose row was not committed.
func (a *account) unpublish(mailboxID int64, rel string) {
	if err := os.Remove(filepath.Join(a.mailboxDir(mailboxID), filepath.FromSlash(rel))); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Error("remove uncommitted message file", "path", rel, "err", err)
	}
	a.setInflight(messagePath(mailboxID, rel), false)
}

func (a *account) setInflight(path string, on bool) {
	a.inflightM.Lock()
	if on {
		a.inflight[path] = struct{}{}
	} else {
		delete(a.inflight, path)
	}
	a.inflightM.Unlock()
}

func (a *account) isInflight(path string) bool {
	a.inflightM.Lock()
	defer a.inflightM.Unlock()
	_, ok := a.inflight[path]
	return ok
}

// appendMessage is APPEND and delivery: file first (tmp, fsync, rename into
// cur), then the index row, committed while cur/ is fsynced; it returns
// once both are durable. The file goes if the row does not commit, and the
// row if cur/ could not be synced.
func (a *account) appendMessage(ctx context.Context, name string, fallbackInbox bool, r io.Reader, fs flagSet, date time.Time, claim bool) (mailstore.AppendResult, error) {
	start := time.Now()
	if a.stale() {
		a.store.retire(a)
		return mailstore.AppendResult{}, fmt.Errorf("maildir: append: account removed: %w", mailstore.ErrClosed)
	}
	var mb mailstore.Mailbox
	err := a.readTx(ctx, func(r *rtx) error {
		var err error
		mb, err = r.mailboxByName(name)
		if errors.Is(err, mailstore.ErrNoSuchMailbox) && fallbackInbox && name != mailstore.Inbox {
			a.log.Info("delivery mailbox missing; using INBOX", "mailbox", name)
			mb, err = r.mailboxByName(mailstore.Inbox)
		}
		return err
	})
	if err != nil {
		return mailstore.AppendResult{}, fmt.Errorf("maildir: append: %w", err)
	}
	limit, err := a.quota(ctx)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	msgLimit, err := a.messageQuota(ctx)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	if msgLimit > 0 {
		var n int64
		err := a.readTx(ctx, func(r *rtx) error {
			var err error
			n, err = countMessages(r.queryRow)
			return err
		})
		if err != nil {
			return mailstore.AppendResult{}, fmt.Errorf("maildir: append: %w", err)
		}
		if n >= msgLimit {
			return mailstore.AppendResult{}, fmt.Errorf("maildir: append: %w", mailstore.ErrOverQuota)
		}
	}
	room := int64(0)
	if limit > 0 {
		room = limit - a.used.Load()
		if room <= 0 {
			return mailstore.AppendResult{}, fmt.Errorf("maildir: append: %w", mailstore.ErrOverQuota)
		}
	}
	unique, size, p, body, err := a.writeTmp(mb.ID, r, room)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	if body != nil {
		defer bodyBufs.Put(body)
	}
	rel, synced, err := a.publish(mb.ID, unique, size, body != nil)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	_, zone := date.Zone()
	if testHookBeforeCommit != nil {
		testHookBeforeCommit(a)
	}
	pa := &pendingAppend{
		mb: mb, size: size, rel: rel, p: p, fs: fs, date: date, zone: zone, limit: limit, msgLimit: msgLimit, claim: claim,
		done: make(chan struct{}), lead: make(chan struct{}, 1),
	}
	if body != nil {
		pa.body = *body
	}
	a.commitAppend(ctx, pa)
	serr := synced()
	res, err := pa.res, pa.err
	key := messagePath(mb.ID, rel)
	if err != nil {
		if body != nil {
			a.journalRelease(key)
		}
		a.unpublish(mb.ID, rel)
		return mailstore.AppendResult{}, fmt.Errorf("maildir: append: %w", err)
	}
	if body != nil {
		a.store.journal.add(journaled{a: a, id: pa.journalID, key: key, path: filepath.Join(a.mailboxDir(mb.ID), filepath.FromSlash(rel))})
	}
	if serr != nil {
		a.retract(mb.ID, res.UID, rel)
		a.setInflight(messagePath(mb.ID, rel), false)
		return mailstore.AppendResult{}, fmt.Errorf("maildir: append: %w", serr)
	}
	a.setInflight(messagePath(mb.ID, rel), false)
	a.log.Debug("message stored", "mailbox", mb.Name, "uid", res.UID, "size", size, "msgid", p.MessageID, "dur", time.Since(start))
	return res, nil
}

// testHookSyncCur, set by tests only, replaces the fsync of cur/ after a
// message is renamed into it.
var testHookSyncCur func(dir string) error

// testHookBeforeCommit, set by tests only, runs after a message file is in
// place and before its row is committed.
var testHookBeforeCommit func(a *account)

// pendingAppend is one message waiting for its index row.
type pendingAppend struct {
	mb    mailstore.Mailbox
	size  int64
	rel   string
	p     parsed
	fs    flagSet
	date  time.Time
	zone  int
	limit int64
	// msgLimit is the account's message quota (0: unlimited).
	msgLimit int64
	// claim: claim the message for \Recent if all before it are claimed
	// (AppendOptions.ClaimRecent).
	claim bool

	// body is a journaled message's bytes (nil: its file was fsynced),
	// journalID its pending row once committed.
	body      []byte
	journalID int64

	res  mailstore.AppendResult
	err  error
	done chan struct{} // closed when res and err are final
	lead chan struct{} // (buffered) this append's goroutine commits the queue next
}

// maxCommitBatch bounds how many appends share one transaction.
const maxCommitBatch = 256

// commitAppend commits pa's row. Appends that arrive while a commit is
// running are committed together by the next one (group commit): the
// committing goroutine takes every waiting append into one transaction, so
// parallel deliveries into one account share a WAL fsync instead of queueing
// for one each. Each append still gets its own UID and its own error (a
// missing mailbox or a full quota fails that append only); the batch shares
// the mailbox's new modseq.
func (a *account) commitAppend(ctx context.Context, pa *pendingAppend) {
	if err := ctx.Err(); err != nil {
		pa.err = err
		close(pa.done)
		return
	}
	a.gcMu.Lock()
	a.gcQueue = append(a.gcQueue, pa)
	if a.gcLeader {
		a.gcMu.Unlock()
		// Once queued, wait for the outcome even if ctx ends, so a
		// caller never reports failure for a message that was stored.
		select {
		case <-pa.done:
			return
		case <-pa.lead:
			// The previous committer handed over: commit the queue,
			// which starts with pa.
		}
		a.gcMu.Lock()
	}
	a.gcLeader = true
	batch := a.gcQueue
	if len(batch) > maxCommitBatch {
		batch = batch[:maxCommitBatch]
	}
	a.gcQueue = a.gcQueue[len(batch):]
	a.gcMu.Unlock()
	a.commitBatch(batch)
	for _, x := range batch {
		close(x.done)
	}
	// Commit one batch only, then pass the role to the oldest waiter, so
	// no caller is kept committing for others under sustained load.
	a.gcMu.Lock()
	if len(a.gcQueue) == 0 {
		a.gcLeader = false
	} else {
		a.gcQueue[0].lead <- struct{}{}
	}
	a.gcMu.Unlock()
}

// commitBatch writes the rows of a batch in one transaction. It runs
// without the callers' contexts: a batch holds other callers' messages, and
// a cancelled caller still gets a true answer.
func (a *account) commitBatch(batch []*pendingAppend) {
	err := a.write(context.Background(), func(w *wtx) error {
		count := int64(-1) // the account's messages, counted when a quota needs it
		for _, pa := range batch {
			pa.err = nil
			pa.res = mailstore.AppendResult{MailboxID: pa.mb.ID, UIDValidity: pa.mb.UIDValidity, Size: pa.size}
			if pa.limit > 0 && a.used.Load()+w.usedDelta+pa.size > pa.limit {
				pa.err = mailstore.ErrOverQuota
				continue
			}
			if pa.msgLimit > 0 {
				if count < 0 {
					var err error
					if count, err = countMessages(w.QueryRow); err != nil {
						return err
					}
				}
				if count >= pa.msgLimit {
					pa.err = mailstore.ErrOverQuota
					continue
				}
			}
			var uid, cache int64
			// SET reads the old row and RETURNING the new one: with the
			// claim, recent_uid follows uidnext when it stood at the new
			// UID (every message before it claimed). Without it,
			// recent_uid never reaches the new uidnext.
			err := w.QueryRow(`UPDATE mailboxes SET uidnext = uidnext + 1,
				recent_uid = CASE WHEN ? AND recent_uid = uidnext THEN uidnext + 1 ELSE recent_uid END
				WHERE id = ? RETURNING uidnext - 1, uidvalidity, cache_summaries, recent_uid = uidnext`, pa.claim, pa.mb.ID).Scan(&uid, &pa.res.UIDValidity, &cache, &pa.res.Recent)
			if errors.Is(err, errNoRows) {
				pa.err = noMailbox(err, pa.mb.Name)
				continue
			}
			if err != nil {
				return err
			}
			modseq, err := w.bump(pa.mb.ID)
			if err != nil {
				return err
			}
			kw := joinKeywords(pa.fs.Keywords)
			env, bs := pa.p.Envelope, pa.p.BodyStructure
			if cache == 0 {
				env, bs = nil, nil // until a client asks (migration 8)
			}
			if _, err := w.Exec(`INSERT INTO messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone, sentdate, file, envelope, bodystructure)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				pa.mb.ID, uid, int64(modseq), pa.fs.Mask, nullIfEmpty(kw), pa.size,
				pa.date.Unix(), pa.zone, pa.p.SentDate, pa.rel, env, bs); err != nil {
				return err
			}
			if pa.body != nil {
				r, err := w.Exec(`INSERT INTO pending (mailbox, uid, file, body) VALUES (?, ?, ?, ?)`, pa.mb.ID, uid, pa.rel, pa.body)
				if err != nil {
					return err
				}
				if pa.journalID, err = r.LastInsertId(); err != nil {
					return err
				}
				a.journalHold(messagePath(pa.mb.ID, pa.rel), pa.journalID)
			}
			w.usedDelta += pa.size
			w.wrote = true
			if count >= 0 {
				count++
			}
			pa.res.UID = imap.UID(uid)
			w.event(mailstore.Event{Kind: mailstore.EventAppend, MailboxID: pa.mb.ID, UID: imap.UID(uid), ModSeq: modseq, Flags: flagList(pa.fs.Mask, kw)})
		}
		return nil
	})
	if err != nil {
		for _, pa := range batch {
			pa.err = err
		}
	}
}

func noMailbox(err error, name string) error {
	if errors.Is(err, errNoRows) {
		return fmt.Errorf("%w: %s", mailstore.ErrNoSuchMailbox, name)
	}
	return err
}

// copyMessages is COPY and MOVE. Files are hard-linked (or copied, where
// links are not possible) into the destination's cur/ before the
// transaction; MOVE deletes the source rows in the same transaction and
// removes the source files after the commit (through the trash table, so a
// crash in between never resurrects them).
func (a *account) copyMessages(ctx context.Context, srcID int64, uids imap.UIDSet, dest string, move bool) (mailstore.CopyResult, error) {
	destName, err := mailstore.ParseMailboxName(dest)
	if err != nil {
		return mailstore.CopyResult{}, err
	}
	// Only what is needed to place files is read here; the transaction
	// copies the rows (with their cached envelope and body structure)
	// inside SQLite, so a COPY of a large mailbox stays small in memory.
	type srcMsg struct {
		fileRow
		newRel string
	}
	var (
		msgs   []srcMsg
		destMb mailstore.Mailbox
	)
	err = a.readTx(ctx, func(r *rtx) error {
		if err := r.checkMailbox(srcID); err != nil {
			return err
		}
		var err error
		if destMb, err = r.mailboxByName(destName); err != nil {
			return err
		}
		ranges, err := uidRanges(r, srcID, uids)
		if err != nil {
			return err
		}
		files, err := fileRows(r.query, srcID, ranges, "")
		for _, f := range files {
			msgs = append(msgs, srcMsg{fileRow: f})
		}
		return err
	})
	if err != nil {
		return mailstore.CopyResult{}, fmt.Errorf("maildir: copy: %w", err)
	}
	res := mailstore.CopyResult{DestMailboxID: destMb.ID, DestUIDValidity: destMb.UIDValidity}
	if len(msgs) == 0 {
		return res, nil
	}
	var total int64
	for _, m := range msgs {
		total += m.size
	}
	// MOVE does not grow the account, so only COPY is held to the quota.
	limit, msgLimit := int64(0), int64(0)
	if !move {
		if limit, err = a.quota(ctx); err != nil {
			return mailstore.CopyResult{}, err
		}
		if msgLimit, err = a.messageQuota(ctx); err != nil {
			return mailstore.CopyResult{}, err
		}
		if limit > 0 && a.used.Load()+total > limit {
			return mailstore.CopyResult{}, fmt.Errorf("maildir: copy: %w", mailstore.ErrOverQuota)
		}
	}
	// A link must not share a journaled file before it is durable: it
	// would outlive the pending row that can restore it (journal.go).
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		keys[i] = messagePath(srcID, m.file)
	}
	if a.journalHeld(keys) {
		if err := a.store.journal.flush(ctx); err != nil {
			return mailstore.CopyResult{}, fmt.Errorf("maildir: copy: %w", err)
		}
	}
	// Place the files. A crash from here to the commit leaves files
	// without rows, which reconciliation indexes: mail may be duplicated,
	// never lost.
	srcDir, destDir := a.mailboxDir(srcID), a.mailboxDir(destMb.ID)
	var placed []string
	cleanup := func() {
		for _, rel := range placed {
			a.unpublish(destMb.ID, rel)
		}
	}
	for i := range msgs {
		if err := ctx.Err(); err != nil {
			cleanup()
			return mailstore.CopyResult{}, err
		}
		m := &msgs[i]
		name := curName(uniqueName(), m.size)
		m.newRel = "cur/" + name
		a.setInflight(messagePath(destMb.ID, m.newRel), true)
		if err := linkOrCopy(filepath.Join(srcDir, filepath.FromSlash(m.file)), filepath.Join(destDir, "cur", name)); err != nil {
			a.setInflight(messagePath(destMb.ID, m.newRel), false)
			cleanup()
			if errors.Is(err, os.ErrNotExist) {
				return mailstore.CopyResult{}, fmt.Errorf("maildir: copy: %w: uid %d has no file", mailstore.ErrNoSuchMessage, m.uid)
			}
			return mailstore.CopyResult{}, fmt.Errorf("maildir: copy: %w", err)
		}
		placed = append(placed, m.newRel)
	}
	if err := a.dirSync.Sync(filepath.Join(destDir, "cur")); err != nil {
		cleanup()
		return mailstore.CopyResult{}, fmt.Errorf("maildir: copy: %w", err)
	}
	err = a.write(ctx, func(w *wtx) error {
		res.SourceUIDs, res.DestUIDs = nil, nil
		d, err := w.mailboxByName(destName)
		if err != nil {
			return err
		}
		if d.ID != destMb.ID {
			return fmt.Errorf("%w: %s was replaced", mailstore.ErrNoSuchMailbox, destName)
		}
		res.DestUIDValidity = d.UIDValidity
		if limit > 0 && a.used.Load()+w.usedDelta+total > limit {
			return mailstore.ErrOverQuota
		}
		if msgLimit > 0 {
			n, err := countMessages(w.QueryRow)
			if err != nil {
				return err
			}
			if n+int64(len(msgs)) > msgLimit {
				return mailstore.ErrOverQuota
			}
		}
		var first int64
		if err := w.QueryRow(`UPDATE mailboxes SET uidnext = uidnext + ? WHERE id = ? RETURNING uidnext - ?`,
			len(msgs), destMb.ID, len(msgs)).Scan(&first); err != nil {
			return noMailbox(err, destName)
		}
		destModseq, err := w.bump(destMb.ID)
		if err != nil {
			return err
		}
		var srcModseq uint64
		if move {
			if srcModseq, err = w.bump(srcID); err != nil {
				return err
			}
		}
		appends := make([]mailstore.Event, 0, len(msgs))
		for i, m := range msgs {
			uid := first + int64(i)
			// The source row must still be there: a concurrent expunge
			// would otherwise turn a move into a copy, or copy nothing.
			var (
				flags int64
				kw    sql.NullString
			)
			err := w.QueryRow(`INSERT INTO messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone, sentdate, file, messageid, envelope, bodystructure, emailid)
				SELECT ?, ?, ?, flags, keywords, size, internaldate, internalzone, sentdate, ?, messageid, envelope, bodystructure, emailid
				FROM messages WHERE mailbox = ? AND uid = ? AND file = ?
				RETURNING flags, keywords`,
				destMb.ID, uid, int64(destModseq), m.newRel, srcID, m.uid, m.file).Scan(&flags, &kw)
			if errors.Is(err, errNoRows) {
				return fmt.Errorf("%w: uid %d expunged meanwhile", mailstore.ErrNoSuchMessage, m.uid)
			}
			if err != nil {
				return err
			}
			if move {
				if _, err := w.Exec(`DELETE FROM messages WHERE mailbox = ? AND uid = ?`, srcID, m.uid); err != nil {
					return err
				}
				if err := w.addTrash(messagePath(srcID, m.file)); err != nil {
					return err
				}
			} else {
				w.usedDelta += m.size
			}
			res.SourceUIDs = append(res.SourceUIDs, imap.UID(m.uid))
			res.DestUIDs = append(res.DestUIDs, imap.UID(uid))
			appends = append(appends, mailstore.Event{Kind: mailstore.EventAppend, MailboxID: destMb.ID, UID: imap.UID(uid), ModSeq: destModseq, Flags: flagList(flags, kw.String)})
		}
		// Into another mailbox, the expunges come after the appends: a
		// watcher of the source never sees the message gone before it
		// exists in the target. Within one mailbox, before them: a session
		// sees EXPUNGE then EXISTS, as IMAP servers commonly send them.
		var expunges []mailstore.Event
		if move {
			for _, m := range msgs {
				expunges = append(expunges, mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: srcID, UID: imap.UID(m.uid), ModSeq: srcModseq})
			}
		}
		events := append(appends, expunges...)
		if srcID == destMb.ID {
			events = append(expunges, appends...)
		}
		for _, ev := range events {
			w.event(ev)
		}
		return nil
	})
	if err != nil {
		cleanup()
		return mailstore.CopyResult{}, fmt.Errorf("maildir: copy: %w", err)
	}
	for _, rel := range placed {
		a.setInflight(messagePath(destMb.ID, rel), false)
	}
	return res, nil
}

// linkOrCopy hard-links src to dst (message files never change, so sharing
// an inode is safe), or copies and fsyncs when links fail.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	} else if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(src); serr != nil {
			return serr
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
