package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// TOTP parameters: RFC 6238 with the defaults every authenticator app
// understands (SHA-1, 6 digits, 30-second steps), and one step of clock
// skew either way (RFC 6238 §5.2 recommends at most one).
const (
	totpDigits = 6
	totpPeriod = 30 // seconds
	totpSkew   = 1  // steps
	// totpSecretLen is the size of secrets we make: 160 bits, the HMAC-SHA1
	// key length RFC 4226 §4 recommends.
	totpSecretLen = 20
	// Secrets given to EnableTOTP must decode to this many bytes.
	minTOTPSecret, maxTOTPSecret = 16, 64
	// recoveryCodeCount codes are made at EnableTOTP, each usable once.
	recoveryCodeCount = 10
	// secondFactorKey is appended to an account to make its throttling key
	// for second-factor codes, apart from its password failures (see
	// VerifySecondFactor). A NUL cannot occur in a normalized address.
	secondFactorKey = "\x00second-factor"
)

var totpBase32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a new random TOTP secret (160 bits, base32 without
// padding, 32 characters) for the user to load into an authenticator app,
// through TOTPURI's QR code or typed. Nothing is stored until EnableTOTP.
func (db *DB) NewTOTPSecret() (string, error) {
	b := make([]byte, totpSecretLen)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: totp secret: %w", err)
	}
	return totpBase32.EncodeToString(b), nil
}

// TOTPURI returns the otpauth:// URI authenticator apps read from a QR
// code (the Key Uri Format every app implements): the label is
// "issuer:address", and the parameters repeat the issuer and spell out our
// algorithm, digits and period.
func TOTPURI(issuer, address, secret string) string {
	q := url.Values{}
	q.Set("secret", strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(secret)))
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", fmt.Sprint(totpDigits))
	q.Set("period", fmt.Sprint(totpPeriod))
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + address, RawQuery: q.Encode()}
	return u.String()
}

// parseTOTPSecret decodes a base32 secret as a person may type or paste
// it: any case, with spaces or dashes, with or without padding.
// ErrInvalidSecret unless it decodes to minTOTPSecret–maxTOTPSecret bytes.
func parseTOTPSecret(s string) ([]byte, error) {
	if len(s) > 4*maxTOTPSecret {
		return nil, fmt.Errorf("%w: too long", ErrInvalidSecret)
	}
	s = strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(s))
	s = strings.TrimRight(s, "=")
	key, err := totpBase32.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base32", ErrInvalidSecret)
	}
	if len(key) < minTOTPSecret || len(key) > maxTOTPSecret {
		return nil, fmt.Errorf("%w: %d bytes, want %d to %d", ErrInvalidSecret, len(key), minTOTPSecret, maxTOTPSecret)
	}
	return key, nil
}

// totpStep is the RFC 6238 time step T of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// hotp is RFC 4226 §5.3: HMAC-SHA1 of the counter, dynamically truncated
// to totpDigits decimal digits.
func hotp(key []byte, counter int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(counter))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:]) & 0x7fffffff
	return fmt.Sprintf("%0*d", totpDigits, v%1_000_000)
}

// TOTPCode returns the code for secret at t. It is what an authenticator
// app shows; tests use it to log in. ErrInvalidSecret.
func TOTPCode(secret string, t time.Time) (string, error) {
	key, err := parseTOTPSecret(secret)
	if err != nil {
		return "", err
	}
	return hotp(key, totpStep(t)), nil
}

