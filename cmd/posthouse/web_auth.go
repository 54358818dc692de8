package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/web"
)

// webAuth adapts the user database to the web console's Accounts and
// Directory: auth's User and AppPassword become web's, and auth's
// second-factor and app password sentinels web's.
type webAuth struct{ db *auth.DB }

func webUser(u auth.User) web.User {
	return web.User{Address: u.Address, Admin: u.Admin, TOTP: u.TOTP, Disabled: u.Disabled,
		QuotaBytes: u.QuotaBytes, QuotaMessages: u.QuotaMessages, Created: u.Created}
}

// webError gives auth's sentinels that web names itself web's, keeping the
// rest (auth's own sentinels, which web matches directly).
func webError(err error) error {
	for _, m := range []struct{ from, to error }{
		{auth.ErrBadCode, web.ErrBadCode},
		{auth.ErrNoSuchAppPassword, web.ErrNoSuchAppPassword},
		{auth.ErrInvalidName, web.ErrInvalidName},
		{auth.ErrTooManyAppPasswords, web.ErrTooManyAppPasswords},
	} {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return err
}

func (w webAuth) AuthenticateWeb(ctx context.Context, address, password string, remote netip.Addr) (web.User, error) {
	u, err := w.db.AuthenticateWeb(ctx, address, password, remote)
	return webUser(u), err
}

func (w webAuth) VerifySecondFactor(ctx context.Context, address, code string, remote netip.Addr) error {
	return webError(w.db.VerifySecondFactor(ctx, address, code, remote))
}

func (w webAuth) User(ctx context.Context, address string) (web.User, error) {
	u, err := w.db.User(ctx, address)
	return webUser(u), err
}

func (w webAuth) SetPassword(ctx context.Context, address, password string) error {
	return w.db.SetPassword(ctx, address, password)
}

func (w webAuth) NewTOTPSecret() (string, error) { return w.db.NewTOTPSecret() }

func (w webAuth) TOTPURI(issuer, address, secret string) string {
	return auth.TOTPURI(issuer, address, secret)
}

func (w webAuth) EnableTOTP(ctx context.Context, address, secret, code string) ([]string, error) {
	codes, err := w.db.EnableTOTP(ctx, address, secret, code)
	return codes, webError(err)
}

func (w webAuth) DisableTOTP(ctx context.Context, address string) error {
	return w.db.DisableTOTP(ctx, address)
}

func (w webAuth) CreateAppPassword(ctx context.Context, address, name string) (web.AppPassword, string, error) {
	ap, secret, err := w.db.CreateAppPassword(ctx, address, name)
	return web.AppPassword(ap), secret, webError(err)
}

func (w webAuth) AppPasswords(ctx context.Context, address string) ([]web.AppPassword, error) {
	aps, err := w.db.AppPasswords(ctx, address)
	out := make([]web.AppPassword, len(aps))
	for i, ap := range aps {
		out[i] = web.AppPassword(ap)
	}
	return out, err
}

func (w webAuth) RevokeAppPassword(ctx context.Context, address string, id int64) error {
	return webError(w.db.RevokeAppPassword(ctx, address, id))
}

func (w webAuth) Domains(ctx context.Context) ([]auth.Domain, error) { return w.db.Domains(ctx) }

func (w webAuth) AddDomain(ctx context.Context, name string) error { return w.db.AddDomain(ctx, name) }

func (w webAuth) RemoveDomain(ctx context.Context, name string, force bool) error {
	return w.db.RemoveDomain(ctx, name, force)
}

func (w webAuth) Users(ctx context.Context, domain string) ([]web.User, error) {
	us, err := w.db.Users(ctx, domain)
	out := make([]web.User, len(us))
	for i, u := range us {
		out[i] = webUser(u)
	}
	return out, err
}

func (w webAuth) AddUser(ctx context.Context, address, password string, quota int64) error {
	_, err := w.db.AddUser(ctx, address, password, quota)
	return err
}

func (w webAuth) SetQuota(ctx context.Context, address string, quota int64) error {
	return w.db.SetQuota(ctx, address, quota)
}

func (w webAuth) SetDisabled(ctx context.Context, address string, disabled bool) error {
	return w.db.SetDisabled(ctx, address, disabled)
}

func (w webAuth) SetAdmin(ctx context.Context, address string, admin bool) error {
	return w.db.SetAdmin(ctx, address, admin)
}

func (w webAuth) Aliases(ctx context.Context, domain string) ([]auth.Alias, error) {
	return w.db.Aliases(ctx, domain)
}

func (w webAuth) AddAlias(ctx context.Context, address string, targets []string) error {
	return w.db.AddAlias(ctx, address, targets)
}

func (w webAuth) RemoveAlias(ctx context.Context, address string) error {
	return w.db.RemoveAlias(ctx, address)
}

func (w webAuth) SendAsGrants(ctx context.Context, user string) ([]auth.SendAsGrant, error) {
	return w.db.SendAsGrants(ctx, user)
}

func (w webAuth) AddSendAs(ctx context.Context, user, address string) error {
	return w.db.AddSendAs(ctx, user, address)
}

func (w webAuth) RemoveSendAs(ctx context.Context, user, address string) error {
	return w.db.RemoveSendAs(ctx, user, address)
}
