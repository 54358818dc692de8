package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/durable"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// staleTmpAge is how old a file in tmp/ (or a ".tmp-" file of an atomic
// rewrite) must be before reconciliation removes it. Nothing there was ever
// acknowledged: it is left by a crash during a delivery. A younger file may
// belong to a delivery in progress in another process (posthouse admin,
// or a serve still running beside it), which never takes a day.
const staleTmpAge = 24 * time.Hour

// reconcile brings the index in line with the files (see doc.go).
func (a *account) reconcile(ctx context.Context) error {
	_, _, err := a.reconcileFiles(ctx, 0)
	return err
}

// reconcileFiles is reconcile, leaving alone files without a row younger
// than minAge (another process may be committing them), and returns how
// many files it indexed and rows it expunged.
func (a *account) reconcileFiles(ctx context.Context, minAge time.Duration) (indexed, expunged int, err error) {
	start := time.Now()
	a.removeStale(a.dir, durable.IsTemp)
	if err := a.drainTrash(ctx); err != nil {
		return 0, 0, err
	}
	if err := a.adoptOrphanDirs(ctx); err != nil {
		return 0, 0, err
	}
	ids, err := a.mailboxIDs(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("maildir: reconcile %s: %w", a.name, err)
	}
	for _, id := range ids {
		n, x, err := a.reconcileMailbox(ctx, id, minAge)
		indexed += n
		expunged += x
		if err != nil {
			return indexed, expunged, fmt.Errorf("maildir: reconcile %s: %w", a.name, err)
		}
	}
	if (indexed > 0 || expunged > 0) && a.rebuild == nil {
		a.log.Warn("reconciled index with files", "indexed", indexed, "expunged", expunged, "dur", time.Since(start))
	}
	return indexed, expunged, nil
}

// drainTrash removes files and directories whose rows were deleted by a
// transaction that committed before the process could remove them.
func (a *account) drainTrash(ctx context.Context) error {
	paths, err := readValues[string](ctx, a, `SELECT path FROM trash`)
	if err != nil {
		return fmt.Errorf("maildir: reconcile %s: %w", a.name, err)
	}
	var safe []string
	for _, p := range paths {
		// Trash paths are written by us, but never trust a path to stay
		// inside the account.
		if !filepath.IsLocal(filepath.FromSlash(p)) || !strings.HasPrefix(p, maildirDir+"/") {
			a.log.Error("ignoring trash entry outside the Maildir", "path", p)
			continue
		}
		safe = append(safe, p)
	}
	if len(safe) > 0 {
		a.removeTrash(safe)
	}
	return nil
}

// adoptOrphanDirs handles mailbox directories without a mailbox row: left
// by a mailbox creation that rolled back (empty: removed) or by an index
// that lost rows (holding mail: the mailbox is recreated with the name its
// directory records, so no mail is dropped).
func (a *account) adoptOrphanDirs(ctx context.Context) error {
	ents, err := os.ReadDir(a.maildir())
	if err != nil {
		return fmt.Errorf("maildir: reconcile %s: %w", a.name, err)
	}
	ids, err := a.mailboxIDs(ctx)
	if err != nil {
		return fmt.Errorf("maildir: reconcile %s: %w", a.name, err)
	}
	var orphans []int64
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || id <= 0 || !e.IsDir() || strconv.FormatInt(id, 10) != e.Name() {
			continue
		}
		if _, known := slices.BinarySearch(ids, id); known {
			continue
		}
		if countMessageFiles(a.mailboxDir(id)) == 0 {
			if err := os.RemoveAll(a.mailboxDir(id)); err != nil {
				a.log.Error("remove empty orphan mailbox directory", "dir", e.Name(), "err", err)
			}
			continue
		}
		orphans = append(orphans, id)
	}
	if len(orphans) == 0 {
		return nil
	}
	return a.recreateMailboxes(ctx, orphans)
}

func countMessageFiles(dir string) int {
	n := 0
	for _, sub := range []string{"cur", "new"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				n++
			}
		}
	}
	return n
}

