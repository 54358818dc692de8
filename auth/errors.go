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
)
