package web

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/posthouse/posthouse/auth"
)

// fakeAuth stands in for package auth: users with passwords, roles, TOTP
// and app passwords, domains, aliases and send-as grants. writes counts
// every change, so a test can check that bad input changed nothing.
type fakeAuth struct {
	mu        sync.Mutex
	users     map[string]*fakeUser
	domains   []auth.Domain
	aliases   map[string][]string
	grants    map[string][]string
	failures  map[string]int // per address, for throttling
	nextID    int64
	writes    int
	throttleN int
}

type fakeUser struct {
	User
	password string
	secret   string
	used     map[string]bool // TOTP codes and recovery codes used
	recovery []string
	apps     []fakeApp
}

type fakeApp struct {
	AppPassword
	secret string
}

// fakeTOTPCode is the code the fake accepts for any secret.
const fakeTOTPCode = "123456"

func newFakeAuth() *fakeAuth {
	return &fakeAuth{users: map[string]*fakeUser{}, aliases: map[string][]string{}, grants: map[string][]string{},
		failures: map[string]int{}, throttleN: 5}
}

func (f *fakeAuth) addUser(address, password string, admin bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, domain, _ := strings.Cut(address, "@")
	if !slices.ContainsFunc(f.domains, func(d auth.Domain) bool { return d.Name == domain }) {
		f.domains = append(f.domains, auth.Domain{Name: domain})
	}
	f.users[address] = &fakeUser{User: User{Address: address, Admin: admin}, password: password, used: map[string]bool{}}
}

func (f *fakeAuth) changes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

func (f *fakeAuth) AuthenticateWeb(_ context.Context, address, password string, _ netip.Addr) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures[address] >= f.throttleN {
		return User{}, auth.ErrThrottled
	}
	u := f.users[address]
	if u == nil || u.Disabled || u.password != password {
		f.failures[address]++
		return User{}, auth.ErrBadCredentials
	}
	return u.User, nil
}

func (f *fakeAuth) VerifySecondFactor(_ context.Context, address, code string, _ netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[address]
	if u == nil || !u.TOTP {
		return ErrBadCode
	}
	if code == fakeTOTPCode && !u.used[code] || slices.Contains(u.recovery, code) && !u.used[code] {
		u.used[code] = true
		return nil
	}
	return fmt.Errorf("fake: %w", ErrBadCode)
}

func (f *fakeAuth) User(_ context.Context, address string) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[strings.ToLower(address)]
	if u == nil {
		return User{}, auth.ErrNoSuchUser
	}
	return u.User, nil
}

func (f *fakeAuth) SetPassword(_ context.Context, address, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[address]
	if u == nil {
		return auth.ErrNoSuchUser
	}
	u.password = password
	f.writes++
	return nil
}

func (f *fakeAuth) NewTOTPSecret() (string, error) { return "JBSWY3DPEHPK3PXP", nil }

func (f *fakeAuth) TOTPURI(issuer, address, secret string) string {
	return "otpauth://totp/" + issuer + ":" + address + "?secret=" + secret
}

func (f *fakeAuth) EnableTOTP(_ context.Context, address, secret, code string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[address]
	if code != fakeTOTPCode {
		return nil, ErrBadCode
	}
	u.TOTP, u.secret, u.recovery = true, secret, []string{"rec-one-1111", "rec-two-2222"}
	f.writes++
	return slices.Clone(u.recovery), nil
}

func (f *fakeAuth) DisableTOTP(_ context.Context, address string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[address].TOTP = false
	f.writes++
	return nil
}

func (f *fakeAuth) CreateAppPassword(_ context.Context, address, name string) (AppPassword, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[address]
	if len(u.apps) >= 3 {
		return AppPassword{}, "", fmt.Errorf("fake: %w", ErrTooManyAppPasswords)
	}
	f.nextID++
	a := fakeApp{AppPassword: AppPassword{ID: f.nextID, Name: name, Created: time.Now()}, secret: fmt.Sprintf("app-secret-%04d-xyzzy", f.nextID)}
	u.apps = append(u.apps, a)
	f.writes++
	return a.AppPassword, a.secret, nil
}

func (f *fakeAuth) AppPasswords(_ context.Context, address string) ([]AppPassword, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []AppPassword
	for _, a := range f.users[address].apps {
		out = append(out, a.AppPassword)
	}
	return out, nil
}

func (f *fakeAuth) RevokeAppPassword(_ context.Context, address string, id int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[address]
	i := slices.IndexFunc(u.apps, func(a fakeApp) bool { return a.ID == id })
	if i < 0 {
		return ErrNoSuchAppPassword
	}
	u.apps = slices.Delete(u.apps, i, i+1)
	f.writes++
	return nil
}

func (f *fakeAuth) Domains(context.Context) ([]auth.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.domains), nil
}

