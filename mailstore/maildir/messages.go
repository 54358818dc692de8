package maildir

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/regfile"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

var zeroTime time.Time

// uidRange is a closed UID interval.
type uidRange struct{ lo, hi imap.UID }

// resolveUIDs turns a UID set into sorted, merged closed ranges. '*' (0)
// stands for max, the largest UID in use (RFC 9051 §9 seq-number); n:* with
// n above max is max:n, which includes max.
func resolveUIDs(set imap.UIDSet, max imap.UID) []uidRange {
	var out []uidRange
	for _, r := range set {
		lo, hi := mailstore.RangeBounds(r.Start, r.Stop, max)
		if hi == 0 {
			continue
		}
		if lo == 0 {
			lo = 1
		}
		out = append(out, uidRange{lo, hi})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lo < out[j].lo })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && (r.lo <= merged[n-1].hi || r.lo-1 == merged[n-1].hi) {
			if r.hi > merged[n-1].hi {
				merged[n-1].hi = r.hi
			}
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

func dynamic(set imap.UIDSet) bool {
	for _, r := range set {
		if r.Start == 0 || r.Stop == 0 {
			return true
		}
	}
	return false
}

type querier interface {
	queryRowAny(q string, args ...any) *sql.Row
}

func (r *rtx) queryRowAny(q string, args ...any) *sql.Row { return r.queryRow(q, args...) }
func (w *wtx) queryRowAny(q string, args ...any) *sql.Row { return w.QueryRow(q, args...) }

// uidRanges resolves set against the mailbox's largest UID, querying it only
// when the set uses '*'.
func uidRanges(q querier, mailboxID int64, set imap.UIDSet) ([]uidRange, error) {
	var max imap.UID
	if dynamic(set) {
		var m sql.NullInt64
		if err := q.queryRowAny(`SELECT max(uid) FROM messages WHERE mailbox = ?`, mailboxID).Scan(&m); err != nil {
			return nil, err
		}
		max = imap.UID(m.Int64)
	}
	return resolveUIDs(set, max), nil
}

// snapshot lists a mailbox from the covering index messages_snapshot.
func (a *account) snapshot(ctx context.Context, mailboxID int64) (mailstore.Snapshot, error) {
	var snap mailstore.Snapshot
	err := a.readTx(ctx, func(r *rtx) error {
		mb := &snap.Mailbox
		err := r.queryRow(`SELECT `+mailboxColumns+`, m.uidnext, m.highestmodseq FROM mailboxes m WHERE m.id = ?`, mailboxID).
			Scan(&mb.ID, &mb.Name, &mb.SpecialUse, &mb.UIDValidity, &mb.Subscribed, &snap.UIDNext, &snap.HighestModSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, mailboxID)
		}
		if err != nil {
			return err
		}
		if cached := a.cachedSummaries(mailboxID, snap.HighestModSeq); cached != nil {
			snap.Messages = slices.Clone(cached)
			return nil
		}
		snap.Messages, err = r.summaries(mailboxID, snap.HighestModSeq)
		return err
	})
	if err != nil {
		return mailstore.Snapshot{}, fmt.Errorf("maildir: snapshot: %w", err)
	}
	return snap, nil
}

// summaries reads a mailbox's UIDs, modseqs and flags and caches the list
// (if large) under modseq, the mailbox's HIGHESTMODSEQ in this transaction.
func (r *rtx) summaries(mailboxID int64, modseq uint64) ([]mailstore.Summary, error) {
	// SQLite renders each column of the list as one string: one call into
	// SQLite instead of one per row and column. Measured on 100,000
	// messages this is several times faster than scanning rows (see
	// doc.go). The covering index yields rows in UID order;
	// parseSummaries checks that and sorts if not.
	var cols [4]sql.NullString
	if err := r.queryRow(`SELECT group_concat(uid, ' '), group_concat(modseq, ' '), group_concat(flags, ' '),
		group_concat(ifnull(keywords, ''), char(10))
		FROM messages INDEXED BY messages_snapshot WHERE mailbox = ?`, mailboxID).Scan(&cols[0], &cols[1], &cols[2], &cols[3]); err != nil {
		return nil, err
	}
	msgs, err := parseSummaries(cols[0].String, cols[1].String, cols[2].String, cols[3].String)
	if err != nil {
		return nil, err
	}
	r.a.cacheSnapshot(mailboxID, modseq, msgs)
	return msgs, nil
}

