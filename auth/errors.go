package auth

import "errors"

// Sentinels added after the first contract (types.go holds the original set).
var (
	// ErrAliasLoop: an alias expands into itself, or its chain of aliases is
	// deeper than MaxAliasDepth. A configuration error, so protocols answer
	// with a temporary failure while the operator fixes it.
	ErrAliasLoop = errors.New("auth: alias loop or chain too deep")
	// ErrInvalidQuota: a negative quota.
	ErrInvalidQuota = errors.New("auth: invalid quota")
	// ErrInvalidHash: an imported password hash is not an argon2id PHC string
	// or a bcrypt hash, or its cost parameters are out of the accepted range.
	ErrInvalidHash = errors.New("auth: unsupported or invalid password hash")

	// ErrNoSuchAppPassword: the user has no app password with that id.
	ErrNoSuchAppPassword = errors.New("auth: no such app password")
	// ErrInvalidName: an app password's name is empty, too long, or holds
	// control characters.
	ErrInvalidName = errors.New("auth: invalid name")
	// ErrTooManyAppPasswords: the user has as many app passwords as we
	// keep (50); revoke one first.
	ErrTooManyAppPasswords = errors.New("auth: too many app passwords")
	// ErrBadCode: a second-factor code (TOTP or recovery code) is wrong,
	// already used, or the user has no second factor.
	ErrBadCode = errors.New("auth: invalid code")
	// ErrInvalidSecret: a TOTP secret is not base32 of 16 to 64 bytes.
	ErrInvalidSecret = errors.New("auth: invalid TOTP secret")
)
