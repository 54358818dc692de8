package maildir

import (
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// The envelope and body structure are cached in the index at delivery
// only in mailboxes where a client has asked for them (schema step 8). A
// Fetch that finds them missing reads them from the message files, then
// writes them into the rows and marks the mailbox, so later deliveries
// there cache them at once.

// uncachedRow is a fetched row whose envelope or body structure is not in
// the index yet.
type uncachedRow struct {
	uid  imap.UID
	file string
}

// fillBatch bounds the rows one write-back transaction updates, so the
// account's writer is never held long by a FETCH of a large mailbox.
const fillBatch = 256

// fillSummaries parses the files of rows (each in out, which is sorted by
// UID), sets their envelope and body structure in out, and writes both
// into the index. A file that cannot be read (expunged meanwhile, or lost)
// answers an empty envelope and a plain-text structure, as an unreadable
// cache entry does; the write-back is only a cache, so its failure is
// logged, not returned.
func (a *account) fillSummaries(ctx context.Context, mailboxID int64, out []mailstore.MessageInfo, rows []uncachedRow) {
	type fill struct {
		uid     imap.UID
		env, bs []byte
	}
	var fills []fill
	dir := a.mailboxDir(mailboxID)
	for _, row := range rows {
		i, ok := slices.BinarySearchFunc(out, row.uid, func(m mailstore.MessageInfo, uid imap.UID) int { return cmp.Compare(m.UID, uid) })
		if !ok {
			continue
		}
		mi := &out[i]
		p, err := parseFile(filepath.Join(dir, filepath.FromSlash(row.file)))
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				a.log.Error("message file unreadable for its envelope", "mailbox", mailboxID, "uid", row.uid, "path", row.file, "err", err)
			}
			mi.Envelope, mi.BodyStructure = &imap.Envelope{}, plainTextStructure()
			continue
		}
		a.decodeSummary(mi, p.Envelope, p.BodyStructure, true, true)
		fills = append(fills, fill{row.uid, p.Envelope, p.BodyStructure})
	}
	for len(fills) > 0 && ctx.Err() == nil {
		batch := fills[:min(len(fills), fillBatch)]
		fills = fills[len(batch):]
		err := a.writeRelaxed(ctx, func(w *wtx) error {
			for _, f := range batch {
				if _, err := w.Exec(`UPDATE messages SET envelope = ?, bodystructure = ?
					WHERE mailbox = ? AND uid = ? AND (envelope IS NULL OR bodystructure IS NULL)`,
					f.env, f.bs, mailboxID, int64(f.uid)); err != nil {
					return err
				}
			}
			_, err := w.Exec(`UPDATE mailboxes SET cache_summaries = 1 WHERE id = ? AND cache_summaries = 0`, mailboxID)
			return err
		})
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, mailstore.ErrClosed) {
			a.log.Error("cache envelopes and body structures", "mailbox", mailboxID, "err", err)
			return
		}
	}
}