// Snapshots of large mailboxes are cached, keyed by the mailbox's
// HIGHESTMODSEQ: every change to a mailbox's messages (in this process or
// another) bumps it in the same transaction, so an entry with the current
// modseq is exactly what the index holds. Reselecting a large, unchanged
// mailbox then costs a copy instead of a scan.
const (
	snapshotCacheMin     = 1000 // messages; smaller mailboxes are cheap to read
	snapshotCacheEntries = 4    // per account
)

type cachedSnap struct {
	mailbox int64
	modseq  uint64
	msgs    []mailstore.Summary
}

// cachedSummaries returns the cached list, or nil. It is shared: callers
// copy it before handing it out, or only read it.
func (a *account) cachedSummaries(mailboxID int64, modseq uint64) []mailstore.Summary {
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	for _, c := range a.snapCache {
		if c.mailbox == mailboxID && c.modseq == modseq {
			return c.msgs
		}
	}
	return nil
}

func (a *account) cacheSnapshot(mailboxID int64, modseq uint64, msgs []mailstore.Summary) {
	if len(msgs) < snapshotCacheMin {
		return
	}
	c := cachedSnap{mailboxID, modseq, append([]mailstore.Summary(nil), msgs...)}
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	for i, x := range a.snapCache {
		if x.mailbox == mailboxID {
			if x.modseq < modseq {
				a.snapCache[i] = c
			}
			return
		}
	}
	if len(a.snapCache) >= snapshotCacheEntries {
		a.snapCache = a.snapCache[1:]
	}
	a.snapCache = append(a.snapCache, c)
}

// parseSummaries parses snapshot's column lists: UIDs, modseqs and flag
// masks separated by spaces, keywords (themselves space-separated) by
// newlines.
func parseSummaries(uids, modseqs, masks, keywords string) ([]mailstore.Summary, error) {
	if uids == "" {
		return []mailstore.Summary{}, nil
	}
	n := strings.Count(uids, " ") + 1
	out := make([]mailstore.Summary, 0, n)
	sorted := true
	var prev uint64
	for i := 0; i < n; i++ {
		var u, m, f, k string
		u, uids, _ = strings.Cut(uids, " ")
		m, modseqs, _ = strings.Cut(modseqs, " ")
		f, masks, _ = strings.Cut(masks, " ")
		k, keywords, _ = strings.Cut(keywords, "\n")
		uid, err1 := strconv.ParseUint(u, 10, 32)
		modseq, err2 := strconv.ParseUint(m, 10, 64)
		flags, err3 := strconv.ParseInt(f, 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("bad snapshot entry %d: %q %q %q", i, u, m, f)
		}
		if uid <= prev {
			sorted = false
		}
		prev = uid
		out = append(out, mailstore.Summary{UID: imap.UID(uid), ModSeq: modseq, Flags: flagList(flags, k)})
	}
	if modseqs != "" || masks != "" {
		return nil, errors.New("snapshot columns of different lengths")
	}
	if !sorted {
		sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	}
	return out, nil
}

