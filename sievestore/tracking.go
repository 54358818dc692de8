package sievestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
	"github.com/posthouse/posthouse/sieve"
)

// Vacation is the administrator's out-of-office for an account (posthouse
// admin vacation set), kept beside the user's scripts and applied with
// them.
type Vacation struct {
	Subject string
	Message string
	// Start and End bound when it applies; zero means no bound.
	Start, End time.Time
	// Period is how long before the same sender is answered again; 0
	// means the site's default (sieve.Options.VacationPeriod).
	Period time.Duration
	// Modified is when it was set (read only).
	Modified time.Time
}

// In reports whether the out-of-office applies at t.
func (v *Vacation) In(t time.Time) bool {
	return (v.Start.IsZero() || !t.Before(v.Start)) && (v.End.IsZero() || t.Before(v.End))
}

// Bounds of an out-of-office setting: RFC 5322's line limit for the
// subject, the script size limit for the message.
const (
	maxVacationSubject = 900
)

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(u int64) time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(u, 0)
}

// SetVacation sets (replacing) an account's out-of-office.
func (s *Store) SetVacation(ctx context.Context, account string, v Vacation) error {
	if v.Subject == "" || len(v.Subject) > maxVacationSubject {
		return fmt.Errorf("sievestore: out-of-office subject must have 1 to %d bytes", maxVacationSubject)
	}
	if v.Message == "" || len(v.Message) > s.opts.MaxScriptBytes {
		return fmt.Errorf("sievestore: out-of-office message must have 1 to %d bytes", s.opts.MaxScriptBytes)
	}
	if !v.Start.IsZero() && !v.End.IsZero() && !v.End.After(v.Start) {
		return errors.New("sievestore: out-of-office ends before it starts")
	}
	if v.Period < 0 {
		return errors.New("sievestore: negative out-of-office period")
	}
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO vacations (account, subject, message, start, until, period, modified)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET subject = excluded.subject, message = excluded.message,
			start = excluded.start, until = excluded.until, period = excluded.period, modified = excluded.modified`, account, v.Subject, v.Message, unixOrZero(v.Start), unixOrZero(v.End),
			int64(v.Period/time.Second), s.opts.Now().Unix())
		return err
	})
}

// Vacation returns an account's out-of-office; ErrNotFound when none is
// set.
func (s *Store) Vacation(ctx context.Context, account string) (*Vacation, error) {
	var v Vacation
	var start, end, period, modified int64
	err := s.vacationStmt.QueryRowContext(sqlitedb.QuietOn(s.db.Read, ctx), account).Scan(&v.Subject, &v.Message, &start, &end, &period, &modified)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no out-of-office for %s", ErrNotFound, account)
	}
	if err != nil {
		return nil, fmt.Errorf("sievestore: out-of-office of %s: %w", account, err)
	}
	v.Start, v.End, v.Modified = timeOrZero(start), timeOrZero(end), time.Unix(modified, 0)
	v.Period = time.Duration(period) * time.Second
	return &v, nil
}

// DeleteVacation turns an account's out-of-office off; ErrNotFound when
// none was set. The responses already sent stay remembered.
func (s *Store) DeleteVacation(ctx context.Context, account string) error {
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM vacations WHERE account = ?`, account)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: no out-of-office for %s", ErrNotFound, account)
		}
		return nil
	})
}

