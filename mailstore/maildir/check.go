package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// checkMinAge is how old a message file without an index row must be before
// CheckAccount calls it unindexed or indexes it: a younger one may be a
// delivery of another process (the running server) between the rename of
// its file into cur/ and the commit of its row.
const checkMinAge = time.Minute

var _ mailstore.Checker = (*Store)(nil)

// CheckAccount implements mailstore.Checker. The check only reads: the
// index through a read-only connection (PRAGMA integrity_check, counters
// against the sums of the messages), the Maildir by listing it. A repair
// goes through the store, as a running server's own writes do (SQLite
// locks): a damaged or missing index is moved aside and rebuilt (as at
// open, keeping what it still says); rows whose file is gone are expunged;
// files older than a minute without a row are indexed; wrong counters are
// recomputed. A server that has the account open notices a rebuilt index
// at its next open of the account (its sessions of that account end) and
// a recomputed usage figure when it next opens the account.
func (s *Store) CheckAccount(ctx context.Context, name string, repair bool) (mailstore.CheckReport, error) {
	name, err := mailstore.CheckAccountName(name)
	if err != nil {
		return mailstore.CheckReport{}, err
	}
	rep := mailstore.CheckReport{Account: name}
	dir := filepath.Join(s.dir, accountDirName(name))
	if _, err := os.Stat(filepath.Join(dir, addressFile)); errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("maildir: check %s: %w", name, mailstore.ErrNoSuchAccount)
	}
	ins := inspectAccount(ctx, dir)
	rep.Problems, rep.Mailboxes, rep.Messages = ins.problems, ins.mailboxes, ins.messages
	if !repair || len(ins.problems) == 0 {
		return rep, ctx.Err()
	}
	if ins.damaged != "" {
		if err := s.rebuildAccount(ctx, name, ins.damaged); err != nil {
			return rep, err
		}
		rep.Repaired = append(rep.Repaired, "index moved aside and rebuilt from the Maildir (the log line \"index rebuilt from the Maildir\" says what was kept)")
	} else {
		a, err := s.acquireForCheck(ctx, name)
		if err != nil {
			return rep, err
		}
		indexed, expunged, err := a.reconcileFiles(ctx, checkMinAge)
		if err == nil && ins.badCounters {
			err = a.fixCounters(ctx)
			if err == nil {
				rep.Repaired = append(rep.Repaired, "mailbox counters recomputed from the messages")
			}
		}
		s.release(a)
		if err != nil {
			return rep, err
		}
		if expunged > 0 {
			rep.Repaired = append(rep.Repaired, fmt.Sprintf("%d index rows without a file expunged", expunged))
		}
		if indexed > 0 {
			rep.Repaired = append(rep.Repaired, fmt.Sprintf("%d message files without a row indexed", indexed))
		}
	}
	after := inspectAccount(ctx, dir)
	rep.Remaining, rep.Mailboxes, rep.Messages = after.problems, after.mailboxes, after.messages
	return rep, nil
}

// acquireForCheck opens the account without the reconciliation of a first
// open, which would index young files: the check's own repair does that,
// leaving files another process may be committing.
func (s *Store) acquireForCheck(ctx context.Context, name string) (*account, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, mailstore.ErrClosed
	}
	s.reconciled[name] = true
	s.mu.Unlock()
	a, _, err := s.acquire(ctx, name)
	return a, err
}

// rebuildAccount closes the account's state in this process, if open, and
// opens it again treating its index as damaged: it is moved aside and
// rebuilt, keeping what it still says.
func (s *Store) rebuildAccount(ctx context.Context, name, reason string) error {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return mailstore.ErrClosed
		}
		a := s.accounts[name]
		if a == nil {
			s.forced[name] = reason
			delete(s.reconciled, name)
			s.mu.Unlock()
			break
		}
		delete(s.accounts, name)
		s.removeIdle(a)
		delete(s.reconciled, name)
		s.mu.Unlock()
		<-a.ready
		a.gone.Store(true)
		a.close()
	}
	a, _, err := s.acquire(ctx, name)
	if err != nil {
		return err
	}
	s.release(a)
	return nil
}