// fetch reads index rows; it never opens message files.
func (a *account) fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error) {
	q := `SELECT uid, modseq, flags, keywords, size, internaldate, internalzone`
	if opts.Envelope {
		q += `, envelope`
	}
	if opts.BodyStructure {
		q += `, bodystructure`
	}
	if opts.EmailID {
		q += `, emailid`
	}
	if opts.Envelope || opts.BodyStructure {
		q += `, file` // for rows whose cache is not filled yet (summaries.go)
	}
	cols := q
	q += ` FROM messages WHERE mailbox = ? AND uid BETWEEN ? AND ? ORDER BY uid`
	var (
		out []mailstore.MessageInfo
		sc  *infoScanner
	)
	rows := func(r *rtx) error {
		ranges, err := uidRanges(r, mailboxID, uids)
		if err != nil {
			return err
		}
		if opts.SummaryOnly && opts.ChangedSince == 0 && !opts.Envelope && !opts.BodyStructure && !opts.EmailID {
			var ok bool
			if out, ok, err = r.fetchSummaries(mailboxID, ranges); ok || err != nil {
				return err
			}
		}
		sc = newInfoScanner(r.a, opts)
		if opts.ChangedSince > 0 {
			out, err = changedSince(r, sc, cols, mailboxID, ranges, opts.ChangedSince)
			return err
		}
		// Room for the messages named, up to a bound (UIDs may be sparse):
		// growing the slice was a tenth of what a FETCH allocated.
		out = make([]mailstore.MessageInfo, 0, min(span(ranges), fetchPresize))
		return eachInRanges(r.query, q, mailboxID, ranges, func(row sqlitedb.Scanner) error {
			mi, err := sc.scan(row)
			if err != nil {
				return err
			}
			out = append(out, mi)
			return nil
		})
	}
	err := a.readTx(ctx, func(r *rtx) error {
		out = nil
		err := rows(r)
		// A message row goes with its mailbox (ON DELETE CASCADE), so
		// only an answer without rows needs the mailbox check, to tell a
		// deleted mailbox from no messages (fetchSummaries finds no
		// mailbox row either). It was a statement of every FETCH.
		if (err == nil && len(out) == 0) || errors.Is(err, sql.ErrNoRows) {
			if cerr := r.checkMailbox(mailboxID); cerr != nil {
				return cerr
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: fetch: %w", err)
	}
	if sc != nil && len(sc.uncached) > 0 {
		a.fillSummaries(ctx, mailboxID, out, sc.uncached)
	}
	return out, nil
}

// fetchPresize bounds the room a Fetch makes for its answer up front.
const fetchPresize = 256

// span counts the UIDs of ranges, in use or not.
func span(ranges []uidRange) int64 {
	var n int64
	for _, rg := range ranges {
		n += int64(rg.hi) - int64(rg.lo) + 1
	}
	return n
}

// summaryFetchMin is the fewest messages a FETCH of flags alone must name
// to read the whole mailbox's list rather than its rows, when that list is
// not cached: on 100,000 messages the list (one SQLite call) costs what
// scanning about a fifth of the rows does, and later FETCHes find it
// cached.
const summaryFetchMin = 2000

// fetchSummaries answers a FETCH of flags alone from the mailbox's cached
// list (the one Snapshot keeps), without a row read per message; ok is
// false when that list is neither cached nor worth reading for ranges.
func (r *rtx) fetchSummaries(mailboxID int64, ranges []uidRange) (_ []mailstore.MessageInfo, ok bool, _ error) {
	var modseq uint64
	if err := r.queryRow(`SELECT highestmodseq FROM mailboxes WHERE id = ?`, mailboxID).Scan(&modseq); err != nil {
		return nil, false, err
	}
	list := r.a.cachedSummaries(mailboxID, modseq)
	if list == nil {
		if span(ranges) < summaryFetchMin {
			return nil, false, nil
		}
		var err error
		if list, err = r.summaries(mailboxID, modseq); err != nil {
			return nil, false, err
		}
	}
	// Each range's slice of the list, then one allocation for all.
	bounds := make([][2]int, len(ranges))
	n := 0
	for k, rg := range ranges {
		byUID := func(s mailstore.Summary, uid imap.UID) int { return cmp.Compare(s.UID, uid) }
		i, _ := slices.BinarySearchFunc(list, rg.lo, byUID)
		j := i
		if rg.hi < imap.UID(^uint32(0)) {
			j, _ = slices.BinarySearchFunc(list[i:], rg.hi+1, byUID)
			j += i
		} else {
			j = len(list)
		}
		bounds[k] = [2]int{i, j}
		n += j - i
	}
	out := make([]mailstore.MessageInfo, 0, n)
	for _, b := range bounds {
		for _, s := range list[b[0]:b[1]] {
			out = append(out, mailstore.MessageInfo{UID: s.UID, ModSeq: s.ModSeq, Flags: s.Flags})
		}
	}
	return out, true, nil
}

// changedSince reads the rows of ranges whose modseq is above since,
// through messages_modseq: one pass over the changes since, whatever the
// size of the mailbox or of the UID set, then sorted by UID.
func changedSince(r *rtx, sc *infoScanner, cols string, mailboxID int64, ranges []uidRange, since uint64) ([]mailstore.MessageInfo, error) {
	var out []mailstore.MessageInfo
	rows, err := r.query(cols+` FROM messages INDEXED BY messages_modseq WHERE mailbox = ? AND modseq > ?`, mailboxID, int64(since))
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		mi, err := sc.scan(row)
		if err != nil {
			return err
		}
		i := sort.Search(len(ranges), func(i int) bool { return ranges[i].hi >= mi.UID })
		if i < len(ranges) && ranges[i].lo <= mi.UID {
			out = append(out, mi)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out, err
}

// expunged lists the UID ranges expunged after modseq (schema step 5).
func (a *account) expunged(ctx context.Context, mailboxID int64, modseq uint64) (imap.UIDSet, error) {
	var set imap.UIDSet
	err := a.readTx(ctx, func(r *rtx) error {
		set = nil
		if err := r.checkMailbox(mailboxID); err != nil {
			return err
		}
		rows, err := r.query(`SELECT uid_lo, uid_hi FROM expunged WHERE mailbox = ? AND modseq > ?`, mailboxID, int64(modseq))
		var lo, hi int64
		return sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
			if err := row.Scan(&lo, &hi); err != nil {
				return err
			}
			set.AddRange(imap.UID(lo), imap.UID(hi))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: expunged: %w", err)
	}
	return set, nil
}

// eachInRanges runs q once per UID range, with the arguments mailboxID, the
// range's ends, then args, and calls fn for every row. query is the
// transaction's (rtx.query or wtx.Query), so q stays a prepared statement.
func eachInRanges(query func(q string, args ...any) (*sql.Rows, error), q string, mailboxID int64, ranges []uidRange, fn func(row sqlitedb.Scanner) error, args ...any) error {
	if uids, ok := scatteredUIDs(ranges); ok {
		if sq, ok := scatteredForm(q); ok { // one statement (scattered.go)
			rows, err := query(sq, append([]any{mailboxID, uids, 0}, args...)...)
			return sqlitedb.Each(rows, err, fn)
		}
	}
	for _, rg := range ranges {
		rows, err := query(q, append([]any{mailboxID, int64(rg.lo), int64(rg.hi)}, args...)...)
		if err := sqlitedb.Each(rows, err, fn); err != nil {
			return err
		}
	}
	return nil
}

// infoScanner scans fetch's rows into MessageInfo. Its scan targets are
// made once per fetch, not once per row; the cached envelope and body
// structure are read as sql.RawBytes, decoded before the next row and never
// kept, so a *sql.Rows is the only Scanner it takes.
type infoScanner struct {
	a                 *account
	opts              mailstore.FetchOptions
	uid, modseq, flag int64
	size, idate, zone int64
	emailID           int64
	kw                sql.NullString
	env, bs, file     sql.RawBytes
	dest              []any
	// uncached are the rows whose envelope or body structure was asked
	// for and is not in the index yet (schema step 8).
	uncached []uncachedRow
}

func newInfoScanner(a *account, opts mailstore.FetchOptions) *infoScanner {
	sc := &infoScanner{a: a, opts: opts}
	sc.dest = []any{&sc.uid, &sc.modseq, &sc.flag, &sc.kw, &sc.size, &sc.idate, &sc.zone}
	if opts.Envelope {
		sc.dest = append(sc.dest, &sc.env)
	}
	if opts.BodyStructure {
		sc.dest = append(sc.dest, &sc.bs)
	}
	if opts.EmailID {
		sc.dest = append(sc.dest, &sc.emailID)
	}
	if opts.Envelope || opts.BodyStructure {
		sc.dest = append(sc.dest, &sc.file)
	}
	return sc
}

func (sc *infoScanner) scan(row sqlitedb.Scanner) (mailstore.MessageInfo, error) {
	if err := row.Scan(sc.dest...); err != nil {
		return mailstore.MessageInfo{}, err
	}
	mi := mailstore.MessageInfo{
		UID:          imap.UID(sc.uid),
		ModSeq:       uint64(sc.modseq),
		Flags:        flagList(sc.flag, sc.kw.String),
		Size:         sc.size,
		InternalDate: internalDate(sc.idate, sc.zone),
	}
	if sc.opts.EmailID {
		mi.EmailID = emailID(sc.emailID)
	}
	if (sc.opts.Envelope && sc.env == nil) || (sc.opts.BodyStructure && sc.bs == nil) {
		// Filled from the file after the read (fillSummaries).
		sc.uncached = append(sc.uncached, uncachedRow{uid: mi.UID, file: string(sc.file)})
		return mi, nil
	}
	sc.a.decodeSummary(&mi, sc.env, sc.bs, sc.opts.Envelope, sc.opts.BodyStructure)
	return mi, nil
}

// decodeSummary sets mi's envelope (when env is wanted) and body
// structure (when bs is) from their cached forms. One that does not
// decode is logged and answered as an empty envelope or a plain-text
// structure, so one damaged row does not fail a FETCH.
func (a *account) decodeSummary(mi *mailstore.MessageInfo, env, bs []byte, wantEnv, wantBS bool) {
	var err error
	if wantEnv {
		if mi.Envelope, err = decodeEnvelope(env); err != nil {
			a.log.Error("cached envelope unreadable", "uid", mi.UID, "err", err)
			mi.Envelope = &imap.Envelope{}
		}
	}
	if wantBS {
		if mi.BodyStructure, err = decodeBodyStructure(bs); err != nil || mi.BodyStructure == nil {
			a.log.Error("cached body structure unreadable", "uid", mi.UID, "err", err)
			mi.BodyStructure = plainTextStructure()
		}
	}
}

// plainTextStructure is the body structure answered for a message whose
// own cannot be read.
func plainTextStructure() imap.BodyStructure {
	return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{}}
}

func internalDate(unix, zone int64) time.Time {
	t := time.Unix(unix, 0)
	if zone == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(zone)))
}

func (r *rtx) checkMailbox(id int64) error {
	var x int64
	err := r.queryRow(`SELECT id FROM mailboxes WHERE id = ?`, id).Scan(&x)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, id)
	}
	return err
}

