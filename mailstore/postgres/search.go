package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/msgsearch"
)

// search evaluates criteria against the index rows (package msgsearch),
// reading a message's body only when a header, BODY or TEXT criterion
// needs it. A message whose body is gone (expunged meanwhile) matches no
// such criterion.
func (a *account) search(ctx context.Context, mailboxID int64, c *imap.SearchCriteria) ([]imap.UID, error) {
	if c != nil && msgsearch.HasSeqNums(c) {
		return nil, fmt.Errorf("postgres: %w", msgsearch.ErrSeqNum)
	}
	rows, err := a.s.pool.Query(ctx, `SELECT m.uid, m.modseq, m.flags, m.keywords, m.size, m.internaldate, m.internalzone,
			m.sentdate, m.body, m.emailid
		FROM mail_mailboxes b LEFT JOIN mail_messages m ON m.mailbox = b.id
		WHERE b.id = $1 AND b.account = $2 ORDER BY m.uid`, mailboxID, a.id)
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: search: %w", err))
	}
	var (
		list   []msgsearch.Row
		bodies []int64
		found  bool
	)
	for rows.Next() {
		found = true
		var (
			r            msgsearch.Row
			uid, ms      *int64
			kw           *string
			flags, size  *int64
			idate, izone *int64
			sent, body   *int64
			eid          *int64
		)
		if err := rows.Scan(&uid, &ms, &flags, &kw, &size, &idate, &izone, &sent, &body, &eid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: search: %w", err)
		}
		if uid == nil {
			continue // the mailbox is empty
		}
		r.UID, r.ModSeq, r.Flags, r.Size = imap.UID(*uid), uint64(*ms), *flags, *size
		if kw != nil {
			r.Keywords = *kw
		}
		r.IDate = dateNum(internalDate(*idate, *izone))
		r.Sent, r.EmailID = *sent, *eid
		list = append(list, r)
		bodies = append(bodies, *body)
	}
	if err := rows.Err(); err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: search: %w", err))
	}
	if !found {
		return nil, fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, mailboxID)
	}
	uids, err := msgsearch.Run(ctx, list, c, func() msgsearch.Opener {
		r := &bodyReader{ctx: ctx, a: a, rows: list, bodies: bodies, window: 8}
		return r.open
	})
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("postgres: search: %w", err)
	}
	return uids, err
}

// bodyReader opens the bodies one goroutine of a text search reads. With
// PGBodies it reads them ahead in batches, one statement for a row's body
// and those of the next rows of its chunk (msgsearch.ChunkRows), at most
// searchAheadMax bodies or searchAheadBytes: window is how many the next
// batch reads, doubling while a batch is read whole and halving while most
// of it is skipped by cheaper criteria.
type bodyReader struct {
	ctx    context.Context
	a      *account
	rows   []msgsearch.Row
	bodies []int64 // body reference of each row

	ahead  map[int64][]byte // the last batch, by body reference
	used   int              // how many of ahead were opened
	window int
}

// Bounds of a batch of bodies read ahead for text search.
const (
	searchAheadMax   = 64
	searchAheadBytes = 4 << 20
)

func (r *bodyReader) open(i int) (io.ReadSeekCloser, error) {
	ref, size := r.bodies[i], r.rows[i].Size
	pb, isPG := r.a.s.bodies.(*PGBodies)
	if !isPG || size > bodyChunk {
		f, err := r.a.s.bodies.Open(r.ctx, ref, size)
		if errors.Is(err, errNoBody) {
			return nil, nil
		}
		return f, err
	}
	data, found := r.ahead[ref]
	if !found {
		if r.ahead != nil {
			switch {
			case r.used >= len(r.ahead):
				r.window = min(2*r.window, searchAheadMax)
			case 2*r.used < len(r.ahead):
				r.window = max(r.window/2, 1)
			}
		}
		refs := []int64{ref}
		total := size
		end := min((i/msgsearch.ChunkRows+1)*msgsearch.ChunkRows, len(r.rows))
		for j := i + 1; j < end; j++ {
			if len(refs) >= r.window || total+r.rows[j].Size > searchAheadBytes {
				break
			}
			if r.rows[j].Size <= bodyChunk {
				refs = append(refs, r.bodies[j])
				total += r.rows[j].Size
			}
		}
		rows, err := r.a.s.pool.Query(r.ctx, `SELECT body, data FROM mail_body_chunks WHERE body = ANY($1) AND seq = 0`, refs)
		if err != nil {
			return nil, fmt.Errorf("read bodies: %w", err)
		}
		r.ahead, r.used = make(map[int64][]byte, len(refs)), 0
		for rows.Next() {
			var ref int64
			var b []byte
			if err := rows.Scan(&ref, &b); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read bodies: %w", err)
			}
			r.ahead[ref] = b
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read bodies: %w", err)
		}
		if data, found = r.ahead[ref]; !found {
			return nil, nil
		}
	}
	r.used++
	return pb.opened(r.ctx, ref, size, data), nil
}
