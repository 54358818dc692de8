package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

var _ mailstore.Importer = (*Store)(nil)

// importProgressEvery is how many messages pass between two Progress
// calls within a mailbox.
const importProgressEvery = 500

// Import implements mailstore.Importer: the whole account in one
// transaction, so an interrupted copy leaves nothing behind and a copy
// run again finds either nothing or all of it. Rows keep the source's
// mailbox state (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, \Recent claim
// point), subscriptions, expunge history, and per message its UID,
// modseq, flags, keywords, internal date and EMAILID; bodies go through
// the BodyStore, streamed, with the envelope and body structure parsed
// on the way as a delivery does. The account's UIDVALIDITY counter and
// the EMAILID sequence are raised above what was imported, so mailboxes
// created and messages added later get values never seen before. Mailbox
// IDs (RFC 8474 MAILBOXID) are this database's: they cannot be kept,
// since every account shares the ID space.
//
// Before the commit the source is asked whether it changed since it was
// read (mailstore.ImportSource.Unchanged); if it did, nothing commits.
func (s *Store) Import(ctx context.Context, src mailstore.ImportSource, opts mailstore.ImportOptions) (mailstore.ImportResult, error) {
	acc := src.Account()
	name, err := mailstore.CheckAccountName(acc.Name)
	if err != nil {
		return mailstore.ImportResult{}, err
	}
	acc.Name = name
	if s.isClosed() {
		return mailstore.ImportResult{}, mailstore.ErrClosed
	}
	var (
		res      mailstore.ImportResult
		replaced int64
	)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("postgres: import %s: %w", name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	err = func() error {
		var id, msgs int64
		err := tx.QueryRow(ctx, `SELECT id, msgs FROM mail_accounts WHERE name = $1 FOR UPDATE`, name).Scan(&id, &msgs)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		default:
			same, err := sameAccount(ctx, tx, id, acc)
			if err != nil {
				return err
			}
			if same {
				res.Skipped = true
				return nil
			}
			if msgs > 0 && !opts.Force {
				return fmt.Errorf("%w (%d messages; --force replaces them)", mailstore.ErrNotEmpty, msgs)
			}
			if _, err := s.removeAccount(ctx, tx, name); err != nil {
				return err
			}
			replaced = id
		}
		return s.importAccount(ctx, tx, src, acc, opts, &res)
	}()
	if err == nil && !res.Skipped {
		if err = src.Unchanged(ctx); err == nil {
			err = tx.Commit(ctx)
		}
	}
	if err != nil {
		return mailstore.ImportResult{}, fmt.Errorf("postgres: import %s: %w", name, err)
	}
	if replaced != 0 {
		s.forget(replaced)
	}
	return res, nil
}

// sameAccount reports whether account id holds exactly acc's mailboxes,
// each with acc's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and message count:
// the commit of an earlier copy of the same state.
func sameAccount(ctx context.Context, tx pgx.Tx, id int64, acc mailstore.ImportAccount) (bool, error) {
	rows, err := tx.Query(ctx, `SELECT name, uidvalidity, uidnext, highestmodseq, msgs FROM mail_mailboxes
		WHERE account = $1 ORDER BY name`, id)
	if err != nil {
		return false, err
	}
	type mb struct {
		name                   string
		uv, next, modseq, msgs int64
	}
	have, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (mb, error) {
		var m mb
		err := r.Scan(&m.name, &m.uv, &m.next, &m.modseq, &m.msgs)
		return m, err
	})
	if err != nil || len(have) != len(acc.Mailboxes) {
		return false, err
	}
	for i, m := range acc.Mailboxes {
		h := have[i]
		if h.name != m.Name || h.uv != int64(m.UIDValidity) || h.next != int64(m.UIDNext) ||
			h.modseq != int64(m.HighestModSeq) || h.msgs != m.Messages {
			return false, nil
		}
	}
	return true, nil
}

