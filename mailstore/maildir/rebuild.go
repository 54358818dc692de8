package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/posthouse/posthouse/mailstore"
)

// rebuildState is what an index rebuild knows while it runs (on the
// opening goroutine, before the account is handed out) and what it reports
// when done.
type rebuildState struct {
	reason  string
	aside   string   // where the damaged index was moved; "" when there was none
	salvage *salvage // what the damaged index still told; nil: nothing
	start   time.Time

	messages   int // rows made from files
	uidsKept   int // of which under their old UID
	flagsIndex int // flags from the old index
	flagsName  int // flags from a Maildir info suffix (":2,FS")
}

// salvage is what a damaged index still says, read row by row and checked.
type salvage struct {
	mailboxes     map[int64]*salvagedMailbox
	subscriptions []string
	uidValidity   uint32 // the last one handed out (meta), 0 if unknown
	err           error  // why reading stopped early, if it did
}

// salvagedMailbox is one mailbox row of a damaged index and its messages.
// keep says the mailbox keeps its UIDVALIDITY and its messages their UIDs:
// its row was sane and every message row was read and sane. Otherwise only
// flags and internal dates are taken, by file name.
type salvagedMailbox struct {
	name, specialUse string
	uidValidity      uint32
	uidNext          int64
	highestModSeq    int64
	keep             bool
	byFile           map[string]salvagedMessage
}

type salvagedMessage struct {
	uid          int64
	flags        int64
	keywords     string
	internalDate int64
	internalZone int64
}

// lookup returns what the salvage knows of a file of mailbox id, and
// whether its UID may be kept.
func (rb *rebuildState) lookup(id int64, rel string) (salvagedMessage, bool, bool) {
	if rb == nil || rb.salvage == nil {
		return salvagedMessage{}, false, false
	}
	mb := rb.salvage.mailboxes[id]
	if mb == nil {
		return salvagedMessage{}, false, false
	}
	m, ok := mb.byFile[rel]
	return m, ok, ok && mb.keep
}

// keeps reports whether mailbox id keeps its UIDVALIDITY and UIDs.
func (rb *rebuildState) keeps(id int64) *salvagedMailbox {
	if rb == nil || rb.salvage == nil {
		return nil
	}
	if mb := rb.salvage.mailboxes[id]; mb != nil && mb.keep {
		return mb
	}
	return nil
}

// moveIndexAside renames the index and its -wal and -shm files to
// index.sqlite.corrupt-<time>, for the administrator, and returns the new
// name. Nothing is deleted.
func (a *account) moveIndexAside(idx string) (string, error) {
	aside := idx + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000")
	for _, suf := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(idx+suf, aside+suf); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("maildir: move damaged index of %s aside: %w", a.name, err)
		}
	}
	return aside, nil
}

// hasMailboxDirs reports whether the account's Maildir holds mailbox
// directories: an index that is missing or empty then lost them.
func (a *account) hasMailboxDirs() bool {
	ents, _ := os.ReadDir(a.maildir())
	for _, e := range ents {
		if id, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && id > 0 && e.IsDir() {
			return true
		}
	}
	return false
}