// openMessage opens a message file for reading. The file name is one
// statement on the read pool, outside a transaction (the statement is its
// own consistent read): FETCH of bodies opens one message after another,
// and BEGIN, the mailbox check and ROLLBACK around each lookup were half of
// its CPU. Only a missing row costs the mailbox check, to tell which error.
func (a *account) openMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	var (
		file string
		size int64
	)
	err := a.messageFile(ctx, mailboxID, uid, &file, &size)
	if errors.Is(err, sql.ErrNoRows) {
		err = a.readTx(ctx, func(r *rtx) error {
			if err := r.checkMailbox(mailboxID); err != nil {
				return err
			}
			return fmt.Errorf("%w: uid %d", mailstore.ErrNoSuchMessage, uid)
		})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("maildir: open message: %w", err)
	}
	f, err := regfile.Open(filepath.Join(a.mailboxDir(mailboxID), filepath.FromSlash(file)))
	if errors.Is(err, os.ErrNotExist) {
		// Expunged since the lookup, or lost: a lost file's row is
		// expunged now (checked again under the writer lock), with a
		// log line and an EventExpunge, so every session learns of it.
		if _, xerr := a.expungeVanished(ctx, mailboxID, []imap.UID{uid}); xerr != nil {
			a.log.Error("expunge row of a lost message file", "mailbox", mailboxID, "uid", uid, "err", xerr)
		}
		return nil, 0, fmt.Errorf("maildir: open message: %w: uid %d has no file", mailstore.ErrNoSuchMessage, uid)
	}
	if err != nil {
		// Unreadable (permissions, an I/O error): the row stays, since
		// the file may come back; the caller answers a temporary error.
		a.log.Error("message file unreadable", "mailbox", mailboxID, "uid", uid, "path", file, "err", err)
		return nil, 0, fmt.Errorf("maildir: open message: %w", err)
	}
	return f, size, nil
}

