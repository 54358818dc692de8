package auth

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// DefaultTrustedNetworks returns the networks trusted when Options leaves
// TrustedNetworks nil: loopback, where a webmail on the same host logs in
// for all its users.
func DefaultTrustedNetworks() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// loadKnown forgets known addresses past KnownAddressTTL in the database
// and reads the others (the most recent maxKnown) into the throttle.
func (db *DB) loadKnown(ctx context.Context) error {
	if !db.throttle.knownOn() {
		return nil
	}
	since := db.now().Add(-db.opts.KnownAddressTTL).Unix()
	if _, err := db.db.Write.ExecContext(ctx, `DELETE FROM known_addresses WHERE last_login <= ?`, since); err != nil {
		return fmt.Errorf("auth: known addresses: %w", err)
	}
	if db.db.shared {
		return nil // the shared throttle reads them at each check
	}
	rows, err := db.db.Read.QueryContext(ctx, `SELECT u.address, k.prefix, k.last_login
		FROM known_addresses k JOIN users u ON u.id = k.user_id
		ORDER BY k.last_login DESC LIMIT ?`, maxKnown)
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		var account, prefix string
		var last int64
		if err := row.Scan(&account, &prefix, &last); err != nil {
			return err
		}
		p, err := netip.ParsePrefix(prefix)
		if err != nil || p != ipKey(p.Addr()) {
			db.log.Warn("ignoring a malformed known address", "user", account, "prefix", prefix)
			return nil
		}
		db.throttle.loadKnown(account, p, time.Unix(last, 0))
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: known addresses: %w", err)
	}
	return nil
}

// saveKnown records that userID logged in from ip at t, keeping the
// maxKnownPerAccount most recent addresses per user. A failure is logged:
// the login itself succeeded, and the address stays known in memory.
func (db *DB) saveKnown(ctx context.Context, log *slog.Logger, userID int64, ip netip.Prefix, t time.Time) {
	err := db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO known_addresses (user_id, prefix, last_login) VALUES (?, ?, ?)
			ON CONFLICT (user_id, prefix) DO UPDATE SET last_login = excluded.last_login WHERE known_addresses.last_login < excluded.last_login`,
			userID, ip.String(), t.Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM known_addresses WHERE user_id = ? AND prefix NOT IN
			(SELECT prefix FROM known_addresses WHERE user_id = ? ORDER BY last_login DESC LIMIT ?)`,
			userID, userID, maxKnownPerAccount)
		return err
	})
	if err != nil && ctx.Err() == nil {
		log.Error("saving known address", "err", err)
	}
}