// DuplicateSeen reports whether id is in the account's duplicate-tracking
// list and has not expired (RFC 7352 §3).
func (s *Store) DuplicateSeen(ctx context.Context, account, id string) (bool, error) {
	var n int
	err := s.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM duplicates WHERE account = ? AND id = ? AND expires > ?`,
		account, id, s.opts.Now().Unix()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sievestore: duplicate tracking of %s: %w", account, err)
	}
	return n > 0, nil
}

// MarkDuplicates records a run's duplicate ids once its actions were
// carried out (RFC 7352 §3): a new or expired entry gets now+Period; an
// existing one keeps its expiry unless Last (":last" restarts it).
func (s *Store) MarkDuplicates(ctx context.Context, account string, marks []sieve.DuplicateMark) error {
	if len(marks) == 0 {
		return nil
	}
	now := s.opts.Now().Unix()
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		for _, m := range marks {
			_, err := tx.ExecContext(ctx, `INSERT INTO duplicates (account, id, expires) VALUES (?, ?, ?)
				ON CONFLICT (account, id) DO UPDATE SET expires = CASE WHEN ? OR duplicates.expires <= ? THEN excluded.expires ELSE duplicates.expires END`,
				account, m.ID, now+int64(m.Period/time.Second), m.Last, now)
			if err != nil {
				return err
			}
		}
		return s.prune(ctx, tx, "duplicates", account, now)
	})
}

// ClaimResponse decides whether a vacation response with handle may go to
// sender now, and if so records it for period (RFC 5230 §4.2, RFC 6131):
// false when one went within the period. The check and the record are one
// transaction, so two deliveries at once answer once. period 0 means
// answer every time (nothing is recorded).
func (s *Store) ClaimResponse(ctx context.Context, account, handle, sender string, period time.Duration) (bool, error) {
	if period <= 0 {
		return true, nil
	}
	now := s.opts.Now().Unix()
	// The common case, a sender answered already, needs no write.
	var n int
	if err := s.respondedStmt.QueryRowContext(sqlitedb.QuietOn(s.db.Read, ctx), account, handle, sender, now).Scan(&n); err != nil {
		return false, fmt.Errorf("sievestore: vacation tracking of %s: %w", account, err)
	}
	if n > 0 {
		return false, nil
	}
	claimed := false
	err := s.tx(ctx, account, func(tx *sql.Tx) error {
		var expires int64
		err := tx.QueryRowContext(ctx, `SELECT expires FROM responses WHERE account = ? AND handle = ? AND sender = ?`,
			account, handle, sender).Scan(&expires)
		switch {
		case err == nil && expires > now:
			return nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO responses (account, handle, sender, expires) VALUES (?, ?, ?, ?)
			ON CONFLICT (account, handle, sender) DO UPDATE SET expires = excluded.expires`,
			account, handle, sender, now+int64(period/time.Second))
		if err != nil {
			return err
		}
		claimed = true
		return s.prune(ctx, tx, "responses", account, now)
	})
	if err != nil {
		return false, fmt.Errorf("sievestore: vacation tracking of %s: %w", account, err)
	}
	return claimed, nil
}

// ReleaseResponse forgets a claimed response that could not be sent (the
// queue refused it), so the next message may be answered.
func (s *Store) ReleaseResponse(ctx context.Context, account, handle, sender string) error {
	return s.tx(ctx, account, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM responses WHERE account = ? AND handle = ? AND sender = ?`, account, handle, sender)
		return err
	})
}

// prune removes an account's expired rows of table, and past MaxTracked
// rows the ones expiring first.
func (s *Store) prune(ctx context.Context, tx *sql.Tx, table, account string, now int64) error {
	// table is one of our own names.
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE account = ? AND expires <= ?`, account, now); err != nil {
		return err
	}
	// The SQL is the same for SQLite and PostgreSQL: rows are named by
	// their key columns, and the LIMIT is never negative.
	key := trackedKeys[table]
	_, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE account = ? AND (`+key+`) IN (SELECT `+key+` FROM `+table+` WHERE account = ?
		ORDER BY expires LIMIT (SELECT CASE WHEN count(*) > ? THEN count(*) - ? ELSE 0 END FROM `+table+` WHERE account = ?))`,
		account, account, s.opts.MaxTracked, s.opts.MaxTracked, account)
	return err
}

// trackedKeys are the columns naming a row of the tracking tables within
// an account.
var trackedKeys = map[string]string{"duplicates": "id", "responses": "handle, sender"}

// Tracked counts an account's duplicate and response rows (for tests and
// admin vacation show).
func (s *Store) Tracked(ctx context.Context, account string) (duplicates, responses int, err error) {
	err = s.db.Read.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM duplicates WHERE account = ?), (SELECT count(*) FROM responses WHERE account = ?)`,
		account, account).Scan(&duplicates, &responses)
	if err != nil {
		return 0, 0, fmt.Errorf("sievestore: %w", err)
	}
	return duplicates, responses, nil
}