func (f *fakeAuth) AddDomain(_ context.Context, name string) error {
	n, err := auth.NormalizeDomain(name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.ContainsFunc(f.domains, func(d auth.Domain) bool { return d.Name == n }) {
		return auth.ErrExists
	}
	f.domains = append(f.domains, auth.Domain{Name: n, Created: time.Now()})
	f.writes++
	return nil
}

func (f *fakeAuth) RemoveDomain(_ context.Context, name string, _ bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.IndexFunc(f.domains, func(d auth.Domain) bool { return d.Name == name })
	if i < 0 {
		return auth.ErrNoSuchDomain
	}
	for a := range f.users {
		if strings.HasSuffix(a, "@"+name) {
			return auth.ErrDomainNotEmpty
		}
	}
	f.domains = slices.Delete(f.domains, i, i+1)
	f.writes++
	return nil
}

func (f *fakeAuth) Users(_ context.Context, domain string) ([]User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if domain != "" && !slices.ContainsFunc(f.domains, func(d auth.Domain) bool { return d.Name == domain }) {
		return nil, auth.ErrNoSuchDomain
	}
	var out []User
	for a, u := range f.users {
		if domain == "" || strings.HasSuffix(a, "@"+domain) {
			out = append(out, u.User)
		}
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Address, b.Address) })
	return out, nil
}

func (f *fakeAuth) AddUser(_ context.Context, address, password string, quota int64) error {
	a, err := auth.NormalizeAddress(address)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, domain, _ := strings.Cut(a, "@")
	if !slices.ContainsFunc(f.domains, func(d auth.Domain) bool { return d.Name == domain }) {
		return auth.ErrNoSuchDomain
	}
	if f.users[a] != nil {
		return auth.ErrExists
	}
	f.users[a] = &fakeUser{User: User{Address: a, QuotaBytes: quota}, password: password, used: map[string]bool{}}
	f.writes++
	return nil
}

func (f *fakeAuth) update(address string, fn func(u *fakeUser)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.users[address]
	if u == nil {
		return auth.ErrNoSuchUser
	}
	fn(u)
	f.writes++
	return nil
}

func (f *fakeAuth) SetQuota(_ context.Context, address string, quota int64) error {
	return f.update(address, func(u *fakeUser) { u.QuotaBytes = quota })
}

func (f *fakeAuth) SetDisabled(_ context.Context, address string, disabled bool) error {
	return f.update(address, func(u *fakeUser) { u.Disabled = disabled })
}

func (f *fakeAuth) SetAdmin(_ context.Context, address string, admin bool) error {
	return f.update(address, func(u *fakeUser) { u.Admin = admin })
}

func (f *fakeAuth) Aliases(_ context.Context, domain string) ([]auth.Alias, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []auth.Alias
	for a, t := range f.aliases {
		if domain == "" || strings.HasSuffix(a, "@"+domain) {
			out = append(out, auth.Alias{Address: a, Targets: t})
		}
	}
	return out, nil
}

func (f *fakeAuth) AddAlias(_ context.Context, address string, targets []string) error {
	if !strings.HasPrefix(address, "@") {
		if _, err := auth.NormalizeAddress(address); err != nil {
			return err
		}
	}
	for _, t := range targets {
		if _, err := auth.NormalizeAddress(t); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, domain, _ := strings.Cut(address, "@")
	if !slices.ContainsFunc(f.domains, func(d auth.Domain) bool { return d.Name == domain }) {
		return auth.ErrNotLocal
	}
	if f.aliases[address] != nil {
		return auth.ErrExists
	}
	f.aliases[address] = targets
	f.writes++
	return nil
}

func (f *fakeAuth) RemoveAlias(_ context.Context, address string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.aliases[address] == nil {
		return auth.ErrNoSuchAlias
	}
	delete(f.aliases, address)
	f.writes++
	return nil
}

func (f *fakeAuth) SendAsGrants(_ context.Context, user string) ([]auth.SendAsGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []auth.SendAsGrant
	for _, a := range f.grants[user] {
		out = append(out, auth.SendAsGrant{User: user, Address: a})
	}
	return out, nil
}

func (f *fakeAuth) AddSendAs(_ context.Context, user, address string) error {
	if !strings.HasPrefix(address, "@") {
		if _, err := auth.NormalizeAddress(address); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Contains(f.grants[user], address) {
		return auth.ErrExists
	}
	f.grants[user] = append(f.grants[user], address)
	f.writes++
	return nil
}

func (f *fakeAuth) RemoveSendAs(_ context.Context, user, address string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.grants[user], address)
	if i < 0 {
		return auth.ErrNoSuchGrant
	}
	f.grants[user] = slices.Delete(f.grants[user], i, i+1)
	f.writes++
	return nil
}