// messageFile reads a message's file name and size (sql.ErrNoRows if none).
func (a *account) messageFile(ctx context.Context, mailboxID int64, uid imap.UID, file *string, size *int64) error {
	const q = `SELECT file, size FROM messages WHERE mailbox = ? AND uid = ?`
	a.stmtMu.Lock()
	db := a.db
	a.stmtMu.Unlock()
	if db == nil || a.gone.Load() {
		return mailstore.ErrClosed
	}
	return a.wrapErr(db.Read.QueryRowContext(sqlitedb.Quiet(ctx), q, mailboxID, int64(uid)).Scan(file, size))
}

// storeFlags changes flags in one transaction; changed messages share the
// transaction's new modseq.
func (a *account) storeFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op flagOp, fs flagSet, unchangedSince uint64) (mailstore.StoreResult, error) {
	var res mailstore.StoreResult
	err := a.writeRelaxed(ctx, func(w *wtx) error {
		res = mailstore.StoreResult{}
		if _, err := w.mailboxByID(mailboxID); err != nil {
			return err
		}
		ranges, err := uidRanges(w, mailboxID, uids)
		if err != nil {
			return err
		}
		if len(fs.Keywords) == 0 && (op == opAdd || op == opRemove) {
			return w.storeSystemFlags(&res, mailboxID, ranges, op, fs.Mask, unchangedSince)
		}
		type change struct {
			uid      int64
			flags    int64
			keywords string
		}
		var changes []change
		err = w.eachFlagRow(mailboxID, ranges, func(uid, modseq, flags int64, kw string) {
			// RFC 7162 §3.1.3: UNCHANGEDSINCE refuses messages changed
			// after the client's view.
			if unchangedSince > 0 && uint64(modseq) > unchangedSince {
				res.Modified = append(res.Modified, imap.UID(uid))
				return
			}
			nf, nk := applyFlags(flags, kw, op, fs)
			if nf == flags && nk == kw {
				res.Updated = append(res.Updated, mailstore.FlagUpdate{UID: imap.UID(uid), ModSeq: uint64(modseq), Flags: flagList(flags, kw)})
				return
			}
			changes = append(changes, change{uid, nf, nk})
			res.Updated = append(res.Updated, mailstore.FlagUpdate{UID: imap.UID(uid), Flags: flagList(nf, nk)})
		})
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		modseq, err := w.bump(mailboxID)
		if err != nil {
			return err
		}
		for _, c := range changes {
			if _, err := w.Exec(`UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox = ? AND uid = ?`,
				c.flags, nullIfEmpty(c.keywords), int64(modseq), mailboxID, c.uid); err != nil {
				return err
			}
		}
		for i := range res.Updated {
			if res.Updated[i].ModSeq == 0 {
				res.Updated[i].ModSeq = modseq
				u := res.Updated[i]
				w.event(mailstore.Event{Kind: mailstore.EventFlags, MailboxID: mailboxID, UID: u.UID, ModSeq: modseq, Flags: u.Flags})
			}
		}
		return nil
	})
	if err != nil {
		return mailstore.StoreResult{}, fmt.Errorf("maildir: store flags: %w", err)
	}
	return res, nil
}