// recreateMailboxes inserts rows for mailbox directories, keeping their IDs
// and recorded names (or "Recovered/<id>" when the name is lost or taken),
// then creates missing parents. During a rebuild, a mailbox the damaged
// index still describes takes its name from there, and keeps its
// UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ if its UIDs can be kept; any other
// gets a UIDVALIDITY greater than every one the account handed out before
// that is still known (the old index's, the name files').
func (a *account) recreateMailboxes(ctx context.Context, ids []int64) error {
	type dirMb struct {
		id   int64
		meta mailboxMeta
	}
	rb := a.rebuild
	var list []dirMb
	var lastUV uint32
	if rb != nil && rb.salvage != nil {
		lastUV = rb.salvage.uidValidity
	}
	for _, id := range ids {
		m, err := a.readMailboxMeta(id)
		lastUV = max(lastUV, m.UIDValidity)
		if err == nil {
			m.Name, err = mailstore.ParseMailboxName(m.Name)
		}
		if err != nil || !validSpecialUse(m.SpecialUse) {
			m = mailboxMeta{Name: fmt.Sprintf("Recovered/%d", id)}
		}
		if rb != nil && rb.salvage != nil {
			if smb := rb.salvage.mailboxes[id]; smb != nil {
				m.Name, m.SpecialUse = smb.name, smb.specialUse
				lastUV = max(lastUV, smb.uidValidity)
			}
		}
		list = append(list, dirMb{id, m})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].meta.Name < list[j].meta.Name })
	return a.write(ctx, func(w *wtx) error {
		if lastUV > 0 {
			if _, err := w.Exec(`INSERT INTO meta (key, value) VALUES ('uidvalidity', ?)
				ON CONFLICT (key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))`,
				strconv.FormatUint(uint64(lastUV), 10)); err != nil {
				return err
			}
		}
		var names []string
		for _, d := range list {
			name := d.meta.Name
			if _, err := w.mailboxByName(name); err == nil {
				name = fmt.Sprintf("Recovered/%d", d.id)
			}
			if _, err := w.createMailbox(name, d.meta.SpecialUse, d.id); err != nil {
				return err
			}
			if smb := rb.keeps(d.id); smb != nil {
				ms := max(smb.highestModSeq, int64(w.modseqs[d.id]))
				if _, err := w.Exec(`UPDATE mailboxes SET uidvalidity = ?, uidnext = ?, highestmodseq = ? WHERE id = ?`,
					int64(smb.uidValidity), smb.uidNext, ms, d.id); err != nil {
					return err
				}
				w.modseqs[d.id] = uint64(ms)
				a.writeMailboxMeta(d.id, name, d.meta.SpecialUse, smb.uidValidity)
			}
			if rb == nil {
				a.log.Warn("recreated mailbox from its directory", "mailbox", name, "id", d.id)
			}
			names = append(names, name)
		}
		for _, n := range names {
			if err := w.createParents(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// rebuildMailboxes fills a fresh index with the mailboxes found on disk.
func (a *account) rebuildMailboxes(ctx context.Context, rb *rebuildState) error {
	ents, err := os.ReadDir(a.maildir())
	if err != nil {
		return fmt.Errorf("maildir: rebuild %s: %w", a.name, err)
	}
	var ids []int64
	for _, e := range ents {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err == nil && id > 0 && e.IsDir() && strconv.FormatInt(id, 10) == e.Name() {
			ids = append(ids, id)
		}
	}
	if rb.salvage != nil {
		// A mailbox the old index knew whose directory is gone comes
		// back (empty; its UIDs, if kept, are recorded as expunged), so
		// a folder the user made is not lost with its last message.
		for id := range rb.salvage.mailboxes {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return a.recreateMailboxes(ctx, ids)
}

// diskMessage is a message file found on disk.
type diskMessage struct {
	rel     string // cur/<name> or new/<name>
	modTime time.Time
}

// reconcileMailbox indexes files without rows and expunges rows without
// files in one mailbox, and removes stale tmp/ files.
func (a *account) reconcileMailbox(ctx context.Context, id int64, minAge time.Duration) (indexed, expunged int, err error) {
	dir := a.mailboxDir(id)
	a.removeStale(filepath.Join(dir, "tmp"), func(string) bool { return true })
	a.removeStale(dir, durable.IsTemp)
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return 0, 0, err
		}
	}
	var onDisk []diskMessage
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return 0, 0, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			onDisk = append(onDisk, diskMessage{rel: sub + "/" + e.Name(), modTime: info.ModTime()})
		}
	}
	files, err := a.indexedFiles(ctx, id)
	if err != nil {
		return 0, 0, err
	}
	diskSet := make(map[string]bool, len(onDisk))
	var missing []diskMessage
	for _, m := range onDisk {
		diskSet[m.rel] = true
		if _, ok := files[m.rel]; !ok && !a.isInflight(messagePath(id, m.rel)) && time.Since(m.modTime) >= minAge {
			if isJournalName(m.rel) && a.rebuild == nil {
				// A journaled delivery whose row never committed: never
				// acknowledged, and after a power loss its bytes may be
				// anything (journal.go).
				if err := os.Remove(filepath.Join(a.mailboxDir(id), filepath.FromSlash(m.rel))); err != nil && !errors.Is(err, os.ErrNotExist) {
					a.log.Error("remove the file of a delivery that never committed", "mailbox", id, "path", m.rel, "err", err)
				} else {
					a.log.Warn("removed the file of a delivery that never committed", "mailbox", id, "path", m.rel)
				}
				continue
			}
			missing = append(missing, m)
		}
	}
	var gone []imap.UID
	for rel, uid := range files {
		if !diskSet[rel] {
			gone = append(gone, uid)
		}
	}
	if len(gone) > 0 {
		sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
		n, err := a.expungeVanished(ctx, id, gone)
		if err != nil {
			return 0, 0, err
		}
		expunged = n
	}
	if len(missing) > 0 {
		// Maildir unique names start with the delivery time: index in
		// that order so UIDs follow arrival.
		sort.Slice(missing, func(i, j int) bool {
			if !missing[i].modTime.Equal(missing[j].modTime) {
				return missing[i].modTime.Before(missing[j].modTime)
			}
			return missing[i].rel < missing[j].rel
		})
		n, err := a.indexFiles(ctx, id, missing, files)
		indexed = n
		if err != nil {
			return indexed, expunged, err
		}
	}
	return indexed, expunged, nil
}

func (a *account) indexedFiles(ctx context.Context, id int64) (map[string]imap.UID, error) {
	files := map[string]imap.UID{}
	err := a.readTx(ctx, func(r *rtx) error {
		rows, err := r.query(`SELECT file, uid FROM messages WHERE mailbox = ?`, id)
		return sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
			var f string
			var uid int64
			if err := row.Scan(&f, &uid); err != nil {
				return err
			}
			files[f] = imap.UID(uid)
			return nil
		})
	})
	return files, err
}

