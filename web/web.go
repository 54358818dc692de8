package web

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dnscheck"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/sievestore"
)

// User is what the console needs to know of an account holder (auth.User
// with its role and second factor).
type User struct {
	Address       string
	Admin         bool // may use the admin console
	TOTP          bool // web login asks for a second factor
	Disabled      bool
	QuotaBytes    int64 // 0: unlimited
	QuotaMessages int64
	Created       time.Time
}

// AppPassword is one device's password, as the user sees it (never the
// secret, which is shown once at creation).
type AppPassword struct {
	ID         int64
	Name       string
	Created    time.Time
	LastUsed   time.Time // zero: never
	LastRemote string    // address of the last use
}

// ErrBadCode: a TOTP or recovery code was refused. Accounts
// implementations return it (wrapped or not) from VerifySecondFactor and
// EnableTOTP.
var ErrBadCode = errors.New("web: wrong or reused code")

// ErrNoSuchAppPassword: the user has no app password with that id.
var ErrNoSuchAppPassword = errors.New("web: no such app password")

// ErrInvalidName: auth refused an app password's name.
var ErrInvalidName = errors.New("web: invalid app password name")

// ErrTooManyAppPasswords: the user has as many app passwords as auth
// keeps.
var ErrTooManyAppPasswords = errors.New("web: too many app passwords")

// Accounts is what login and self-service need of package auth. Its
// errors are auth's sentinels (ErrBadCredentials, ErrThrottled,
// ErrNoSuchUser, ErrEmptyPassword, ErrExists) plus ErrBadCode,
// ErrNoSuchAppPassword, ErrInvalidName and ErrTooManyAppPasswords.
type Accounts interface {
	// AuthenticateWeb checks the account password (never an app
	// password) with auth's throttling.
	AuthenticateWeb(ctx context.Context, address, password string, remote netip.Addr) (User, error)
	// VerifySecondFactor checks a TOTP code or a one-time recovery code.
	VerifySecondFactor(ctx context.Context, address, code string, remote netip.Addr) error
	User(ctx context.Context, address string) (User, error)
	SetPassword(ctx context.Context, address, password string) error
	NewTOTPSecret() (string, error)
	TOTPURI(issuer, address, secret string) string
	EnableTOTP(ctx context.Context, address, secret, code string) (recoveryCodes []string, err error)
	DisableTOTP(ctx context.Context, address string) error
	CreateAppPassword(ctx context.Context, address, name string) (AppPassword, string, error)
	AppPasswords(ctx context.Context, address string) ([]AppPassword, error)
	RevokeAppPassword(ctx context.Context, address string, id int64) error
}

// Directory is what the admin pages read and change in package auth.
type Directory interface {
	Domains(ctx context.Context) ([]auth.Domain, error)
	AddDomain(ctx context.Context, name string) error
	RemoveDomain(ctx context.Context, name string, force bool) error
	Users(ctx context.Context, domain string) ([]User, error)
	AddUser(ctx context.Context, address, password string, quota int64) error
	SetQuota(ctx context.Context, address string, quota int64) error
	SetDisabled(ctx context.Context, address string, disabled bool) error
	SetAdmin(ctx context.Context, address string, admin bool) error
	Aliases(ctx context.Context, domain string) ([]auth.Alias, error)
	AddAlias(ctx context.Context, address string, targets []string) error
	RemoveAlias(ctx context.Context, address string) error
	SendAsGrants(ctx context.Context, user string) ([]auth.SendAsGrant, error)
	AddSendAs(ctx context.Context, user, address string) error
	RemoveSendAs(ctx context.Context, user, address string) error
}

// Queue is the outbound queue as `posthouse admin queue` uses it
// (*queue.Queue).
type Queue interface {
	List(ctx context.Context) ([]queue.Message, error)
	Get(ctx context.Context, id string) (queue.Message, error)
	Retry(ctx context.Context, id string) (int, error)
	Remove(ctx context.Context, id string) error
}

// DKIMKeys is the signing key store (*dkim.Keys).
type DKIMKeys interface {
	List(ctx context.Context, domain string) ([]dkim.Key, error)
	Generate(ctx context.Context, domain, selector, algorithm string) (dkim.Key, error)
	Remove(ctx context.Context, domain, selector string) error
}

