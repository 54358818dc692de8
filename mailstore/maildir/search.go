package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/regfile"
	"github.com/posthouse/posthouse/mailstore/msgsearch"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// searchRow is a message as search sees it, with its file.
type searchRow struct {
	msgsearch.Row
	file string
}

// scanSearchRow scans a row of search's query.
func scanSearchRow(row sqlitedb.Scanner) (searchRow, error) {
	var (
		s            searchRow
		uid, ms      int64
		kw           sql.NullString
		idate, izone int64
	)
	if err := row.Scan(&uid, &ms, &s.Flags, &kw, &s.Size, &idate, &izone, &s.Sent, &s.file, &s.EmailID); err != nil {
		return s, err
	}
	s.UID, s.ModSeq, s.Keywords = imap.UID(uid), uint64(ms), kw.String
	s.IDate = dateNum(internalDate(idate, izone))
	return s, nil
}

// search evaluates criteria against the index (package msgsearch),
// opening a message's file only when a header, BODY or TEXT criterion
// needs it. A message whose file is gone (expunged meanwhile) matches no
// such criterion.
func (a *account) search(ctx context.Context, mailboxID int64, c *imap.SearchCriteria) ([]imap.UID, error) {
	if c != nil && msgsearch.HasSeqNums(c) {
		return nil, fmt.Errorf("maildir: %w", msgsearch.ErrSeqNum)
	}
	var rows []searchRow
	err := a.readTx(ctx, func(r *rtx) error {
		if err := r.checkMailbox(mailboxID); err != nil {
			return err
		}
		q, err := r.query(`SELECT uid, modseq, flags, keywords, size, internaldate, internalzone, sentdate, file, emailid
			FROM messages WHERE mailbox = ? ORDER BY uid`, mailboxID)
		rows, err = sqlitedb.Collect(q, err, scanSearchRow)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: search: %w", err)
	}
	list := make([]msgsearch.Row, len(rows))
	for i := range rows {
		list[i] = rows[i].Row
	}
	dir := a.mailboxDir(mailboxID)
	open := func(i int) (io.ReadSeekCloser, error) {
		f, err := regfile.Open(filepath.Join(dir, filepath.FromSlash(rows[i].file)))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return f, err
	}
	uids, err := msgsearch.Run(ctx, list, c, func() msgsearch.Opener { return open })
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("maildir: search: %w", err)
	}
	return uids, err
}
