package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
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
	return mergeRanges(out)
}

func mergeRanges(out []uidRange) []uidRange {
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

// args collects a statement's parameters.
type args []any

// p adds v and returns its placeholder.
func (a *args) p(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// maxORRanges is the most ranges a UID condition spells out as BETWEENs
// (each an index range scan); more go through an array.
const maxORRanges = 8

// uidCond returns an SQL condition selecting the UIDs of set in column
// col of the mailbox whose ID is the SQL expression mb. '*' is resolved
// by the server (the largest UID of the mailbox, an index probe), so the
// condition is one statement whatever the set.
func uidCond(col, mb string, set imap.UIDSet, a *args) string {
	maxUID := `(SELECT max(uid) FROM mail_messages WHERE mailbox = ` + mb + `)`
	var static []uidRange
	var conds []string
	for _, r := range set {
		switch {
		case r.Start == 0 && r.Stop == 0:
			conds = append(conds, col+` = `+maxUID)
		case r.Start == 0 || r.Stop == 0:
			// n:* is n up to the largest UID, or the largest alone when
			// n is above it (LEAST ignores the NULL of an empty mailbox).
			n := max(r.Start, r.Stop)
			conds = append(conds, col+` >= least(`+a.p(int64(n))+`::bigint, `+maxUID+`)`)
		default:
			static = append(static, uidRange{min(r.Start, r.Stop), max(r.Start, r.Stop)})
		}
	}
	static = mergeRanges(static)
	if len(static) <= maxORRanges {
		for _, r := range static {
			if r.lo == r.hi {
				conds = append(conds, col+` = `+a.p(int64(r.lo)))
			} else {
				conds = append(conds, col+` BETWEEN `+a.p(int64(r.lo))+` AND `+a.p(int64(r.hi)))
			}
		}
	} else {
		los := make([]int64, len(static))
		his := make([]int64, len(static))
		for i, r := range static {
			los[i], his[i] = int64(r.lo), int64(r.hi)
		}
		conds = append(conds, `EXISTS (SELECT 1 FROM unnest(`+a.p(los)+`::bigint[], `+a.p(his)+`::bigint[]) AS r(lo, hi) WHERE `+col+` BETWEEN r.lo AND r.hi)`)
	}
	switch len(conds) {
	case 0:
		return "false"
	case 1:
		return conds[0]
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

func internalDate(unix, zone int64) time.Time {
	t := time.Unix(unix, 0)
	if zone == 0 {
		return t.UTC()
	}
	return t.In(time.FixedZone("", int(zone)))
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func noMailbox(id int64) error {
	return fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, id)
}

func (a *account) usage(ctx context.Context, messages bool) (int64, int64, error) {
	var bytes, msgs int64
	if err := a.s.pool.QueryRow(ctx, `SELECT bytes, msgs FROM mail_accounts WHERE id = $1`, a.id).Scan(&bytes, &msgs); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, 0, mailstore.ErrClosed // removed by another node
		}
		return 0, 0, a.wrapErr(fmt.Errorf("postgres: usage: %w", err))
	}
	limit, msgLimit, err := a.quotas(ctx)
	if err != nil {
		return 0, 0, err
	}
	if messages {
		return msgs, msgLimit, nil
	}
	return bytes, limit, nil
}

func (a *account) status(ctx context.Context, mailboxID int64) (mailstore.Status, error) {
	var st mailstore.Status
	var msgs, unseen, deleted, recent, uidnext, uv, recentUID int64
	err := a.s.pool.QueryRow(ctx, `SELECT b.msgs, b.unseen, b.deleted, b.bytes, b.uidnext, b.uidvalidity, b.highestmodseq, b.recent_uid,
			(SELECT count(*) FROM mail_messages m WHERE m.mailbox = b.id AND m.uid >= b.recent_uid)
		FROM mail_mailboxes b WHERE b.id = $1 AND b.account = $2`, mailboxID, a.id).
		Scan(&msgs, &unseen, &deleted, &st.Size, &uidnext, &uv, &st.HighestModSeq, &recentUID, &recent)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, noMailbox(mailboxID)
	}
	if err != nil {
		return st, a.wrapErr(fmt.Errorf("postgres: status: %w", err))
	}
	st.Messages, st.Unseen, st.Deleted, st.Recent = uint32(msgs), uint32(unseen), uint32(deleted), uint32(recent)
	st.UIDNext, st.UIDValidity, st.RecentUID = imap.UID(uidnext), uint32(uv), imap.UID(recentUID)
	return st, nil
}

func (a *account) claimRecent(ctx context.Context, mailboxID int64, upTo imap.UID) (imap.UID, error) {
	var from int64
	err := a.s.pool.QueryRow(ctx, `WITH o AS (
			SELECT id, recent_uid FROM mail_mailboxes WHERE id = $1 AND account = $2 FOR UPDATE)
		UPDATE mail_mailboxes b SET recent_uid = greatest(o.recent_uid, $3) FROM o WHERE b.id = o.id
		RETURNING o.recent_uid`, mailboxID, a.id, int64(upTo)).Scan(&from)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, noMailbox(mailboxID)
	}
	if err != nil {
		return 0, a.wrapErr(fmt.Errorf("postgres: claim recent: %w", err))
	}
	return imap.UID(from), nil
}