// fixCounters recomputes every mailbox's counters from its messages and
// reloads the account's usage.
func (a *account) fixCounters(ctx context.Context) error {
	err := a.write(ctx, func(w *wtx) error {
		_, err := w.Exec(`UPDATE mailboxes SET
			msgs = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id),
			bytes = (SELECT ifnull(sum(size), 0) FROM messages m WHERE m.mailbox = mailboxes.id),
			unseen = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id AND (m.flags & 1) = 0),
			deleted = (SELECT count(*) FROM messages m WHERE m.mailbox = mailboxes.id AND (m.flags & 8) != 0)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("maildir: recompute counters of %s: %w", a.name, err)
	}
	a.log.Warn("mailbox counters recomputed from the messages")
	return a.loadUsage(ctx)
}

// inspection is what a read-only look at an account found.
type inspection struct {
	damaged     string // why the index cannot be used; "" if it can
	badCounters bool
	problems    []string
	mailboxes   int
	messages    int
}

// maxListed bounds the UIDs or names a problem sentence lists.
const maxListed = 10

// inspectAccount checks an account directory without changing anything.
func inspectAccount(ctx context.Context, dir string) inspection {
	var ins inspection
	idx := filepath.Join(dir, indexFile)
	mdir := filepath.Join(dir, maildirDir)
	dirIDs := mailboxDirIDs(mdir)
	fi, err := os.Stat(idx)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if len(dirIDs) > 0 {
			ins.damaged = "index missing"
		}
	case err != nil:
		ins.damaged = err.Error()
	case !fi.Mode().IsRegular():
		ins.damaged = "index is not a regular file"
	case fi.Size() == 0 && len(dirIDs) > 0:
		ins.damaged = "index empty (truncated)"
	}
	if ins.damaged == "" && err == nil {
		ins.damaged = inspectIndex(ctx, idx, mdir, dirIDs, &ins)
	}
	if ins.damaged != "" {
		ins.problems = append([]string{"index unusable: " + ins.damaged}, ins.problems...)
	}
	return ins
}

// mailboxDirIDs lists the mailbox directories of a Maildir tree.
func mailboxDirIDs(mdir string) []int64 {
	ents, _ := os.ReadDir(mdir)
	var ids []int64
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err == nil && id > 0 && e.IsDir() && strconv.FormatInt(id, 10) == e.Name() {
			ids = append(ids, id)
		}
	}
	return ids
}

// inspectIndex runs the integrity check and compares the index with the
// files; it returns why the index is unusable, or "".
func inspectIndex(ctx context.Context, idx, mdir string, dirIDs []int64, ins *inspection) string {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", strconv.Itoa(sqlitedb.BusyTimeoutMillis))
	db, err := sql.Open("sqlite3", "file:"+idx+"?"+q.Encode())
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var ver int
	if err := db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&ver); err != nil {
		return err.Error()
	}
	if ver > len(migrations) {
		return fmt.Sprintf("schema version %d is newer than this binary knows", ver)
	}
	if ver < len(migrations) {
		// Not yet upgraded: the next open migrates it; nothing to check
		// against this binary's schema.
		ins.problems = append(ins.problems, fmt.Sprintf("index has schema version %d; it is upgraded to %d when the account is next opened", ver, len(migrations)))
		return ""
	}
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check(20)`)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			rows.Close()
			return err.Error()
		}
		lines = append(lines, l)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return err.Error()
	}
	if len(lines) != 1 || lines[0] != "ok" {
		return "integrity_check: " + strings.Join(lines, "; ")
	}

	type mbox struct {
		id                              int64
		name                            string
		msgs, bytes, unseen, deleted    int64
		cmsgs, cbytes, cunseen, cdelete int64
	}
	var mbs []*mbox
	byID := map[int64]*mbox{}
	err = queryEach(ctx, db, `SELECT id, name, msgs, bytes, unseen, deleted FROM mailboxes ORDER BY name`, nil, func(r *sql.Rows) error {
		m := &mbox{}
		if err := r.Scan(&m.id, &m.name, &m.msgs, &m.bytes, &m.unseen, &m.deleted); err != nil {
			return err
		}
		mbs = append(mbs, m)
		byID[m.id] = m
		return nil
	})
	if err == nil {
		err = queryEach(ctx, db, `SELECT mailbox, count(*), sum(size), sum((flags & 1) = 0), sum((flags & 8) != 0) FROM messages GROUP BY mailbox`, nil, func(r *sql.Rows) error {
			var id, n, b, u, d int64
			if err := r.Scan(&id, &n, &b, &u, &d); err != nil {
				return err
			}
			if m := byID[id]; m != nil {
				m.cmsgs, m.cbytes, m.cunseen, m.cdelete = n, b, u, d
			}
			return nil
		})
	}
	trash := map[string]bool{}
	if err == nil {
		err = queryEach(ctx, db, `SELECT path FROM trash`, nil, func(r *sql.Rows) error {
			var p string
			if err := r.Scan(&p); err != nil {
				return err
			}
			trash[p] = true
			return nil
		})
	}
	if err != nil {
		return err.Error()
	}
	ins.mailboxes = len(mbs)
	for _, m := range mbs {
		ins.messages += int(m.cmsgs)
		if m.msgs != m.cmsgs || m.bytes != m.cbytes || m.unseen != m.cunseen || m.deleted != m.cdelete {
			ins.badCounters = true
			ins.problems = append(ins.problems, fmt.Sprintf("mailbox %q: counters say %d messages, %d bytes, %d unseen, %d deleted; its messages are %d, %d bytes, %d unseen, %d deleted",
				m.name, m.msgs, m.bytes, m.unseen, m.deleted, m.cmsgs, m.cbytes, m.cunseen, m.cdelete))
		}
	}
	for _, id := range dirIDs {
		if byID[id] == nil {
			if n := countMessageFiles(filepath.Join(mdir, strconv.FormatInt(id, 10))); n > 0 {
				ins.problems = append(ins.problems, fmt.Sprintf("directory %s/%d holds %d message files but no mailbox has it", maildirDir, id, n))
			}
		}
	}
	for _, m := range mbs {
		mbDir := filepath.Join(mdir, strconv.FormatInt(m.id, 10))
		// Files first, then rows: a delivery between the two is a row
		// whose file was listed or a young file; an expunge between them
		// leaves a trash row.
		onDisk := map[string]time.Time{}
		for _, sub := range []string{"new", "cur"} {
			ents, _ := os.ReadDir(filepath.Join(mbDir, sub))
			for _, e := range ents {
				if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
					continue
				}
				if info, err := e.Info(); err == nil {
					onDisk[sub+"/"+e.Name()] = info.ModTime()
				}
			}
		}
		indexed := map[string]bool{}
		var lost []string
		err := queryEach(ctx, db, `SELECT uid, file FROM messages WHERE mailbox = ? ORDER BY uid`, []any{m.id}, func(r *sql.Rows) error {
			var uid int64
			var f string
			if err := r.Scan(&uid, &f); err != nil {
				return err
			}
			indexed[f] = true
			if _, ok := onDisk[f]; !ok {
				if _, err := os.Stat(filepath.Join(mbDir, filepath.FromSlash(f))); errors.Is(err, os.ErrNotExist) {
					lost = append(lost, strconv.FormatInt(uid, 10))
				}
			}
			return nil
		})
		if err != nil {
			return err.Error()
		}
		var unindexed int
		for f, mt := range onDisk {
			if !indexed[f] && !trash[messagePath(m.id, f)] && time.Since(mt) >= checkMinAge {
				unindexed++
			}
		}
		if len(lost) > 0 {
			shown := lost[:min(len(lost), maxListed)]
			more := ""
			if len(lost) > len(shown) {
				more = fmt.Sprintf(" and %d more", len(lost)-len(shown))
			}
			ins.problems = append(ins.problems, fmt.Sprintf("mailbox %q: %d indexed messages have no file (UID %s%s)", m.name, len(lost), strings.Join(shown, ","), more))
		}
		if unindexed > 0 {
			ins.problems = append(ins.problems, fmt.Sprintf("mailbox %q: %d message files have no index row", m.name, unindexed))
		}
	}
	return ""
}

// queryEach runs q and calls fn for each row.
func queryEach(ctx context.Context, db *sql.DB, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