// removeStale removes the regular files in dir whose names match and that were last modified more than staleTmpAge ago, and logs
// each with its path relative to the account.
func (a *account) removeStale(dir string, match func(name string) bool) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !match(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || time.Since(info.ModTime()) < staleTmpAge {
			continue
		}
		path := filepath.Join(dir, e.Name())
		rel, _ := filepath.Rel(a.dir, path)
		if err := os.Remove(path); err != nil {
			a.log.Error("remove file left by an interrupted write", "path", rel, "err", err)
			continue
		}
		a.log.Warn("removed file left by an interrupted write", "path", rel, "size", info.Size(),
			"modified", info.ModTime().UTC().Format(time.RFC3339))
	}
}

// expungeVanished deletes rows whose files are gone, after checking again
// under the writer lock.
func (a *account) expungeVanished(ctx context.Context, id int64, uids []imap.UID) (int, error) {
	n := 0
	err := a.write(ctx, func(w *wtx) error {
		n = 0
		var modseq uint64
		for _, uid := range uids {
			var (
				file string
				size int64
			)
			err := w.QueryRow(`SELECT file, size FROM messages WHERE mailbox = ? AND uid = ?`, id, int64(uid)).Scan(&file, &size)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(a.mailboxDir(id), filepath.FromSlash(file))); !errors.Is(err, os.ErrNotExist) {
				continue
			}
			if modseq == 0 {
				if modseq, err = w.bump(id); err != nil {
					return err
				}
			}
			if _, err := w.Exec(`DELETE FROM messages WHERE mailbox = ? AND uid = ?`, id, int64(uid)); err != nil {
				return err
			}
			w.usedDelta -= size
			w.event(mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: id, UID: uid, ModSeq: modseq})
			a.log.Warn("message file vanished; expunged its index row", "mailbox", id, "uid", uid, "path", file)
			n++
		}
		return nil
	})
	return n, err
}

// maildirInfoFlags reads the standard Maildir flags of a file name's info
// part (":2,<letters>"), so mail dropped in by other tools keeps its flags.
func maildirInfoFlags(name string) flagSet {
	var fs flagSet
	i := strings.LastIndex(name, ":2,")
	if i < 0 {
		return fs
	}
	for _, c := range name[i+3:] {
		switch c {
		case 'D':
			fs.Mask |= flagDraft
		case 'F':
			fs.Mask |= flagFlagged
		case 'R':
			fs.Mask |= flagAnswered
		case 'S':
			fs.Mask |= flagSeen
		case 'T':
			fs.Mask |= flagDeleted
		case 'P':
			fs.Keywords = append(fs.Keywords, string(imap.FlagForwarded))
		}
	}
	return fs
}

// parseFile parses a message file for the index.
func parseFile(path string) (parsed, error) {
	f, err := os.Open(path)
	if err != nil {
		return parsed{}, err
	}
	defer f.Close()
	return parseMessage(f)
}

// indexBatch is how many found files share one transaction when indexed.
const indexBatch = 200

