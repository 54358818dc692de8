package web

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// SessionDB keeps logged-in sessions across restarts, in a small SQLite
// database (data_dir/web.sqlite): the SHA-256 of each cookie (never the
// cookie), the address, the login stage, the CSRF token and the times. A
// session's one-time message and a TOTP secret offered for enrolment stay
// in memory only.
type SessionDB struct {
	write, read *sql.DB
	close       func() error
	// shared: other nodes use the same sessions (OpenSessionDBPostgres),
	// so each request reads its session from the database.
	shared bool
}

var sessionMigrations = []sqlitedb.Migration{
	sqlitedb.Exec(`CREATE TABLE sessions (
		key BLOB PRIMARY KEY,
		address TEXT NOT NULL,
		stage INTEGER NOT NULL,
		csrf TEXT NOT NULL,
		created INTEGER NOT NULL,
		seen INTEGER NOT NULL
	) WITHOUT ROWID`,
		`CREATE INDEX sessions_address ON sessions (address)`),
}

// OpenSessionDB opens (creating) the session database at path.
func OpenSessionDB(ctx context.Context, path string) (*SessionDB, error) {
	db, err := sqlitedb.Open(ctx, path, sessionMigrations, sqlitedb.Options{Synchronous: "NORMAL", MaxReaders: 2})
	if err != nil {
		return nil, fmt.Errorf("web: sessions: %w", err)
	}
	return &SessionDB{write: db.Write, read: db.Read, close: db.Close}, nil
}

// Close closes the database.
func (s *SessionDB) Close() error { return s.close() }

// seenWrite is how stale the stored last-seen time may get: a session in
// use costs one write a minute, not one per request.
const seenWrite = time.Minute

func (s *SessionDB) put(ctx context.Context, ss *session) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO sessions (key, address, stage, csrf, created, seen) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET address = excluded.address, stage = excluded.stage, csrf = excluded.csrf,
		created = excluded.created, seen = excluded.seen`,
		ss.key[:], ss.address, int(ss.stage), ss.csrf, ss.created.UnixNano(), ss.seen.UnixNano())
	return err
}

func (s *SessionDB) get(ctx context.Context, key [sha256.Size]byte) (*session, error) {
	ss := &session{key: key}
	var st int
	var created, seen int64
	err := s.read.QueryRowContext(ctx, `SELECT address, stage, csrf, created, seen FROM sessions WHERE key = ?`, key[:]).
		Scan(&ss.address, &st, &ss.csrf, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ss.stage, ss.created, ss.seen = stage(st), time.Unix(0, created), time.Unix(0, seen)
	ss.stored = ss.seen
	return ss, nil
}

func (s *SessionDB) touch(ctx context.Context, key [sha256.Size]byte, seen time.Time) error {
	_, err := s.write.ExecContext(ctx, `UPDATE sessions SET seen = ? WHERE key = ?`, seen.UnixNano(), key[:])
	return err
}

func (s *SessionDB) remove(ctx context.Context, key [sha256.Size]byte) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM sessions WHERE key = ?`, key[:])
	return err
}

func (s *SessionDB) removeAddress(ctx context.Context, address string, keep [sha256.Size]byte) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM sessions WHERE address = ? AND key != ?`, address, keep[:])
	return err
}

// sweep removes what expired: full sessions idle longer than idle or older
// than max, password-stage ones older than codeStageTTL.
func (s *SessionDB) sweep(ctx context.Context, now time.Time, idle, max time.Duration) error {
	_, err := s.write.ExecContext(ctx, `DELETE FROM sessions WHERE
		(stage = ? AND created < ?) OR seen < ? OR created < ?`,
		int(stagePassword), now.Add(-codeStageTTL).UnixNano(), now.Add(-idle).UnixNano(), now.Add(-max).UnixNano())
	return err
}