// importAccount writes acc into tx.
func (s *Store) importAccount(ctx context.Context, tx pgx.Tx, src mailstore.ImportSource, acc mailstore.ImportAccount, opts mailstore.ImportOptions, res *mailstore.ImportResult) error {
	var maxUV int64
	for _, m := range acc.Mailboxes {
		maxUV = max(maxUV, int64(m.UIDValidity))
	}
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO mail_accounts (name, uidvalidity) VALUES ($1, greatest($2, extract(epoch FROM now())::bigint))
		RETURNING id`, acc.Name, maxUV).Scan(&id); err != nil {
		return err
	}
	ids := make(map[string]int64, len(acc.Mailboxes))
	for _, m := range acc.Mailboxes {
		name, err := mailstore.ParseMailboxName(m.Name)
		if err != nil {
			return fmt.Errorf("mailbox %q: %w", m.Name, err)
		}
		if !validSpecialUse(m.SpecialUse) {
			return fmt.Errorf("mailbox %q: special use %q: %w", m.Name, m.SpecialUse, mailstore.ErrNotAllowed)
		}
		var mid int64
		if err := tx.QueryRow(ctx, `INSERT INTO mail_mailboxes (account, name, special_use, uidvalidity, uidnext, highestmodseq, recent_uid)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			id, name, m.SpecialUse, int64(m.UIDValidity), int64(m.UIDNext), int64(m.HighestModSeq), int64(m.RecentUID)).Scan(&mid); err != nil {
			return fmt.Errorf("mailbox %q: %w", m.Name, err)
		}
		ids[m.Name] = mid
		if len(m.Expunged) > 0 {
			var ms, lo, hi []int64
			for _, r := range m.Expunged {
				ms, lo, hi = append(ms, int64(r.ModSeq)), append(lo, int64(r.Lo)), append(hi, int64(r.Hi))
			}
			if _, err := tx.Exec(ctx, `INSERT INTO mail_expunged (mailbox, modseq, uid_lo, uid_hi)
				SELECT $1, m, l, h FROM unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS x(m, l, h)`, mid, ms, lo, hi); err != nil {
				return fmt.Errorf("mailbox %q: expunge history: %w", m.Name, err)
			}
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO mail_subscriptions (account, name) SELECT $1, n FROM unnest($2::text[]) n`,
		id, acc.Subscriptions); err != nil {
		return err
	}
	var maxEmailID int64
	for _, m := range acc.Mailboxes {
		mid := ids[m.Name]
		var n int64
		var batch *importBatch
		if _, ok := s.bodies.(*PGBodies); ok {
			batch = &importBatch{mailbox: mid}
		}
		err := src.Messages(ctx, m.Name, func(msg *mailstore.ImportMessage) error {
			var eid int64
			var err error
			if batch != nil && msg.Size <= bodyChunk {
				eid, err = batch.add(ctx, tx, msg)
			} else {
				if batch != nil {
					err = batch.flush(ctx, tx)
				}
				if err == nil {
					eid, err = s.importMessage(ctx, tx, mid, msg)
				}
			}
			if err != nil {
				return fmt.Errorf("mailbox %q UID %d: %w", m.Name, msg.UID, err)
			}
			maxEmailID = max(maxEmailID, eid)
			n++
			res.Messages++
			res.Bytes += msg.Size
			if opts.Progress != nil && n%importProgressEvery == 0 {
				opts.Progress(m.Name, res.Messages)
			}
			return nil
		})
		if err == nil && batch != nil {
			err = batch.flush(ctx, tx)
		}
		if err != nil {
			return err
		}
		if n != m.Messages {
			return fmt.Errorf("mailbox %q: read %d messages, the source counts %d", m.Name, n, m.Messages)
		}
		if opts.Progress != nil {
			opts.Progress(m.Name, res.Messages)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE mail_accounts SET bytes = $2, msgs = $3 WHERE id = $1`, id, res.Bytes, res.Messages); err != nil {
		return err
	}
	// Raise the shared EMAILID sequence above the imported values, so no
	// message added later is given one of them.
	if maxEmailID > 0 {
		if _, err := tx.Exec(ctx, `SELECT setval('mail_emailids', $1) FROM mail_emailids WHERE last_value < $1`, maxEmailID); err != nil {
			return err
		}
	}
	return nil
}