// foundFile is a file without a row, parsed and ready to index.
type foundFile struct {
	m     diskMessage
	full  string
	size  int64
	mtime time.Time
	p     parsed
}

// maxFilesLogged is how many files indexFiles logs by name.
const maxFilesLogged = 20

// indexedFile is a file indexFiles gave a row, for its log line.
type indexedFile struct {
	uid  imap.UID
	rel  string
	size int64
}

// indexFiles adds rows for files found without one, in batches: files are
// parsed outside the writer lock, then each batch is one transaction. A file
// keeps its name and place; its internal date is its modification time.
// indexed holds the mailbox's rows as read before (file to UID); it is
// brought up to date under the writer lock with the rows added since, which
// have greater UIDs (deliveries and reconciliations take UIDNEXT; a rebuild,
// the one path that inserts older UIDs, indexes each account once, through
// here, before it is used), so no index on file names is needed.
func (a *account) indexFiles(ctx context.Context, id int64, ms []diskMessage, indexed map[string]imap.UID) (int, error) {
	n := 0
	// Outside a rebuild each file indexed is logged, the first
	// maxFilesLogged of them by name (files dropped in by hand can be
	// many: one summary line for the rest).
	logged, unlogged := 0, 0
	defer func() {
		if unlogged > 0 {
			a.log.Warn("indexed more message files that had no index row", "mailbox", id, "count", unlogged)
		}
	}()
	var seen imap.UID
	for _, uid := range indexed {
		seen = max(seen, uid)
	}
	for start := 0; start < len(ms); start += indexBatch {
		var batch []foundFile
		for _, m := range ms[start:min(start+indexBatch, len(ms))] {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			full := filepath.Join(a.mailboxDir(id), filepath.FromSlash(m.rel))
			info, err := os.Stat(full)
			if err != nil {
				continue
			}
			p, err := parseFile(full)
			if err != nil {
				a.log.Error("cannot read message file to index it", "path", m.rel, "err", err)
				continue
			}
			batch = append(batch, foundFile{m: m, full: full, size: info.Size(), mtime: info.ModTime(), p: p})
		}
		done := 0
		added := map[string]imap.UID{}
		var toLog []indexedFile
		err := a.write(ctx, func(w *wtx) error {
			done = 0
			clear(added)
			toLog = toLog[:0]
			var modseq uint64
			// Checked again under the writer lock: a delivery may have
			// committed one of the files, or removed it, meanwhile.
			rows, err := w.Query(`SELECT uid, file FROM messages WHERE mailbox = ? AND uid > ?`, id, int64(seen))
			err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
				var uid int64
				var f string
				if err := row.Scan(&uid, &f); err != nil {
					return err
				}
				indexed[f] = imap.UID(uid)
				seen = max(seen, imap.UID(uid))
				return nil
			})
			if err != nil {
				return err
			}
			for _, ff := range batch {
				if _, ok := indexed[ff.m.rel]; ok {
					continue
				}
				if _, ok := added[ff.m.rel]; ok {
					continue
				}
				if a.isInflight(messagePath(id, ff.m.rel)) {
					continue
				}
				if _, err := os.Stat(ff.full); err != nil {
					continue
				}
				if modseq == 0 {
					if modseq, err = w.bump(id); err != nil {
						return err
					}
				}
				uid, fs, kw, idate, zone := a.rebuild.rebuiltRow(id, ff.m.rel, ff.mtime)
				if uid == 0 {
					if err := w.QueryRow(`UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ? RETURNING uidnext - 1`, id).Scan(&uid); err != nil {
						return err
					}
				}
				if _, err := w.Exec(`INSERT INTO messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone, sentdate, file, envelope, bodystructure)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					id, uid, int64(modseq), fs.Mask, nullIfEmpty(kw), ff.size,
					idate, zone, ff.p.SentDate, ff.m.rel, ff.p.Envelope, ff.p.BodyStructure); err != nil {
					return err
				}
				w.usedDelta += ff.size
				added[ff.m.rel] = imap.UID(uid)
				w.event(mailstore.Event{Kind: mailstore.EventAppend, MailboxID: id, UID: imap.UID(uid), ModSeq: modseq, Flags: flagList(fs.Mask, kw)})
				if a.rebuild == nil {
					toLog = append(toLog, indexedFile{imap.UID(uid), ff.m.rel, ff.size})
				} else {
					a.rebuild.messages++
				}
				done++
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		for _, f := range toLog {
			if logged == maxFilesLogged {
				unlogged++
				continue
			}
			logged++
			a.log.Warn("indexed message file that had no index row", "mailbox", id, "uid", f.uid, "path", f.rel, "size", f.size)
		}
		maps.Copy(indexed, added)
		n += done
	}
	return n, nil
}