// summarySQL selects, for the mailbox row b, its messages matching cond
// as four arrays in UID order: UIDs, modseqs and flag masks of all, and
// the UIDs and keywords of those that have keywords (few do). One row of
// arrays decodes in a fraction of the time of a row per message, which is
// what a large mailbox's FETCH FLAGS and Snapshot cost otherwise.
func summarySQL(cond string) string {
	return `LEFT JOIN LATERAL (SELECT array_agg(m.uid ORDER BY m.uid) AS uids,
			array_agg(m.modseq ORDER BY m.uid) AS modseqs,
			array_agg(m.flags ORDER BY m.uid) AS flags,
			array_agg(m.uid ORDER BY m.uid) FILTER (WHERE m.keywords IS NOT NULL) AS kwuids,
			array_agg(m.keywords ORDER BY m.uid) FILTER (WHERE m.keywords IS NOT NULL) AS kws
		FROM mail_messages m WHERE m.mailbox = b.id AND ` + cond + `) x ON true`
}

// summaryArrays receives summarySQL's columns.
type summaryArrays struct {
	uids, modseqs []int64
	flags         []int32
	kwUIDs        []int64
	kws           []string
}

func (sa *summaryArrays) dest() []any {
	return []any{&sa.uids, &sa.modseqs, &sa.flags, &sa.kwUIDs, &sa.kws}
}

// each calls fn with every message, in UID order.
func (sa *summaryArrays) each(fn func(uid imap.UID, modseq uint64, flags []imap.Flag)) error {
	if len(sa.modseqs) != len(sa.uids) || len(sa.flags) != len(sa.uids) || len(sa.kws) != len(sa.kwUIDs) {
		return errors.New("summary arrays differ in length")
	}
	k := 0
	for i, u := range sa.uids {
		kw := ""
		if k < len(sa.kwUIDs) && sa.kwUIDs[k] == u {
			kw = sa.kws[k]
			k++
		}
		fn(imap.UID(u), uint64(sa.modseqs[i]), flagList(int64(sa.flags[i]), kw))
	}
	return nil
}

// snapshot lists a mailbox in one statement: a consistent read.
func (a *account) snapshot(ctx context.Context, mailboxID int64) (mailstore.Snapshot, error) {
	var (
		snap        mailstore.Snapshot
		uv, uidnext int64
		sa          summaryArrays
	)
	dest := append([]any{&snap.Mailbox.ID, &snap.Mailbox.Name, &snap.Mailbox.SpecialUse, &uv, &snap.Mailbox.Subscribed,
		&uidnext, &snap.HighestModSeq}, sa.dest()...)
	err := a.s.pool.QueryRow(ctx, `SELECT `+mailboxCols+`, b.uidnext, b.highestmodseq, x.uids, x.modseqs, x.flags, x.kwuids, x.kws
		FROM mail_mailboxes b `+summarySQL("true")+`
		WHERE b.id = $1 AND b.account = $2`, mailboxID, a.id).Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return snap, noMailbox(mailboxID)
	}
	if err != nil {
		return snap, a.wrapErr(fmt.Errorf("postgres: snapshot: %w", err))
	}
	snap.Messages = make([]mailstore.Summary, 0, len(sa.uids))
	err = sa.each(func(uid imap.UID, modseq uint64, flags []imap.Flag) {
		snap.Messages = append(snap.Messages, mailstore.Summary{UID: uid, ModSeq: modseq, Flags: flags})
	})
	if err != nil {
		return snap, fmt.Errorf("postgres: snapshot: %w", err)
	}
	snap.Mailbox.UIDValidity = uint32(uv)
	snap.UIDNext = imap.UID(uidnext)
	a.noteSnapshot(mailboxID, snap.HighestModSeq, snap.UIDNext)
	return snap, nil
}