// readSalvage reads what it can of a damaged index, read-only. Each table is
// read by a full scan (NOT INDEXED: a damaged index b-tree must not hide
// rows), and a row is taken only if it is sane. A mailbox keeps its UIDs
// only if its row and every message row were read: a message row lost with
// a damaged page could hold a UID that would otherwise be given again.
func readSalvage(ctx context.Context, path string) *salvage {
	sv := &salvage{mailboxes: map[int64]*salvagedMailbox{}}
	q := url.Values{}
	q.Set("mode", "ro")
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		// No log to replay: read the file as it is, taking no lock and
		// creating no -shm beside it.
		q.Set("immutable", "1")
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		sv.err = err
		return sv
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	var v sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'uidvalidity'`).Scan(&v); err == nil {
		if n, err := strconv.ParseUint(v.String, 10, 32); err == nil {
			sv.uidValidity = uint32(n)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT id, name, special_use, uidvalidity, uidnext, highestmodseq FROM mailboxes`)
	if err != nil {
		sv.err = err
		return sv
	}
	for rows.Next() {
		var (
			id                  int64
			name, su            string
			uv, next, highestMS int64
		)
		if err := rows.Scan(&id, &name, &su, &uv, &next, &highestMS); err != nil {
			continue
		}
		canon, err := mailstore.ParseMailboxName(name)
		if err != nil || canon != name || !validSpecialUse(su) || id <= 0 ||
			uv <= 0 || uv > math.MaxUint32 || next < 1 || next > math.MaxUint32+1 || highestMS < 1 {
			continue
		}
		sv.mailboxes[id] = &salvagedMailbox{name: name, specialUse: su, uidValidity: uint32(uv),
			uidNext: next, highestModSeq: highestMS, keep: true, byFile: map[string]salvagedMessage{}}
	}
	if err := rows.Err(); err != nil {
		// Mailbox rows may be missing: a lost row's UIDs are unknown,
		// but its directory is found and gets a new UIDVALIDITY.
		sv.err = err
	}
	rows.Close()

	rows, err = db.QueryContext(ctx, `SELECT mailbox, uid, flags, ifnull(keywords, ''), internaldate, internalzone, file FROM messages NOT INDEXED`)
	if err != nil {
		sv.err = errors.Join(sv.err, err)
		sv.distrust()
		return sv
	}
	seenUID := map[[2]int64]bool{}
	for rows.Next() {
		var (
			m    salvagedMessage
			mbox int64
			file string
		)
		if err := rows.Scan(&mbox, &m.uid, &m.flags, &m.keywords, &m.internalDate, &m.internalZone, &file); err != nil {
			sv.distrust()
			continue
		}
		mb := sv.mailboxes[mbox]
		if mb == nil {
			continue
		}
		if !saneMessage(&m, file) || m.uid >= mb.uidNext || seenUID[[2]int64{mbox, m.uid}] {
			mb.keep = false
			continue
		}
		if _, dup := mb.byFile[file]; dup {
			mb.keep = false
			continue
		}
		seenUID[[2]int64{mbox, m.uid}] = true
		mb.byFile[file] = m
	}
	if err := rows.Err(); err != nil {
		sv.err = errors.Join(sv.err, err)
		sv.distrust()
	}
	rows.Close()

	rows, err = db.QueryContext(ctx, `SELECT name FROM subscriptions`)
	if err == nil {
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil {
				if c, err := mailstore.ParseMailboxName(n); err == nil && c == n {
					sv.subscriptions = append(sv.subscriptions, n)
				}
			}
		}
		rows.Close()
	}
	return sv
}

// distrust keeps no mailbox's UIDs: message rows were lost.
func (sv *salvage) distrust() {
	for _, mb := range sv.mailboxes {
		mb.keep = false
	}
}

// saneMessage checks a salvaged message row and normalizes its flags.
func saneMessage(m *salvagedMessage, file string) bool {
	if m.uid < 1 || m.uid > math.MaxUint32 || m.flags&^flagAll != 0 {
		return false
	}
	if !(strings.HasPrefix(file, "cur/") || strings.HasPrefix(file, "new/")) ||
		strings.Count(file, "/") != 1 || !filepath.IsLocal(file) || len(file) > 255+4 {
		return false
	}
	if m.internalZone < -24*3600 || m.internalZone > 24*3600 {
		m.internalZone = 0
	}
	var kws []string
	for _, k := range strings.Fields(m.keywords) {
		if validKeyword(k) && !containsFold(kws, k) && len(kws) < maxKeywords {
			kws = append(kws, k)
		}
	}
	m.keywords = joinKeywords(kws)
	return true
}

