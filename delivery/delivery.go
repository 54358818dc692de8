package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
)

// Directory resolves recipient addresses (aliases, user+tag, catch-all,
// postmaster) to accounts; *auth.DB implements it.
type Directory interface {
	// Resolve returns where mail for address goes: auth.ErrNoSuchUser for
	// an unknown local address, auth.ErrNotLocal for a foreign domain.
	Resolve(ctx context.Context, address string) (auth.Resolution, error)
}

// Store opens the accounts copies are stored in; MailStore serves a
// mailstore.Store as one.
type Store interface {
	Open(ctx context.Context, name string) (Account, error)
}

// Account is what the pipeline does with an account: store a copy. Each
// method keeps the contract of the mailstore.Account method of the same
// name.
type Account interface {
	Deliver(ctx context.Context, r io.Reader, opts mailstore.DeliverOptions) (mailstore.AppendResult, error)
	Close() error
}

// A mailstore.Account has every method the pipeline uses.
var _ Account = mailstore.Account(nil)

// MailStore serves s's accounts as Account.
func MailStore(s mailstore.Store) Store { return mailstore.Narrow[Account](s) }

// Queue takes the copies a filter redirects to other addresses;
// *queue.Queue implements it. Enqueue is durable before it returns.
type Queue interface {
	Enqueue(ctx context.Context, from string, rcpts []string, body io.Reader) (id string, err error)
}

// Options configure New.
type Options struct {
	// Logger is used when a Request brings none.
	Logger    *slog.Logger
	Directory Directory
	Store     Store
	// Queue carries redirected copies. nil: a redirect verdict fails the
	// recipient temporarily (and is logged): a configuration error.
	Queue Queue
	// Filters run in this order on every message; see the package doc for
	// how their verdicts compose.
	Filters []Filter
}

// Pipeline is the one path of every local delivery. It holds no state of
// its own beyond Options and is safe for concurrent use.
type Pipeline struct {
	opts Options
	log  *slog.Logger
}