// fetchSummaries is fetch for FetchOptions.SummaryOnly: one row of arrays.
func (a *account) fetchSummaries(ctx context.Context, mailboxID int64, uids imap.UIDSet, changedSince uint64) ([]mailstore.MessageInfo, error) {
	var ar args
	mb := ar.p(mailboxID)
	acct := ar.p(a.id)
	cond := uidCond("m.uid", mb, uids, &ar)
	if changedSince > 0 {
		cond += ` AND m.modseq > ` + ar.p(int64(changedSince))
	}
	var sa summaryArrays
	err := a.s.pool.QueryRow(ctx, `SELECT x.uids, x.modseqs, x.flags, x.kwuids, x.kws
		FROM mail_mailboxes b `+summarySQL(cond)+`
		WHERE b.id = `+mb+` AND b.account = `+acct, ar...).Scan(sa.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, noMailbox(mailboxID)
	}
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: fetch: %w", err))
	}
	var out []mailstore.MessageInfo
	if len(sa.uids) > 0 {
		out = make([]mailstore.MessageInfo, 0, len(sa.uids))
	}
	err = sa.each(func(uid imap.UID, modseq uint64, flags []imap.Flag) {
		out = append(out, mailstore.MessageInfo{UID: uid, ModSeq: modseq, Flags: flags})
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: fetch: %w", err)
	}
	return out, nil
}

// fetch reads the rows of uids in one statement. The mailbox row is the
// left side of the join, so a missing mailbox is no row at all and an
// empty selection one row of NULLs.
func (a *account) fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error) {
	if opts.SummaryOnly && !opts.Envelope && !opts.BodyStructure && !opts.EmailID {
		return a.fetchSummaries(ctx, mailboxID, uids, opts.ChangedSince)
	}
	var ar args
	mb := ar.p(mailboxID)
	acct := ar.p(a.id)
	// Columns are never NULL but in the one row of an empty selection
	// (uid 0): scanned without an allocation per row.
	cols := `coalesce(m.uid, 0), coalesce(m.modseq, 0), coalesce(m.flags, 0), m.keywords`
	const summary = false
	if !summary {
		cols += `, coalesce(m.size, 0), coalesce(m.internaldate, 0), coalesce(m.internalzone, 0)`
		if opts.Envelope {
			cols += `, m.envelope`
		}
		if opts.BodyStructure {
			cols += `, m.bodystructure`
		}
		if opts.EmailID {
			cols += `, coalesce(m.emailid, 0)`
		}
	}
	on := `m.mailbox = b.id AND ` + uidCond("m.uid", mb, uids, &ar)
	if opts.ChangedSince > 0 {
		on += ` AND m.modseq > ` + ar.p(int64(opts.ChangedSince))
	}
	rows, err := a.s.pool.Query(ctx, `SELECT `+cols+` FROM mail_mailboxes b LEFT JOIN mail_messages m ON `+on+`
		WHERE b.id = `+mb+` AND b.account = `+acct+` ORDER BY m.uid`, ar...)
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: fetch: %w", err))
	}
	defer rows.Close()
	var (
		uid, modseq, flag int64
		kw                pgtype.Text
		size, idate, zone int64
		env, bs           []byte
		eid               int64
	)
	dest := []any{&uid, &modseq, &flag, &kw}
	if !summary {
		dest = append(dest, &size, &idate, &zone)
		if opts.Envelope {
			dest = append(dest, &env)
		}
		if opts.BodyStructure {
			dest = append(dest, &bs)
		}
		if opts.EmailID {
			dest = append(dest, &eid)
		}
	}
	found := false
	var out []mailstore.MessageInfo
	for rows.Next() {
		found = true
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("postgres: fetch: %w", err)
		}
		if uid == 0 {
			continue
		}
		mi := mailstore.MessageInfo{UID: imap.UID(uid), ModSeq: uint64(modseq), Flags: flagList(flag, kw.String)}
		if !summary {
			mi.Size = size
			mi.InternalDate = internalDate(idate, zone)
			if opts.EmailID {
				mi.EmailID = emailID(eid)
			}
			if opts.Envelope {
				if mi.Envelope, err = decodeEnvelope(env); err != nil {
					a.log.Error("cached envelope unreadable", "uid", mi.UID, "err", err)
					mi.Envelope = &imap.Envelope{}
				}
			}
			if opts.BodyStructure {
				mi.BodyStructure, err = decodeBodyStructure(bs)
				if err != nil || mi.BodyStructure == nil {
					a.log.Error("cached body structure unreadable", "uid", mi.UID, "err", err)
					mi.BodyStructure = &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{}}
				}
			}
		}
		out = append(out, mi)
	}
	if err := rows.Err(); err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: fetch: %w", err))
	}
	if !found {
		return nil, noMailbox(mailboxID)
	}
	return out, nil
}