// parseTOTPCode returns the digits of a TOTP code as typed (spaces
// allowed, as apps show "123 456"); ok is false if it is not one.
func parseTOTPCode(s string) (string, bool) {
	if len(s) > 16 {
		return "", false
	}
	s = strings.ReplaceAll(s, " ", "")
	if len(s) != totpDigits {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

// matchTOTP returns the step within totpSkew of now for which code is
// key's code, preferring the current step; ok false if none.
func matchTOTP(key []byte, code string, now time.Time) (step int64, ok bool) {
	cur := totpStep(now)
	for _, s := range []int64{cur, cur - 1, cur + 1} {
		if hmac.Equal([]byte(hotp(key, s)), []byte(code)) {
			return s, true
		}
	}
	return 0, false
}

// EnableTOTP turns on two-factor web login for address with secret (from
// NewTOTPSecret), once code shows the user's app computes the same codes.
// It returns recoveryCodeCount new recovery codes, to be shown once (each
// logs in once in place of a TOTP code; earlier codes are void). Enabling
// again replaces the secret and the codes. ErrBadCode, ErrInvalidSecret,
// ErrNoSuchUser.
func (db *DB) EnableTOTP(ctx context.Context, address, secret, code string) ([]string, error) {
	a, err := NormalizeAddress(address)
	if err != nil {
		return nil, err
	}
	key, err := parseTOTPSecret(secret)
	if err != nil {
		return nil, err
	}
	digits, ok := parseTOTPCode(code)
	if !ok {
		return nil, ErrBadCode
	}
	step, ok := matchTOTP(key, digits, db.now())
	if !ok {
		return nil, ErrBadCode
	}
	codes := make([]string, recoveryCodeCount)
	for i := range codes {
		codes[i] = recoveryCodeFormat.generate()
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		var uid int64
		err := tx.QueryRowContext(ctx, `UPDATE users SET totp_secret = ?, totp_step = ? WHERE address = ? RETURNING id`,
			totpBase32.EncodeToString(key), step, a).Scan(&uid)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
		}
		if err != nil {
			return fmt.Errorf("auth: enable totp: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, uid); err != nil {
			return fmt.Errorf("auth: enable totp: %w", err)
		}
		for _, c := range codes {
			canon, _ := recoveryCodeFormat.parse(c)
			if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, hash) VALUES (?, ?)`, uid, secretHash(canon)); err != nil {
				return fmt.Errorf("auth: enable totp: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	db.log.Info("two-factor login enabled", "user", a)
	return codes, nil
}

// DisableTOTP turns two-factor login off for address and voids its
// recovery codes (the user's own choice, or an operator's for a user who
// lost both phone and codes). ErrNoSuchUser.
func (db *DB) DisableTOTP(ctx context.Context, address string) error {
	a, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		var uid int64
		err := tx.QueryRowContext(ctx, `UPDATE users SET totp_secret = '', totp_step = 0 WHERE address = ? RETURNING id`, a).Scan(&uid)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
		}
		if err != nil {
			return fmt.Errorf("auth: disable totp: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, uid); err != nil {
			return fmt.Errorf("auth: disable totp: %w", err)
		}
		return nil
	})
	if err == nil {
		db.log.Info("two-factor login disabled", "user", a)
	}
	return err
}

// VerifySecondFactor checks the second step of a web login for address
// (after AuthenticateWeb): a TOTP code, accepted once (a code, or any code
// of an earlier step, is refused once a code was accepted), or one of the
// user's recovery codes, which is used up. Attempts are throttled by the
// limits of Authenticate, counted apart from password failures, so that
// knowing the password (whose success forgets password failures) does not
// reset the count of wrong codes. ErrBadCode (also for a user without a
// second factor, or disabled), ErrThrottled, or a database error.
func (db *DB) VerifySecondFactor(ctx context.Context, address, code string, remote netip.Addr) error {
	account, err := NormalizeAddress(address)
	if err != nil {
		return ErrBadCode
	}
	key := account + secondFactorKey
	cred := makeCredID(db.credKey[:], key, code)
	var method string
	_, err = db.guarded(ctx, key, account, cred, remote, func(log *slog.Logger) (string, User, error) {
		var reason string
		var err error
		method, reason, err = db.checkSecondFactor(ctx, account, code, log)
		return reason, User{}, err
	})
	if errors.Is(err, ErrBadCredentials) {
		return ErrBadCode
	}
	if err != nil {
		return err
	}
	db.log.Info("second factor accepted", "user", account, "remote", remoteString(remote), "method", method)
	return nil
}

// checkSecondFactor verifies one code; reason is "" on success, method
// says which kind of code it was.
func (db *DB) checkSecondFactor(ctx context.Context, account, code string, log *slog.Logger) (method, reason string, _ error) {
	var uid, last int64
	var secret string
	var disabled bool
	err := db.db.Read.QueryRowContext(ctx, `SELECT id, totp_secret, totp_step, disabled FROM users WHERE address = ?`, account).
		Scan(&uid, &secret, &last, &disabled)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", "no such user", nil
	case err != nil:
		return "", "", fmt.Errorf("auth: second factor: %w", err)
	case secret == "":
		return "", "no second factor enabled", nil
	case disabled:
		return "", "account disabled", nil
	}
	if digits, ok := parseTOTPCode(code); ok {
		key, err := parseTOTPSecret(secret)
		if err != nil {
			log.Error("stored TOTP secret is unusable", "err", err)
			return "totp", "unusable stored secret", nil
		}
		step, ok := matchTOTP(key, digits, db.now())
		if !ok {
			return "totp", "wrong TOTP code", nil
		}
		if step <= last {
			return "totp", "TOTP code already used", nil
		}
		// The condition makes two logins racing with one code accept it
		// once.
		res, err := db.db.Write.ExecContext(ctx, `UPDATE users SET totp_step = ? WHERE id = ? AND totp_step < ?`, step, uid, step)
		if err != nil {
			return "", "", fmt.Errorf("auth: second factor: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return "", "", fmt.Errorf("auth: second factor: %w", err)
		} else if n == 0 {
			return "totp", "TOTP code already used", nil
		}
		return "totp", "", nil
	}
	canon, ok := recoveryCodeFormat.parse(code)
	if !ok {
		return "", "malformed code", nil
	}
	rows, err := db.db.Read.QueryContext(ctx, fmt.Sprintf(`SELECT id, hash FROM recovery_codes WHERE user_id = ? LIMIT %d`, 4*recoveryCodeCount), uid)
	var match int64
	err = sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
		var id int64
		var h string
		if err := row.Scan(&id, &h); err != nil {
			return err
		}
		if match == 0 && secretMatches(h, canon) {
			match = id
		}
		return nil
	})
	if err != nil {
		return "", "", fmt.Errorf("auth: second factor: %w", err)
	}
	if match == 0 {
		return "recovery code", "wrong recovery code", nil
	}
	res, err := db.db.Write.ExecContext(ctx, `DELETE FROM recovery_codes WHERE id = ?`, match)
	if err != nil {
		return "", "", fmt.Errorf("auth: second factor: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", "", fmt.Errorf("auth: second factor: %w", err)
	} else if n == 0 {
		return "recovery code", "recovery code already used", nil
	}
	var left int
	if err := db.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ?`, uid).Scan(&left); err == nil {
		log.Warn("recovery code used", "left", left)
	}
	return "recovery code", "", nil
}