// New checks opts and builds a Pipeline.
func New(opts Options) (*Pipeline, error) {
	if opts.Directory == nil || opts.Store == nil {
		return nil, errors.New("delivery: Options.Directory and Options.Store are required")
	}
	for i, f := range opts.Filters {
		if f == nil {
			return nil, fmt.Errorf("delivery: Options.Filters[%d] is nil", i)
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{opts: opts, log: opts.Logger}, nil
}

// Source says who handed a message to the pipeline.
type Source string

// Sources. The SMTP ones are smtpd's listener modes.
const (
	SourceSMTP        Source = "smtp"        // port 25, inbound
	SourceSubmission  Source = "submission"  // port 587
	SourceSubmissions Source = "submissions" // port 465
	SourceQueue       Source = "queue"       // the queue's local transport (retries, alias targets)
)

// Envelope is what the transaction said about a message, for filters. The
// Client fields are zero when the message comes from the queue: a retry no
// longer knows the connection it arrived on.
type Envelope struct {
	Source Source
	// ID names the message in logs: smtpd's message id or the queue id.
	ID   string
	From string // MAIL FROM, "" for the null reverse-path
	UTF8 bool   // SMTPUTF8 was given on MAIL
	// Client is the SMTP client that sent the message.
	Client Client
}

// Client describes the SMTP connection a message arrived on.
type Client struct {
	IP   netip.Addr
	Helo string // the EHLO or HELO argument
	// TLSVersion and TLSCipher are crypto/tls's numbers, 0 without TLS.
	TLSVersion uint16
	TLSCipher  uint16
	User       string // the authenticated user on submission, else ""
}

// Request is one message to deliver to local recipients.
type Request struct {
	Envelope Envelope
	// Rcpts are the envelope recipients to deliver locally, as accepted
	// (before alias resolution, which is the pipeline's).
	Rcpts []string
	// Body is the message as received, with the trace fields the caller
	// added (Received, Authentication-Results, a stored DKIM signature),
	// CRLF line endings. It is read with ReadAt only, concurrently, and
	// never held in memory whole.
	Body *io.SectionReader
	// Log carries the caller's context (conn, id, msgid or queueid); nil:
	// Options.Logger.
	Log *slog.Logger
}

// Outcome is what became of a Request.
type Outcome struct {
	// Results has one entry per account the recipients reach (a copy
	// each, however many recipients lead to it), in first-seen order, and
	// one per recipient that no longer resolves, where it came.
	Results []Result
	// Remote lists the foreign addresses aliases among the recipients lead
	// to, deduplicated. The pipeline does not send them: the caller queues
	// them (smtpd with its foreign recipients, the queue as a new entry).
	Remote []string
}

// Result is the outcome for one account.
type Result struct {
	// Rcpt is the account name, or the recipient address when it did not
	// resolve: what a retry through the queue is addressed to (the account
	// name resolves to itself, so a retry never repeats another account's
	// copy).
	Rcpt string
	// Addresses are the envelope recipients that led to it.
	Addresses []string
	// Err is nil when the account's share is done and durable (stored,
	// redirected or discarded, as the filters decided). Otherwise it wraps
	// auth.ErrNoSuchUser (the recipient no longer resolves),
	// mailstore.ErrOverQuota, ErrFilter (temporary), or is a *RejectError
	// (a filter's reply), or any other error (temporary).
	Err error
}

// ErrFilter marks a filter that failed or panicked: the message is not
// delivered to anyone, and the failure is temporary.
var ErrFilter = errors.New("delivery: filter failed")

// maxParallel bounds the accounts one message is stored into at a time.
const maxParallel = 4

// Deliver runs the pipeline: resolve the recipients, run the filters over
// the message once, then store (and redirect) each account's copy, up to
// maxParallel accounts at a time. Each account's copy is durable when its
// Result has no error; the caller answers only after Deliver returns.
func (p *Pipeline) Deliver(ctx context.Context, req *Request) Outcome {
	log := req.Log
	if log == nil {
		log = p.log
	}
	// One delivery sees one state of the directory, read once: resolution,
	// the filters and each store's quota reads share the lookups (and
	// smtpd's, made at RCPT, when it passes its transaction's memo).
	ctx = auth.WithLookupMemo(ctx)
	var out Outcome
	var rcpts []Recipient
	var where []int // where[i]: the Results index of rcpts[i]
	out.Results, rcpts, where, out.Remote = p.resolve(ctx, req.Rcpts, log)
	if len(rcpts) == 0 {
		return out
	}
	m := &Message{Envelope: req.Envelope, Recipients: rcpts, body: req.Body}
	plans, err := p.filter(ctx, m, log)
	if err != nil {
		for _, i := range where {
			out.Results[i].Err = err
		}
		return out
	}
	p.commit(ctx, m, plans, func(i int, err error) { out.Results[where[i]].Err = err }, log)
	return out
}

// resolve turns recipient addresses into accounts. Every account appears
// once, with the addresses that reach it.
func (p *Pipeline) resolve(ctx context.Context, addrs []string, log *slog.Logger) (results []Result, rcpts []Recipient, where []int, remote []string) {
	byAccount := map[string]int{} // account → index in rcpts
	seenRemote := map[string]bool{}
	for _, addr := range addrs {
		res, err := p.opts.Directory.Resolve(ctx, addr)
		if err == nil && len(res.Local) == 0 && len(res.Remote) == 0 {
			err = auth.ErrNoSuchUser
		}
		switch {
		case errors.Is(err, auth.ErrNoSuchUser), errors.Is(err, auth.ErrNotLocal), errors.Is(err, auth.ErrInvalidAddress):
			// Accepted once, gone now (an alias or user removed since).
			log.Warn("delivery refused: no such recipient", "rcpt", addr)
			results = append(results, Result{Rcpt: addr, Addresses: []string{addr},
				Err: fmt.Errorf("delivery: %s: %w (%v)", addr, auth.ErrNoSuchUser, err)})
			continue
		case err != nil:
			log.Error("resolving recipient", "rcpt", addr, "err", err)
			results = append(results, Result{Rcpt: addr, Addresses: []string{addr},
				Err: fmt.Errorf("delivery: resolving %s: %w", addr, err)})
			continue
		}
		for _, acct := range res.Local {
			if i, ok := byAccount[acct]; ok {
				rcpts[i].Addresses = append(rcpts[i].Addresses, addr)
				continue
			}
			byAccount[acct] = len(rcpts)
			rcpts = append(rcpts, Recipient{Account: acct, Addresses: []string{addr}})
			where = append(where, len(results))
			results = append(results, Result{Rcpt: acct})
		}
		for _, r := range res.Remote {
			if !seenRemote[r] {
				seenRemote[r] = true
				remote = append(remote, r)
			}
		}
	}
	// The Results share nothing with what filters see.
	for i := range rcpts {
		results[where[i]].Addresses = append([]string(nil), rcpts[i].Addresses...)
	}
	return results, rcpts, where, remote
}