// expunged lists the UID ranges expunged after modseq.
func (a *account) expunged(ctx context.Context, mailboxID int64, modseq uint64) (imap.UIDSet, error) {
	rows, err := a.s.pool.Query(ctx, `SELECT e.uid_lo, e.uid_hi FROM mail_mailboxes b
		LEFT JOIN mail_expunged e ON e.mailbox = b.id AND e.modseq > $3
		WHERE b.id = $1 AND b.account = $2`, mailboxID, a.id, int64(modseq))
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: expunged: %w", err))
	}
	defer rows.Close()
	found := false
	var rs []uidRange
	for rows.Next() {
		found = true
		var lo, hi *int64
		if err := rows.Scan(&lo, &hi); err != nil {
			return nil, fmt.Errorf("postgres: expunged: %w", err)
		}
		if lo != nil {
			rs = append(rs, uidRange{imap.UID(*lo), imap.UID(*hi)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: expunged: %w", err))
	}
	if !found {
		return nil, noMailbox(mailboxID)
	}
	var set imap.UIDSet
	for _, r := range mergeRanges(rs) {
		set = append(set, imap.UIDRange{Start: r.lo, Stop: r.hi})
	}
	return set, nil
}

func (a *account) openMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	if pb, ok := a.s.bodies.(*PGBodies); ok {
		return a.openPGMessage(ctx, pb, mailboxID, uid)
	}
	var body, size *int64
	err := a.s.pool.QueryRow(ctx, `SELECT m.body, m.size FROM mail_mailboxes b
		LEFT JOIN mail_messages m ON m.mailbox = b.id AND m.uid = $3
		WHERE b.id = $1 AND b.account = $2`, mailboxID, a.id, int64(uid)).Scan(&body, &size)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, noMailbox(mailboxID)
	}
	if err != nil {
		return nil, 0, a.wrapErr(fmt.Errorf("postgres: open message: %w", err))
	}
	if body == nil {
		return nil, 0, fmt.Errorf("%w: uid %d", mailstore.ErrNoSuchMessage, uid)
	}
	r, err := a.s.bodies.Open(ctx, *body, *size)
	if errors.Is(err, errNoBody) {
		// Expunged between the two reads.
		return nil, 0, fmt.Errorf("%w: uid %d", mailstore.ErrNoSuchMessage, uid)
	}
	if err != nil {
		return nil, 0, a.wrapErr(err)
	}
	return r, *size, nil
}

// openPGMessage is openMessage with PGBodies: the row and the body's
// first chunk in one statement (one round trip for a message of one
// chunk, as nearly all are, where the row and then the body would take
// two), read from one snapshot, so the body cannot vanish in between.
func (a *account) openPGMessage(ctx context.Context, pb *PGBodies, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	var body, size *int64
	var first []byte
	var haveFirst *bool
	err := a.s.pool.QueryRow(ctx, `SELECT m.body, m.size, c.data, c.body IS NOT NULL FROM mail_mailboxes b
		LEFT JOIN mail_messages m ON m.mailbox = b.id AND m.uid = $3
		LEFT JOIN mail_body_chunks c ON c.body = m.body AND c.seq = 0
		WHERE b.id = $1 AND b.account = $2`, mailboxID, a.id, int64(uid)).Scan(&body, &size, &first, &haveFirst)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, noMailbox(mailboxID)
	}
	if err != nil {
		return nil, 0, a.wrapErr(fmt.Errorf("postgres: open message: %w", err))
	}
	if body == nil || haveFirst == nil || !*haveFirst {
		return nil, 0, fmt.Errorf("%w: uid %d", mailstore.ErrNoSuchMessage, uid)
	}
	return pb.opened(ctx, *body, *size, first), *size, nil
}

