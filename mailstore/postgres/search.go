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
	uids, err := msgsearch.Run(ctx, list, c, func(i int) (io.ReadSeekCloser, error) {
		f, err := a.s.bodies.Open(ctx, bodies[i], list[i].Size)
		if errors.Is(err, errNoBody) {
			return nil, nil
		}
		return f, err
	})
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("postgres: search: %w", err)
	}
	return uids, err
}
