package sievefilter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/junk"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/sieve"
	"github.com/posthouse/posthouse/sievestore"
)

// Store is what the filter needs of the script store; *sievestore.Store
// implements it.
type Store interface {
	Active(ctx context.Context, account string) (name string, script *sieve.Script, err error)
	Compiled(ctx context.Context, account, name string) (*sieve.Script, error)
	Vacation(ctx context.Context, account string) (*sievestore.Vacation, error)
	DuplicateSeen(ctx context.Context, account, id string) (bool, error)
	MarkDuplicates(ctx context.Context, account string, marks []sieve.DuplicateMark) error
	ClaimResponse(ctx context.Context, account, handle, sender string, period time.Duration) (bool, error)
	ReleaseResponse(ctx context.Context, account, handle, sender string) error
}

var _ Store = (*sievestore.Store)(nil)

// Queue sends vacation responses; *queue.Queue implements it.
type Queue interface {
	Enqueue(ctx context.Context, from string, rcpts []string, body io.Reader) (id string, err error)
}

// Mailboxes opens accounts for mailboxexists (RFC 5490 §3.1);
// MailStore serves a mailstore.Store as one.
type Mailboxes interface {
	Open(ctx context.Context, name string) (Account, error)
}

// Account is the part of a mailstore.Account mailboxexists uses.
type Account interface {
	Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error)
	Close() error
}

var _ Account = mailstore.Account(nil)

// MailStore serves s's accounts as Account.
func MailStore(s mailstore.Store) Mailboxes { return mailstore.Narrow[Account](s) }