func (a *account) storeFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op flagOp, fs flagSet, unchangedSince uint64) (mailstore.StoreResult, error) {
	var res mailstore.StoreResult
	err := a.write(ctx, func(w *wtx) error {
		res = mailstore.StoreResult{}
		// The bump locks the mailbox (and checks it is the account's);
		// a call that changes nothing rolls it back.
		modseq, err := w.bump(mailboxID)
		if err != nil {
			return err
		}
		var ar args
		mb := ar.p(mailboxID)
		rows, err := w.Query(ctx, `SELECT m.uid, m.modseq, m.flags, m.keywords FROM mail_messages m
			WHERE m.mailbox = `+mb+` AND `+uidCond("m.uid", mb, uids, &ar)+` ORDER BY m.uid`, ar...)
		if err != nil {
			return err
		}
		var cuids, cflags []int64
		var ckws []*string
		for rows.Next() {
			var uid, ms, flags int64
			var kw *string
			if err := rows.Scan(&uid, &ms, &flags, &kw); err != nil {
				rows.Close()
				return err
			}
			k := ""
			if kw != nil {
				k = *kw
			}
			// RFC 7162 §3.1.3: UNCHANGEDSINCE refuses messages changed
			// after the client's view.
			if unchangedSince > 0 && uint64(ms) > unchangedSince {
				res.Modified = append(res.Modified, imap.UID(uid))
				continue
			}
			nf, nk := applyFlags(flags, k, op, fs)
			if nf == flags && nk == k {
				res.Updated = append(res.Updated, mailstore.FlagUpdate{UID: imap.UID(uid), ModSeq: uint64(ms), Flags: flagList(flags, k)})
				continue
			}
			cuids, cflags = append(cuids, uid), append(cflags, nf)
			var nkp *string
			if nk != "" {
				nkp = &nk
			}
			ckws = append(ckws, nkp)
			fl := flagList(nf, nk)
			res.Updated = append(res.Updated, mailstore.FlagUpdate{UID: imap.UID(uid), ModSeq: modseq, Flags: fl})
			w.event(mailstore.Event{Kind: mailstore.EventFlags, MailboxID: mailboxID, UID: imap.UID(uid), ModSeq: modseq, Flags: fl})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(cuids) == 0 {
			return errNoChange
		}
		_, err = w.Exec(ctx, `UPDATE mail_messages m SET flags = x.f, keywords = x.k, modseq = $2
			FROM unnest($3::bigint[], $4::integer[], $5::text[]) AS x(u, f, k)
			WHERE m.mailbox = $1 AND m.uid = x.u`, mailboxID, int64(modseq), cuids, cflags, ckws)
		return err
	})
	if err != nil {
		return mailstore.StoreResult{}, fmt.Errorf("postgres: store flags: %w", err)
	}
	return res, nil
}

func (a *account) expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error) {
	var gone []imap.UID
	err := a.write(ctx, func(w *wtx) error {
		gone = nil
		modseq, err := w.bump(mailboxID)
		if err != nil {
			return err
		}
		var ar args
		mb := ar.p(mailboxID)
		q := `DELETE FROM mail_messages m WHERE m.mailbox = ` + mb + ` AND m.flags & ` + strconv.Itoa(flagDeleted) + ` <> 0`
		if uids != nil {
			q += ` AND ` + uidCond("m.uid", mb, *uids, &ar)
		}
		rows, err := w.Query(ctx, q+` RETURNING m.uid, m.size, m.body`, ar...)
		if err != nil {
			return err
		}
		var size int64
		for rows.Next() {
			var uid, sz, body int64
			if err := rows.Scan(&uid, &sz, &body); err != nil {
				rows.Close()
				return err
			}
			gone = append(gone, imap.UID(uid))
			size += sz
			w.bodies = append(w.bodies, body)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(gone) == 0 {
			return errNoChange
		}
		sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
		if err := w.logExpunged(mailboxID, modseq, gone); err != nil {
			return err
		}
		if err := w.addUsage(-size, -int64(len(gone)), 0, 0); err != nil {
			return err
		}
		for _, u := range gone {
			w.event(mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: mailboxID, UID: u, ModSeq: modseq})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: expunge: %w", err)
	}
	return gone, nil
}

// logExpunged records expunged UIDs (ascending) for Expunged, as ranges.
func (w *wtx) logExpunged(mailboxID int64, modseq uint64, uids []imap.UID) error {
	var los, his []int64
	for _, r := range mailstore.UIDSetOf(uids) {
		los, his = append(los, int64(r.Start)), append(his, int64(r.Stop))
	}
	_, err := w.Exec(w.ctx, `INSERT INTO mail_expunged (mailbox, modseq, uid_lo, uid_hi)
		SELECT $1, $2, lo, hi FROM unnest($3::bigint[], $4::bigint[]) AS x(lo, hi)`, mailboxID, int64(modseq), los, his)
	return err
}

// appendMessage stores a message: its body (streamed through the MIME
// parser, which caches the envelope and body structure) and its row, in
// one transaction.
func (a *account) appendMessage(ctx context.Context, name string, fallbackInbox bool, r io.Reader, fs flagSet, date time.Time) (mailstore.AppendResult, error) {
	canon, err := mailstore.ParseMailboxName(name)
	if err != nil {
		if !fallbackInbox {
			return mailstore.AppendResult{}, err
		}
		canon = mailstore.Inbox
	}
	limit, msgLimit, err := a.quotas(ctx)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	if date.IsZero() {
		date = time.Now()
	}
	_, zone := date.Zone()
	var (
		res  mailstore.AppendResult
		body int64
		size int64
		p    parsed
	)
	// The body is stored before the writer lock: a slow client's APPEND
	// does not hold up the account's other writers.
	prep := func(w *wtx) error {
		// A quota already reached refuses before the body is read.
		if limit > 0 || msgLimit > 0 {
			var used, count int64
			if err := w.QueryRow(ctx, `SELECT bytes, msgs FROM mail_accounts WHERE id = $1`, a.id).Scan(&used, &count); err != nil {
				return err
			}
			if (limit > 0 && used >= limit) || (msgLimit > 0 && count >= msgLimit) {
				return mailstore.ErrOverQuota
			}
		}
		bw, err := a.s.bodies.Create(ctx, w.Tx)
		if err != nil {
			return err
		}
		src := r
		if limit > 0 {
			// One byte more than any quota allows is enough to refuse.
			src = io.LimitReader(r, limit+1)
		}
		cw := &countWriter{w: bw}
		root, err := mimeparse.Parse(io.TeeReader(src, cw))
		if err != nil {
			return fmt.Errorf("read message: %w", err)
		}
		if limit > 0 && cw.n > limit {
			return fmt.Errorf("message of more than %d bytes: %w", limit, mailstore.ErrOverQuota)
		}
		if body, err = bw.Close(); err != nil {
			return err
		}
		size = cw.n
		p, err = encodeParsed(root)
		return err
	}
	err = a.writePrepared(ctx, prep, func(w *wtx) error {
		// One statement allocates the UID and modseq (by the row lock of
		// the mailbox: atomic across nodes, never reused), inserts the
		// row, counts it in the account's usage and sends its event to
		// the other nodes (a notification, delivered at the commit).
		kw := joinKeywords(fs.Keywords)
		flags := flagList(fs.Mask, kw)
		fl := make([]string, len(flags))
		for i, f := range flags {
			fl[i] = string(f)
		}
		var id, uid, uv, used, count int64
		var modseq uint64
		deliverQ := func(mailbox string) error {
			return w.QueryRow(ctx, `WITH mb AS (
					UPDATE mail_mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
					WHERE account = $1 AND name = $2 RETURNING id, uidnext - 1 AS uid, highestmodseq, uidvalidity),
				ins AS (
					INSERT INTO mail_messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone,
						sentdate, body, messageid, envelope, bodystructure)
					SELECT mb.id, mb.uid, mb.highestmodseq, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM mb
					RETURNING mailbox),
				acc AS (
					UPDATE mail_accounts SET bytes = bytes + $5, msgs = msgs + 1
					WHERE id = $1 AND EXISTS (SELECT 1 FROM ins) RETURNING bytes, msgs),
				n AS (
					SELECT pg_notify($13, json_build_object('o', $14::text, 'a', $1::bigint, 'e', json_build_array(
						json_build_object('k', `+strconv.Itoa(int(mailstore.EventAppend))+`, 'm', mb.id, 'u', mb.uid,
							's', mb.highestmodseq, 'f', $15::text[], 'h', true)))::text) FROM mb)
				SELECT mb.id, mb.uid, mb.highestmodseq, mb.uidvalidity, acc.bytes, acc.msgs FROM mb, acc, n`,
				a.id, mailbox, fs.Mask, nullIfEmpty(kw), size, date.Unix(), zone,
				p.SentDate, body, p.MessageID, p.Envelope, p.BodyStructure,
				a.s.opts.Channel, a.s.origin, fl).Scan(&id, &uid, &modseq, &uv, &used, &count)
		}
		err := deliverQ(canon)
		if errors.Is(err, pgx.ErrNoRows) && fallbackInbox && canon != mailstore.Inbox {
			a.log.Info("delivery mailbox missing; using INBOX", "mailbox", canon)
			err = deliverQ(mailstore.Inbox)
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", mailstore.ErrNoSuchMailbox, canon)
		}
		if err != nil {
			return err
		}
		if limit > 0 && used > limit {
			return fmt.Errorf("%d bytes stored, quota %d: %w", used, limit, mailstore.ErrOverQuota)
		}
		if msgLimit > 0 && count > msgLimit {
			return fmt.Errorf("%d messages stored, quota %d: %w", count, msgLimit, mailstore.ErrOverQuota)
		}
		w.setModSeq(id, modseq)
		w.notified = true
		w.event(mailstore.Event{Kind: mailstore.EventAppend, MailboxID: id, UID: imap.UID(uid), ModSeq: modseq, Flags: flags})
		res = mailstore.AppendResult{MailboxID: id, UIDValidity: uint32(uv), UID: imap.UID(uid), Size: size}
		return nil
	})
	if err != nil {
		return mailstore.AppendResult{}, fmt.Errorf("postgres: append: %w", err)
	}
	return res, nil
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

// copyMessages copies (or moves) messages in one transaction. The copies
// share their source's body; the rows are copied inside the server.
func (a *account) copyMessages(ctx context.Context, srcID int64, uids imap.UIDSet, dest string, move bool) (mailstore.CopyResult, error) {
	destName, err := mailstore.ParseMailboxName(dest)
	if err != nil {
		return mailstore.CopyResult{}, err
	}
	var limit, msgLimit int64
	if !move {
		if limit, msgLimit, err = a.quotas(ctx); err != nil {
			return mailstore.CopyResult{}, err
		}
	}
	var res mailstore.CopyResult
	err = a.write(ctx, func(w *wtx) error {
		res = mailstore.CopyResult{}
		var srcModSeq uint64
		lock := ` FOR KEY SHARE` // a concurrent expunge waits for the copy
		if move {
			// Both mailboxes' rows are locked first, in ID order: a
			// move the other way at the same time (another node)
			// would otherwise hold the destination and wait for the
			// source.
			if _, err := w.Exec(ctx, `SELECT 1 FROM mail_mailboxes WHERE account = $1 AND (id = $2 OR name = $3)
				ORDER BY id FOR NO KEY UPDATE`, a.id, srcID, destName); err != nil {
				return err
			}
			if srcModSeq, err = w.bump(srcID); err != nil {
				return err
			}
			lock = ` FOR UPDATE`
		} else {
			var ok bool
			if err := w.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_mailboxes WHERE id = $1 AND account = $2)`, srcID, a.id).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return noMailbox(srcID)
			}
		}
		var ar args
		mb := ar.p(srcID)
		rows, err := w.Query(ctx, `SELECT m.uid, m.size FROM mail_messages m WHERE m.mailbox = `+mb+` AND `+
			uidCond("m.uid", mb, uids, &ar)+` ORDER BY m.uid`+lock, ar...)
		if err != nil {
			return err
		}
		var srcUIDs []int64
		var size int64
		for rows.Next() {
			var uid, sz int64
			if err := rows.Scan(&uid, &sz); err != nil {
				rows.Close()
				return err
			}
			srcUIDs = append(srcUIDs, uid)
			size += sz
		}
		if err := rows.Err(); err != nil {
			return err
		}
		n := int64(len(srcUIDs))
		var destID, first, uv int64
		var destModSeq uint64
		err = w.QueryRow(ctx, `UPDATE mail_mailboxes SET uidnext = uidnext + $3, highestmodseq = highestmodseq + (CASE WHEN $3 > 0 THEN 1 ELSE 0 END)
			WHERE account = $1 AND name = $2 RETURNING id, uidnext - $3, highestmodseq, uidvalidity`, a.id, destName, n).
			Scan(&destID, &first, &destModSeq, &uv)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %s", mailstore.ErrNoSuchMailbox, destName)
		}
		if err != nil {
			return err
		}
		res.DestMailboxID, res.DestUIDValidity = destID, uint32(uv)
		if n == 0 {
			return errNoChange
		}
		if destID == srcID && move {
			// A move into the same mailbox: new UIDs, one modseq.
			destModSeq = srcModSeq
			if _, err := w.Exec(ctx, `UPDATE mail_mailboxes SET highestmodseq = $2 WHERE id = $1`, destID, int64(srcModSeq)); err != nil {
				return err
			}
		}
		w.setModSeq(destID, destModSeq)
		destUIDs := make([]int64, n)
		for i := range destUIDs {
			destUIDs[i] = first + int64(i)
		}
		rows, err = w.Query(ctx, `INSERT INTO mail_messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone,
				sentdate, body, emailid, messageid, envelope, bodystructure)
			SELECT $1, x.d, $2, m.flags, m.keywords, m.size, m.internaldate, m.internalzone,
				m.sentdate, m.body, m.emailid, m.messageid, m.envelope, m.bodystructure
			FROM mail_messages m JOIN unnest($4::bigint[], $5::bigint[]) AS x(s, d) ON m.uid = x.s
			WHERE m.mailbox = $3
			RETURNING uid, flags, keywords`, destID, int64(destModSeq), srcID, srcUIDs, destUIDs)
		if err != nil {
			return err
		}
		flags := map[int64][]imap.Flag{}
		for rows.Next() {
			var uid, f int64
			var kw *string
			if err := rows.Scan(&uid, &f, &kw); err != nil {
				rows.Close()
				return err
			}
			k := ""
			if kw != nil {
				k = *kw
			}
			flags[uid] = flagList(f, k)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var appends []mailstore.Event
		for i, d := range destUIDs {
			res.SourceUIDs = append(res.SourceUIDs, imap.UID(srcUIDs[i]))
			res.DestUIDs = append(res.DestUIDs, imap.UID(d))
			appends = append(appends, mailstore.Event{Kind: mailstore.EventAppend, MailboxID: destID, UID: imap.UID(d), ModSeq: destModSeq, Flags: flags[d]})
		}
		if !move {
			w.events = append(w.events, appends...)
			return w.addUsage(size, n, limit, msgLimit)
		}
		if _, err := w.Exec(ctx, `DELETE FROM mail_messages WHERE mailbox = $1 AND uid = ANY($2)`, srcID, srcUIDs); err != nil {
			return err
		}
		gone := make([]imap.UID, n)
		for i, u := range srcUIDs {
			gone[i] = imap.UID(u)
		}
		if err := w.logExpunged(srcID, srcModSeq, gone); err != nil {
			return err
		}
		var expunges []mailstore.Event
		for _, u := range gone {
			expunges = append(expunges, mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: srcID, UID: u, ModSeq: srcModSeq})
		}
		// The appends to the destination come before the expunges
		// from the source (Account.Move), but in a move within one
		// mailbox a session sees EXPUNGE then EXISTS, as IMAP servers
		// commonly send them.
		if destID == srcID {
			w.events = append(append(w.events, expunges...), appends...)
		} else {
			w.events = append(append(w.events, appends...), expunges...)
		}
		return nil
	})
	if err != nil {
		return mailstore.CopyResult{}, fmt.Errorf("postgres: copy: %w", err)
	}
	return res, nil
}