// storeSystemFlags is StoreFlags for adding or removing system flags only
// (marking a whole mailbox read, deleting a range): one UPDATE per range
// changes the rows inside SQLite instead of one statement per message.
func (w *wtx) storeSystemFlags(res *mailstore.StoreResult, mailboxID int64, ranges []uidRange, op flagOp, mask int64, unchangedSince uint64) error {
	var next uint64
	if err := w.QueryRow(`SELECT highestmodseq + 1 FROM mailboxes WHERE id = ?`, mailboxID).Scan(&next); err != nil {
		return err
	}
	newFlags := `flags | ?4`
	if op == opRemove {
		newFlags = `flags & ~?4`
	}
	changed := map[int64]bool{}
	var uid int64 // one scan target for all rows
	// ?1-?3 are eachInRanges' mailbox and range. RFC 7162 §3.1.3:
	// UNCHANGEDSINCE (?6) leaves messages changed after the client's view
	// alone (0: no condition).
	err := eachInRanges(w.Query, `UPDATE messages SET flags = `+newFlags+`, modseq = ?5
		WHERE mailbox = ?1 AND uid BETWEEN ?2 AND ?3 AND flags != (`+newFlags+`) AND (?6 = 0 OR modseq <= ?6)
		RETURNING uid`, mailboxID, ranges, func(row sqlitedb.Scanner) error {
		if err := row.Scan(&uid); err != nil {
			return err
		}
		changed[uid] = true
		return nil
	}, mask, int64(next), int64(unchangedSince))
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		m, err := w.bump(mailboxID)
		if err != nil {
			return err
		}
		if m != next {
			return fmt.Errorf("modseq %d, expected %d", m, next)
		}
	}
	return w.eachFlagRow(mailboxID, ranges, func(uid, modseq, flags int64, kw string) {
		if !changed[uid] && unchangedSince > 0 && uint64(modseq) > unchangedSince {
			res.Modified = append(res.Modified, imap.UID(uid))
			return
		}
		fl := flagList(flags, kw)
		res.Updated = append(res.Updated, mailstore.FlagUpdate{UID: imap.UID(uid), ModSeq: uint64(modseq), Flags: fl})
		if changed[uid] {
			w.event(mailstore.Event{Kind: mailstore.EventFlags, MailboxID: mailboxID, UID: imap.UID(uid), ModSeq: uint64(modseq), Flags: fl})
		}
	})
}

