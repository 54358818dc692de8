package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Resolve says where mail for address goes. In order: a user with exactly
// that address; an alias with exactly that address; for user+tag@domain the
// same two for user@domain (RFC 5233 sub-addressing); the domain's
// catch-all "@domain". Alias targets are resolved the same way, recursively
// (at most MaxAliasDepth deep); local ones become accounts in Local, foreign
// ones go to Remote. An alias reached again on its own expansion path is a
// loop: it is skipped, and if nothing else remains Resolve fails with
// ErrAliasLoop. A local target that no longer exists (its user was removed)
// is skipped with a warning.
//
// postmaster@domain (and the bare "postmaster", RFC 5321 §4.5.1) always
// reaches someone if any domain defines a postmaster: see resolvePostmaster.
//
// Disabled users still receive mail: disabling stops logins (a suspended or
// compromised account), not delivery, so nothing is bounced or lost while an
// operator investigates.
//
// Errors: ErrInvalidAddress, ErrNotLocal (foreign domain), ErrNoSuchUser
// (nothing matches in a local domain), ErrAliasLoop, or a database error.
func (db *DB) Resolve(ctx context.Context, address string) (Resolution, error) {
	if strings.EqualFold(address, postmaster) {
		return db.resolvePostmaster(ctx, "")
	}
	a, err := NormalizeAddress(address)
	if err != nil {
		return Resolution{}, err
	}
	res, err := db.resolve(ctx, a)
	if local, domain := splitAddress(a); local == postmaster && errors.Is(err, ErrNoSuchUser) {
		return db.resolvePostmaster(ctx, domain)
	}
	return res, err
}

// postmaster is the local part RFC 5321 §4.5.1 requires every domain to
// accept, and the one address also valid without a domain.
const postmaster = "postmaster"

// resolvePostmaster serves postmaster@domain when that domain defines none
// (no user, alias or catch-all) and the bare "postmaster": the first other
// domain, by name, whose postmaster resolves receives it, so one postmaster
// account or alias can serve every domain.
func (db *DB) resolvePostmaster(ctx context.Context, except string) (Resolution, error) {
	ds, err := db.Domains(ctx)
	if err != nil {
		return Resolution{}, err
	}
	for _, d := range ds {
		if d.Name == except {
			continue
		}
		res, err := db.resolve(ctx, postmaster+"@"+d.Name)
		if errors.Is(err, ErrNoSuchUser) {
			continue
		}
		return res, err
	}
	if except == "" {
		return Resolution{}, fmt.Errorf("%w: postmaster (no domain defines one)", ErrNoSuchUser)
	}
	return Resolution{}, fmt.Errorf("%w: postmaster@%s (no domain defines one)", ErrNoSuchUser, except)
}

// resolve is Resolve for a normalized address.
func (db *DB) resolve(ctx context.Context, a string) (Resolution, error) {
	r := newResolver(db, readLookup{db})
	if err := r.address(ctx, a, 0); err != nil {
		return Resolution{}, err
	}
	if len(r.dangling) > 0 {
		db.log.Warn("alias target does not exist; skipped", "rcpt", a, "targets", r.dangling)
	}
	if r.loop {
		db.log.Warn("alias loop; skipped the repeated alias", "rcpt", a)
	}
	if len(r.res.Local)+len(r.res.Remote) == 0 {
		if r.loop {
			return Resolution{}, fmt.Errorf("%w: %s", ErrAliasLoop, a)
		}
		return Resolution{}, fmt.Errorf("%w: %s (no target exists)", ErrNoSuchUser, a)
	}
	return r.res, nil
}

type resolver struct {
	db       *DB
	l        lookup
	domains  map[string]bool
	onPath   map[string]bool
	done     map[string]bool
	seen     map[string]bool
	res      Resolution
	loop     bool
	dangling []string
}

func newResolver(db *DB, l lookup) *resolver {
	return &resolver{db: db, l: l, domains: map[string]bool{}, onPath: map[string]bool{}, done: map[string]bool{}, seen: map[string]bool{}}
}

func (r *resolver) isLocal(ctx context.Context, domain string) (bool, error) {
	if v, ok := r.domains[domain]; ok {
		return v, nil
	}
	v, err := r.l.domainExists(ctx, domain)
	if err != nil {
		return false, fmt.Errorf("auth: domain lookup: %w", err)
	}
	r.domains[domain] = v
	return v, nil
}