// importMessage stores one message's body and row; it returns the
// message's EMAILID number.
func (s *Store) importMessage(ctx context.Context, tx pgx.Tx, mailbox int64, m *mailstore.ImportMessage) (int64, error) {
	eid, ok := parseEmailID(m.EmailID)
	if !ok {
		if err := tx.QueryRow(ctx, `SELECT nextval('mail_emailids')`).Scan(&eid); err != nil {
			return 0, err
		}
	}
	bw, err := s.bodies.Create(ctx, tx)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: bw}
	root, err := mimeparse.Parse(io.TeeReader(m.Body, cw))
	if err == nil {
		// The parser may stop before the end: the rest is body bytes too.
		_, err = io.Copy(cw, m.Body)
	}
	if err != nil {
		return 0, fmt.Errorf("read message: %w", err)
	}
	body, err := bw.Close()
	if err != nil {
		return 0, err
	}
	if cw.n != m.Size {
		return 0, fmt.Errorf("read %d bytes, the source says %d", cw.n, m.Size)
	}
	p, err := encodeParsed(root)
	if err != nil {
		return 0, err
	}
	fs := parseFlags(m.Flags)
	date := m.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	_, zone := date.Zone()
	_, err = tx.Exec(ctx, `INSERT INTO mail_messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone,
			sentdate, body, emailid, messageid, envelope, bodystructure)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		mailbox, int64(m.UID), int64(m.ModSeq), fs.Mask, nullIfEmpty(joinKeywords(fs.Keywords)), cw.n, date.Unix(), zone,
		p.SentDate, body, eid, p.MessageID, p.Envelope, p.BodyStructure)
	return eid, err
}

// Batches of small messages, when bodies are PGBodies: up to
// importBatchMessages messages or importBatchBytes bytes of bodies are
// held in memory and written with one statement (bodies and rows), so a
// copy costs a round trip per batch, not two per message, and the count
// triggers run once per batch. Messages above bodyChunk take the
// streaming path (importMessage).
const (
	importBatchMessages = 128
	importBatchBytes    = 4 << 20
)

// importBatch gathers one mailbox's messages for one INSERT.
type importBatch struct {
	mailbox                                          int64
	bytes                                            int
	data, envelopes, structures                      [][]byte
	uids, modseqs, masks, sizes, dates, zones, sents []int64
	emailids                                         []int64
	keywords, messageIDs                             []string
}

// add reads msg into the batch, flushing it first when full; it returns
// the message's EMAILID number.
func (b *importBatch) add(ctx context.Context, tx pgx.Tx, m *mailstore.ImportMessage) (int64, error) {
	if len(b.uids) >= importBatchMessages || b.bytes+int(m.Size) > importBatchBytes {
		if err := b.flush(ctx, tx); err != nil {
			return 0, err
		}
	}
	eid, ok := parseEmailID(m.EmailID)
	if !ok {
		if err := tx.QueryRow(ctx, `SELECT nextval('mail_emailids')`).Scan(&eid); err != nil {
			return 0, err
		}
	}
	data := make([]byte, m.Size)
	if n, err := io.ReadFull(m.Body, data); err != nil {
		return 0, fmt.Errorf("read message: %d bytes of %d: %w", n, m.Size, err)
	}
	if n, _ := m.Body.Read(make([]byte, 1)); n > 0 {
		return 0, fmt.Errorf("read message: more than the %d bytes the source says", m.Size)
	}
	p, err := parseMessage(bytes.NewReader(data))
	if err != nil {
		return 0, err
	}
	fs := parseFlags(m.Flags)
	date := m.InternalDate
	if date.IsZero() {
		date = time.Now()
	}
	_, zone := date.Zone()
	b.bytes += len(data)
	b.data = append(b.data, data)
	b.envelopes = append(b.envelopes, p.Envelope)
	b.structures = append(b.structures, p.BodyStructure)
	b.uids = append(b.uids, int64(m.UID))
	b.modseqs = append(b.modseqs, int64(m.ModSeq))
	b.masks = append(b.masks, fs.Mask)
	b.sizes = append(b.sizes, int64(len(data)))
	b.dates = append(b.dates, date.Unix())
	b.zones = append(b.zones, int64(zone))
	b.sents = append(b.sents, p.SentDate)
	b.emailids = append(b.emailids, eid)
	b.keywords = append(b.keywords, joinKeywords(fs.Keywords))
	b.messageIDs = append(b.messageIDs, p.MessageID)
	return eid, nil
}

// flush writes the batch's bodies (one chunk each, as PGBodies stores
// them) and rows in one statement.
func (b *importBatch) flush(ctx context.Context, tx pgx.Tx) error {
	if len(b.uids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `WITH x AS MATERIALIZED (
			SELECT nextval('mail_body_ids') AS body, x.*
			FROM unnest($2::bytea[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bigint[],
				$9::bigint[], $10::bigint[], $11::bigint[], $12::text[], $13::bytea[], $14::bytea[])
				AS x(data, uid, modseq, flags, keywords, size, internaldate, internalzone, sentdate, emailid, messageid, envelope, bodystructure)),
		c AS (INSERT INTO mail_body_chunks (body, seq, data) SELECT body, 0, data FROM x)
		INSERT INTO mail_messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone,
			sentdate, body, emailid, messageid, envelope, bodystructure)
		SELECT $1, uid, modseq, flags, nullif(keywords, ''), size, internaldate, internalzone,
			sentdate, body, emailid, messageid, envelope, bodystructure FROM x`,
		b.mailbox, b.data, b.uids, b.modseqs, b.masks, b.keywords, b.sizes, b.dates, b.zones, b.sents,
		b.emailids, b.messageIDs, b.envelopes, b.structures)
	*b = importBatch{mailbox: b.mailbox}
	return err
}
