package auth

import (
	"errors"
	"time"
)

// Sentinel errors. Protocols translate them at their edge: ErrBadCredentials
// → 535 5.7.8 / NO [AUTHENTICATIONFAILED] / -ERR [AUTH]; ErrThrottled → a
// temporary refusal (454 4.7.0 / NO [UNAVAILABLE] / -ERR [SYS/TEMP]).
var (
	// ErrBadCredentials: unknown user, wrong password or disabled account —
	// deliberately one error, so a client cannot tell them apart.
	ErrBadCredentials = errors.New("auth: invalid credentials")
	// ErrThrottled: too many recent failures from this address or for this
	// account; try again later.
	ErrThrottled = errors.New("auth: too many failed attempts, try later")

	ErrNoSuchUser     = errors.New("auth: no such user")
	ErrNoSuchDomain   = errors.New("auth: no such domain")
	ErrNoSuchAlias    = errors.New("auth: no such alias")
	ErrExists         = errors.New("auth: already exists")
	ErrInvalidAddress = errors.New("auth: invalid address")
	ErrInvalidDomain  = errors.New("auth: invalid domain")
	ErrEmptyPassword  = errors.New("auth: empty password")
	ErrDomainNotEmpty = errors.New("auth: domain still has users or aliases")
	ErrNotLocal       = errors.New("auth: address is not in a local domain")
)

// User is an account holder. Address is the canonical login and the
// mailstore account name (lower-case local part and domain).
type User struct {
	ID         int64
	Address    string
	QuotaBytes int64 // 0: unlimited
	// QuotaMessages is the most messages the account may hold; 0:
	// unlimited.
	QuotaMessages int64
	Disabled      bool
	Created       time.Time
	// Admin: the user may use the admin console (role "admin"; SetAdmin,
	// `posthouse admin user role`).
	Admin bool
	// TOTP: the user turned on two-factor login for the web (EnableTOTP).
	TOTP bool
}

// Alias maps one address (or a catch-all "@domain") to one or more targets,
// which may be local users or foreign addresses.
type Alias struct {
	Address string
	Targets []string
}

// Domain is a domain we receive mail for.
type Domain struct {
	Name    string
	Created time.Time
}

// Resolution is where mail for one address goes after alias, sub-address
// (user+tag@domain) and catch-all resolution: local accounts (mailstore
// account names) and foreign addresses an alias forwards to. Both are
// deduplicated.
type Resolution struct {
	Local  []string
	Remote []string
}