// address resolves one normalized address found depth aliases deep.
func (r *resolver) address(ctx context.Context, a string, depth int) error {
	if depth > MaxAliasDepth {
		return fmt.Errorf("%w: more than %d aliases deep at %s", ErrAliasLoop, MaxAliasDepth, a)
	}
	_, domain := splitAddress(a)
	local, err := r.isLocal(ctx, domain)
	if err != nil {
		return err
	}
	if !local {
		if depth == 0 {
			return fmt.Errorf("%w: %s", ErrNotLocal, domain)
		}
		if !r.seen[a] {
			r.seen[a] = true
			r.res.Remote = append(r.res.Remote, a)
		}
		return nil
	}
	cands := []string{a}
	if base := subaddressBase(a); base != "" {
		cands = append(cands, base)
	}
	cands = append(cands, "@"+domain)
	for _, c := range cands {
		if c[0] != '@' {
			u, ok, err := r.l.user(ctx, c)
			if err != nil {
				return err
			}
			if ok {
				if !r.seen[u.Address] {
					r.seen[u.Address] = true
					r.res.Local = append(r.res.Local, u.Address)
				}
				return nil
			}
		}
		ts, ok, err := r.l.aliasTargets(ctx, c)
		if err != nil {
			return err
		}
		if ok {
			return r.expand(ctx, c, ts, depth)
		}
	}
	return fmt.Errorf("%w: %s", ErrNoSuchUser, a)
}

// expand resolves the targets of alias a.
func (r *resolver) expand(ctx context.Context, a string, targets []string, depth int) error {
	if r.onPath[a] {
		r.loop = true
		return nil
	}
	if r.done[a] {
		return nil
	}
	r.onPath[a] = true
	for _, t := range targets {
		// AddAlias stores targets normalized; a hand-edited row may not be.
		n, err := NormalizeAddress(t)
		if err != nil {
			r.dangling = append(r.dangling, t)
			continue
		}
		err = r.address(ctx, n, depth+1)
		if errors.Is(err, ErrNoSuchUser) {
			r.dangling = append(r.dangling, t)
			continue
		}
		if err != nil {
			return err
		}
	}
	r.onPath[a] = false
	r.done[a] = true
	return nil
}

// IsLocalDomain reports whether we receive mail for domain. A malformed
// domain is simply not ours.
func (db *DB) IsLocalDomain(ctx context.Context, domain string) (bool, error) {
	d, err := NormalizeDomain(domain)
	if err != nil {
		return false, nil
	}
	ok, err := readLookup{db}.domainExists(ctx, d)
	if err != nil {
		return false, fmt.Errorf("auth: domain lookup: %w", err)
	}
	return ok, nil
}

// CanSendAs reports whether the authenticated user may use from as the
// envelope or header sender: their own address, their own user+tag address,
// an alias (or its +tag form) whose expansion includes the user, or an
// address granted with AddSendAs (the grant of an address covers its +tag
// forms; "@domain" covers every address of the domain). A catch-all does
// not make every address of the domain the user's. A malformed from is
// simply not theirs (false, nil). It is the one rule for submission's
// MAIL FROM and the message's From and Sender fields.
func (db *DB) CanSendAs(ctx context.Context, user, from string) (bool, error) {
	u, err := NormalizeAddress(user)
	if err != nil {
		return false, nil
	}
	f, err := NormalizeAddress(from)
	if err != nil {
		return false, nil
	}
	if f == u {
		return true, nil
	}
	cands := []string{f}
	if base := subaddressBase(f); base != "" {
		if base == u {
			return true, nil
		}
		cands = append(cands, base)
	}
	_, domain := splitAddress(f)
	if ok, err := exists(db.stmtGrant.QueryRowContext(ctx, u, f, cands[len(cands)-1], "@"+domain)); err != nil {
		return false, fmt.Errorf("auth: send-as lookup: %w", err)
	} else if ok {
		return true, nil
	}
	l := readLookup{db}
	for _, c := range cands {
		ts, ok, err := l.aliasTargets(ctx, c)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		r := newResolver(db, l)
		if err := r.expand(ctx, c, ts, 0); err != nil {
			if errors.Is(err, ErrAliasLoop) {
				return false, nil
			}
			return false, err
		}
		for _, a := range r.res.Local {
			if a == u {
				return true, nil
			}
		}
	}
	return false, nil
}

// User returns the user with that address. ErrNoSuchUser.
func (db *DB) User(ctx context.Context, address string) (User, error) {
	a, err := NormalizeAddress(address)
	if err != nil {
		return User{}, err
	}
	u, ok, err := readLookup{db}.user(ctx, a)
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, fmt.Errorf("%w: %s", ErrNoSuchUser, a)
	}
	return u.User, nil
}

// Quota returns the account's quota in bytes, 0 meaning unlimited; it has
// the shape of maildir.Options.Quota. ErrNoSuchUser.
func (db *DB) Quota(ctx context.Context, account string) (int64, error) {
	u, err := db.User(ctx, account)
	if err != nil {
		return 0, err
	}
	return u.QuotaBytes, nil
}

// MessageQuota returns the most messages the account may hold, 0 meaning
// unlimited; it has the shape of maildir.Options.MessageQuota.
// ErrNoSuchUser.
func (db *DB) MessageQuota(ctx context.Context, account string) (int64, error) {
	u, err := db.User(ctx, account)
	if err != nil {
		return 0, err
	}
	return u.QuotaMessages, nil
}