// finishRebuild completes a rebuild after reconciliation indexed the files:
// for mailboxes that kept their UIDs, the UIDs below the old UIDNEXT that
// did not come back are recorded as expunged, so a QRESYNC client is told
// (RFC 7162 §3.2.5.1); every rebuilt message counts as seen by earlier
// sessions (not \Recent); subscriptions are restored; one line says what
// happened.
func (a *account) finishRebuild(ctx context.Context, rb *rebuildState) error {
	var kept, renewed []string
	ids, err := a.mailboxIDs(ctx)
	if err != nil {
		return err
	}
	gaps := map[int64][][2]int64{}
	for _, id := range ids {
		mb := rb.keeps(id)
		if mb == nil {
			continue
		}
		uids, err := readValues[int64](ctx, a, `SELECT uid FROM messages WHERE mailbox = ? AND uid < ? ORDER BY uid`, id, mb.uidNext)
		if err != nil {
			return err
		}
		next := int64(1)
		for _, u := range append(uids, mb.uidNext) {
			if u > next {
				gaps[id] = append(gaps[id], [2]int64{next, u - 1})
			}
			next = u + 1
		}
	}
	err = a.write(ctx, func(w *wtx) error {
		for id, rs := range gaps {
			m, err := w.bump(id)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if _, err := w.Exec(`INSERT OR IGNORE INTO expunged (mailbox, modseq, uid_lo, uid_hi) VALUES (?, ?, ?, ?)`, id, int64(m), r[0], r[1]); err != nil {
					return err
				}
			}
		}
		if _, err := w.Exec(`UPDATE mailboxes SET recent_uid = uidnext`); err != nil {
			return err
		}
		if rb.salvage != nil && len(rb.salvage.subscriptions) > 0 {
			for _, n := range rb.salvage.subscriptions {
				if _, err := w.Exec(`INSERT OR IGNORE INTO subscriptions (name) VALUES (?)`, n); err != nil {
					return err
				}
			}
			return nil
		}
		// Subscriptions lost with the index: subscribe to every mailbox,
		// or clients that list subscribed mailboxes only (Thunderbird by
		// default) would show none but INBOX.
		_, err := w.Exec(`INSERT OR IGNORE INTO subscriptions (name) SELECT name FROM mailboxes`)
		return err
	})
	if err != nil {
		return fmt.Errorf("maildir: rebuild %s: %w", a.name, err)
	}
	mbs, err := a.listMailboxes(ctx)
	if err != nil {
		return err
	}
	for _, mb := range mbs {
		if rb.keeps(mb.ID) != nil {
			kept = append(kept, mb.Name)
		} else {
			renewed = append(renewed, mb.Name)
		}
	}
	attrs := []any{"reason", rb.reason, "messages", rb.messages,
		"uids_kept", rb.uidsKept, "flags_from_index", rb.flagsIndex, "flags_from_names", rb.flagsName,
		"mailboxes_kept_uidvalidity", strings.Join(kept, ","), "mailboxes_new_uidvalidity", strings.Join(renewed, ","),
		"dur", time.Since(rb.start).Round(time.Millisecond)}
	if rb.aside != "" {
		attrs = append(attrs, "damaged_index_kept_as", rb.aside)
	}
	if rb.salvage != nil && rb.salvage.err != nil {
		attrs = append(attrs, "salvage_stopped", rb.salvage.err.Error())
	}
	a.log.Error("index rebuilt from the Maildir", attrs...)
	return nil
}

// listMailboxes returns every mailbox's ID and name.
func (a *account) listMailboxes(ctx context.Context) ([]struct {
	ID   int64
	Name string
}, error) {
	var out []struct {
		ID   int64
		Name string
	}
	err := a.readTx(ctx, func(r *rtx) error {
		rows, err := r.query(`SELECT id, name FROM mailboxes ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var x struct {
				ID   int64
				Name string
			}
			if err := rows.Scan(&x.ID, &x.Name); err != nil {
				return err
			}
			out = append(out, x)
		}
		return rows.Err()
	})
	return out, err
}

// rebuiltRow gives a file found during a rebuild its UID (0: a new one),
// flags and internal date: from the damaged index where it knew the file,
// else from the file's name and modification time.
func (rb *rebuildState) rebuiltRow(id int64, rel string, mtime time.Time) (uid int64, fs flagSet, kw string, idate, zone int64) {
	idate = mtime.Unix()
	if m, ok, keep := rb.lookup(id, rel); ok {
		rb.flagsIndex++
		if keep {
			uid = m.uid
			rb.uidsKept++
		}
		return uid, flagSet{Mask: m.flags}, m.keywords, m.internalDate, m.internalZone
	}
	fs = maildirInfoFlags(filepath.Base(rel))
	if rb != nil && (fs.Mask != 0 || len(fs.Keywords) > 0) {
		rb.flagsName++
	}
	return 0, fs, joinKeywords(fs.Keywords), idate, 0
}