// eachFlagRow calls fn with the flag state of every message of the mailbox
// whose UID falls in ranges, in ascending UID order.
func (w *wtx) eachFlagRow(mailboxID int64, ranges []uidRange, fn func(uid, modseq, flags int64, keywords string)) error {
	// One set of scan targets for all rows.
	var (
		uid, modseq, flags int64
		kw                 sql.NullString
	)
	return eachInRanges(w.Query, `SELECT uid, modseq, flags, keywords FROM messages WHERE mailbox = ? AND uid BETWEEN ? AND ? ORDER BY uid`,
		mailboxID, ranges, func(row sqlitedb.Scanner) error {
			if err := row.Scan(&uid, &modseq, &flags, &kw); err != nil {
				return err
			}
			fn(uid, modseq, flags, kw.String)
			return nil
		})
}

// fileRow is what placing or removing a message's file needs.
type fileRow struct {
	uid  int64
	size int64
	file string
}

// fileRows lists the messages of a mailbox in ranges, in UID order, that
// also meet cond ("" or " AND …" on args). query is the transaction's.
func fileRows(query func(q string, args ...any) (*sql.Rows, error), mailboxID int64, ranges []uidRange, cond string, args ...any) ([]fileRow, error) {
	var out []fileRow
	err := eachInRanges(query, `SELECT uid, size, file FROM messages WHERE mailbox = ? AND uid BETWEEN ? AND ?`+cond+` ORDER BY uid`,
		mailboxID, ranges, func(row sqlitedb.Scanner) error {
			var f fileRow
			if err := row.Scan(&f.uid, &f.size, &f.file); err != nil {
				return err
			}
			out = append(out, f)
			return nil
		}, args...)
	return out, err
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// expunge removes \Deleted messages (among uids, if given).
func (a *account) expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error) {
	var out []imap.UID
	err := a.writeRelaxed(ctx, func(w *wtx) error {
		out = nil
		if _, err := w.mailboxByID(mailboxID); err != nil {
			return err
		}
		ranges := []uidRange{{1, ^imap.UID(0)}}
		if uids != nil {
			var err error
			if ranges, err = uidRanges(w, mailboxID, *uids); err != nil {
				return err
			}
		}
		victims, err := fileRows(w.Query, mailboxID, ranges, ` AND (flags & ?) != 0`, flagDeleted)
		if err != nil {
			return err
		}
		out, err = w.expungeRows(mailboxID, victims)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: expunge: %w", err)
	}
	return out, nil
}

// expungeRows deletes the rows of victims (all in one mailbox) under one
// new modseq, sends their files to the trash and tells the watchers.
func (w *wtx) expungeRows(mailboxID int64, victims []fileRow) ([]imap.UID, error) {
	if len(victims) == 0 {
		return nil, nil
	}
	modseq, err := w.bump(mailboxID)
	if err != nil {
		return nil, err
	}
	out := make([]imap.UID, 0, len(victims))
	for _, v := range victims {
		if _, err := w.Exec(`DELETE FROM messages WHERE mailbox = ? AND uid = ?`, mailboxID, v.uid); err != nil {
			return nil, err
		}
		if err := w.addTrash(messagePath(mailboxID, v.file)); err != nil {
			return nil, err
		}
		w.usedDelta -= v.size
		out = append(out, imap.UID(v.uid))
		w.event(mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: mailboxID, UID: imap.UID(v.uid), ModSeq: modseq})
	}
	return out, nil
}

// messagePath is a message file's path relative to the account directory,
// with forward slashes, as the trash table keeps it.
func messagePath(mailboxID int64, file string) string {
	return fmt.Sprintf("%s/%d/%s", maildirDir, mailboxID, file)
}