// Options configure New.
type Options struct {
	Store Store
	// Queue sends vacation responses; nil: none are sent (logged).
	Queue Queue
	// Mailboxes answers mailboxexists; nil: no mailbox exists.
	Mailboxes Mailboxes
	// Compile are the limits the administrator's out-of-office is
	// compiled and run with (the store's, for users' scripts).
	Compile sieve.Options
	// Hostname names this server in the Message-ID of responses.
	Hostname string
	// MaxRedirectHops: a message that already went through this many
	// Sieve redirects (our trace field) is not redirected again
	// (DefaultMaxRedirectHops).
	MaxRedirectHops int
	// Now is the clock; nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// DefaultMaxRedirectHops bounds the redirects one message goes through.
const DefaultMaxRedirectHops = 8

// TraceField is the field a redirected copy carries, naming the account
// whose script redirected it: a message that comes back to an account it
// already left by redirect is kept there, not sent round again.
const TraceField = "X-Posthouse-Sieve-Redirected"

// adminHandle is the vacation handle of the administrator's
// out-of-office: its responses are tracked apart from the user's.
const adminHandle = "posthouse-out-of-office"

// Filter is the delivery filter: see the package doc.
type Filter struct {
	opts Options
	log  *slog.Logger

	adminMu      sync.Mutex
	adminScripts map[string]*sieve.Script // out-of-office script by source; bounded
}

// New checks opts and builds the filter.
func New(opts Options) (*Filter, error) {
	if opts.Store == nil {
		return nil, errors.New("sievefilter: Options.Store is required")
	}
	if opts.MaxRedirectHops <= 0 {
		opts.MaxRedirectHops = DefaultMaxRedirectHops
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	return &Filter{opts: opts, log: opts.Logger, adminScripts: map[string]*sieve.Script{}}, nil
}

// Name implements delivery.Filter.
func (f *Filter) Name() string { return "sieve" }

// Check implements delivery.Filter: one verdict per account that has an
// active script or an out-of-office. It never fails: whatever goes wrong
// for an account (a script that does not compile any more, a runtime
// error, the database) is logged and the message kept (RFC 5228
// §2.10.6).
func (f *Filter) Check(ctx context.Context, m *delivery.Message) (delivery.Decision, error) {
	var d delivery.Decision
	var msg *message
	for _, r := range m.Recipients {
		log := f.log.With("rcpt", r.Account, "msgid", m.Envelope.ID)
		planned := m.Planned(r.Account)
		if planned.Action != delivery.Keep {
			// Rejected or discarded before us: final, no script runs
			// and nobody is answered.
			continue
		}
		now := f.opts.Now()
		user, admin := f.scripts(ctx, r.Account, now, log)
		if user == nil && admin == nil {
			continue
		}
		if msg == nil {
			msg = newMessage(m)
		}
		v, ok := f.account(ctx, m, msg, r, planned, user, admin, now, log)
		if !ok {
			continue
		}
		if d.Rcpt == nil {
			d.Rcpt = map[string]delivery.Verdict{}
		}
		d.Rcpt[r.Account] = v
	}
	return d, nil
}

// scripts returns the account's active script and its out-of-office as a
// script, nil when none (or when it cannot be had: logged).
func (f *Filter) scripts(ctx context.Context, account string, now time.Time, log *slog.Logger) (user, admin *sieve.Script) {
	name, user, err := f.opts.Store.Active(ctx, account)
	if err != nil {
		log.Error("sieve: active script not usable; message kept", "script", name, "err", err)
		user = nil
	}
	v, err := f.opts.Store.Vacation(ctx, account)
	switch {
	case errors.Is(err, sievestore.ErrNotFound):
	case err != nil:
		log.Error("sieve: reading the out-of-office", "err", err)
	case v.In(now):
		admin, err = f.adminScript(v)
		if err != nil {
			log.Error("sieve: out-of-office not usable", "err", err)
		}
	}
	return user, admin
}

// account runs the scripts for one recipient and builds its verdict.
func (f *Filter) account(ctx context.Context, m *delivery.Message, msg *message, r delivery.Recipient, planned delivery.Planned,
	user, admin *sieve.Script, now time.Time, log *slog.Logger) (delivery.Verdict, bool) {
	env := msg.env(m, r, planned, now)
	env.Duplicates = duplicates{f.opts.Store, r.Account}
	env.Scripts = includes{f.opts.Store, r.Account}
	if f.opts.Mailboxes != nil {
		env.Mailboxes = mailboxes{f.opts.Mailboxes, r.Account}
	}
	res := sieve.Result{ImplicitKeep: true}
	if user != nil {
		var err error
		res, err = user.Run(ctx, env)
		if err != nil {
			log.Error("sieve: script failed; message kept", "err", err)
		}
	}
	var vac *sieve.Vacation
	if admin != nil {
		ares, err := admin.Run(ctx, env)
		switch {
		case err != nil:
			log.Error("sieve: out-of-office failed", "err", err)
		case ares.Vacation != nil:
			// One automatic response per message: the administrator's
			// out-of-office replaces one the user's script asks for.
			vac = ares.Vacation
		}
	}
	if vac == nil {
		vac = res.Vacation
	}
	if vac != nil && vac.Skip == "" && env.Spam.Tested && env.Spam.Score >= 1 {
		// No automatic reply to what we judged junk: it would go to a
		// forged sender (backscatter).
		vac.Skip = "junk"
	}
	v := f.verdict(m, msg, r.Account, planned, &res, log)
	if vac != nil || len(res.Duplicates) > 0 {
		v.Committed = f.committed(r.Account, vac, res.Duplicates, msg, log)
	}
	if isZero(&v) {
		return v, false
	}
	return v, true
}

// isZero: a verdict that changes nothing.
func isZero(v *delivery.Verdict) bool {
	return v.Action == delivery.Keep && v.Copies == nil && len(v.Headers) == 0 && len(v.Append) == 0 &&
		len(v.Remove) == 0 && len(v.Redirect) == 0 && v.Committed == nil
}

// spamFrom derives spamtest's verdict (RFC 5235) from what the filters
// before us decided for the account: the topmost X-Posthouse-Junk field
// they added (never one the message brought), and a Junk verdict (the
// $Junk keyword: the junk filter's or the inbound policy's) counts as
// spam whatever the score.
func spamFrom(p delivery.Planned) sieve.Spam {
	for _, fl := range p.Flags {
		if strings.EqualFold(fl, junk.JunkKeyword) {
			return sieve.Spam{Tested: true, Score: 1}
		}
	}
	for _, pf := range p.Fields {
		if !strings.EqualFold(pf.Name, junk.HeaderName) {
			continue
		}
		res, ok := junk.ParseHeader(strings.ReplaceAll(pf.Value, "\r\n", ""))
		if !ok || res.Verdict == junk.VerdictUntrained {
			return sieve.Spam{}
		}
		return sieve.Spam{Tested: true, Score: res.Score}
	}
	return sieve.Spam{}
}

// committed is the hook run once the account's copy is delivered: the
// vacation response goes out and the duplicate ids are recorded, only
// then (RFC 7352 §3).
func (f *Filter) committed(account string, vac *sieve.Vacation, dups []sieve.DuplicateMark, msg *message, log *slog.Logger) func(context.Context, error) {
	return func(ctx context.Context, err error) {
		if err != nil {
			return
		}
		if len(dups) > 0 {
			if err := f.opts.Store.MarkDuplicates(ctx, account, dups); err != nil {
				log.Error("sieve: recording duplicate ids", "err", err)
			}
		}
		if vac != nil {
			f.respond(ctx, account, vac, msg, log)
		}
	}
}

// adminScript compiles the out-of-office into a vacation-only script, so
// that it makes the same checks as a user's vacation (RFC 5230 §4.5,
// §4.6, RFC 3834). Scripts are kept by source, at most maxAdminScripts.
func (f *Filter) adminScript(v *sievestore.Vacation) (*sieve.Script, error) {
	period := v.Period
	if period <= 0 {
		period = f.opts.Compile.VacationPeriod
		if period <= 0 {
			period = sieve.DefaultVacationPeriod
		}
	}
	src := fmt.Sprintf("require [\"vacation\", \"vacation-seconds\"];\nvacation :seconds %d :handle %s :subject %s %s;\n",
		int64(period/time.Second), quote(adminHandle), quote(v.Subject), quote(v.Message))
	f.adminMu.Lock()
	defer f.adminMu.Unlock()
	if s, ok := f.adminScripts[src]; ok {
		return s, nil
	}
	s, err := sieve.Compile([]byte(src), f.opts.Compile)
	if err != nil {
		return nil, err
	}
	if len(f.adminScripts) >= maxAdminScripts {
		clear(f.adminScripts)
	}
	f.adminScripts[src] = s
	return s, nil
}

const maxAdminScripts = 256

// quote makes a Sieve quoted string (RFC 5228 §2.4.2): backslash and
// double quote escaped, everything else as it is.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