// Sieve is the users' script and out-of-office store
// (*sievestore.Store).
type Sieve interface {
	List(ctx context.Context, account string) ([]sievestore.Script, error)
	Get(ctx context.Context, account, name string) ([]byte, error)
	Check(src []byte) error
	Put(ctx context.Context, account, name string, src []byte) error
	SetActive(ctx context.Context, account, name string) error
	Delete(ctx context.Context, account, name string) error
	Vacation(ctx context.Context, account string) (*sievestore.Vacation, error)
	SetVacation(ctx context.Context, account string, v sievestore.Vacation) error
	DeleteVacation(ctx context.Context, account string) error
	MaxScriptBytes() int
}

// Traffic is the dashboard's mail count over the last 24 hours.
type Traffic struct{ In, Out, Rejected int64 }

// Options configure New. Accounts, Directory, Sieve and Logger are
// required; a nil Queue, DKIM, Usage, Last24h, Metrics or Resolver leaves
// its page or figure out.
type Options struct {
	Logger    *slog.Logger
	Hostname  string // TOTP issuer and DNS check host
	Accounts  Accounts
	Directory Directory
	Queue     Queue
	DKIM      DKIMKeys
	Sieve     Sieve
	// Usage reports an account's bytes stored and quota (mailstore).
	Usage func(ctx context.Context, account string) (used, limit int64, err error)
	// Last24h reports the messages in, out and rejected in the last 24 h.
	Last24h func(now time.Time) Traffic
	// Metrics serves /metrics (Prometheus) on the admin handler.
	Metrics http.Handler
	// Resolver, Ports and Warnings feed the DNS check page.
	Resolver dnscheck.Resolver
	Ports    dns.Ports
	Warnings []string

	// Sessions keeps sessions across restarts; nil: in memory only.
	Sessions *SessionDB
	// SessionIdle and SessionMax bound a session's life: idle time and
	// age (defaults 1 h and 12 h).
	SessionIdle, SessionMax time.Duration
	// Now is the clock; tests move it (nil: time.Now).
	Now func() time.Time
}

// Limits on requests. Forms are small; a Sieve script is the largest
// (sievestore's limit, 64 KiB by default), with room for the other fields.
const (
	maxFormBytes      = 256 << 10
	requestTimeout    = 30 * time.Second
	dnsCheckTimeout   = 20 * time.Second
	minPasswordLength = 8
)

// Server holds the console's state: templates and sessions.
type Server struct {
	opts     Options
	log      *slog.Logger
	pages    map[string]*template.Template
	sessions *sessions
	static   http.Handler
}

// New returns the console.
func New(opts Options) (*Server, error) {
	if opts.Accounts == nil || opts.Directory == nil || opts.Sieve == nil || opts.Logger == nil {
		return nil, errors.New("web: Accounts, Directory, Sieve and Logger are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = time.Hour
	}
	if opts.SessionMax <= 0 {
		opts.SessionMax = 12 * time.Hour
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Server{
		opts:     opts,
		log:      opts.Logger,
		pages:    pages,
		sessions: newSessions(opts.SessionIdle, opts.SessionMax, opts.Now, opts.Sessions, opts.Logger),
		static:   staticHandler(),
	}, nil
}

// AdminHandler serves the admin listener: the admin console under
// /admin, self-service under /account, and /metrics.
func (s *Server) AdminHandler() http.Handler {
	mux := s.baseMux(true)
	s.adminRoutes(mux)
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics)
	}
	return mux
}

// AccountHandler serves self-service only (/account), for the https
// listener: the admin console is never reachable there.
func (s *Server) AccountHandler() http.Handler {
	return s.baseMux(false)
}

// baseMux has login, logout, static files and /account; admin says whether
// it is the admin listener's (where login leads to the admin pages).
func (s *Server) baseMux(admin bool) *http.ServeMux {
	wrap := func(h handler) http.Handler { return s.wrap(admin, h) }
	mux := http.NewServeMux()
	mux.Handle("GET /static/", s.static)
	mux.Handle("GET /{$}", wrap(s.home))
	mux.Handle("GET /login", wrap(s.loginForm))
	mux.Handle("POST /login", wrap(s.login))
	mux.Handle("GET /login/code", wrap(s.codeForm))
	mux.Handle("POST /login/code", wrap(s.code))
	mux.Handle("POST /logout", wrap(s.logout))
	s.accountRoutes(mux, wrap)
	return mux
}

// remoteAddr is the client's address (the connection's: no proxy header is
// trusted).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
