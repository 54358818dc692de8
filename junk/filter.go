package junk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"

	"github.com/posthouse/posthouse/delivery"
)

// Defaults of FilterOptions.
const (
	DefaultThreshold = 0.9
	// DefaultMinLearned is how many spam and how many ham messages an
	// account must have learned before its mail gets a verdict: with
	// fewer, the statistics say more about chance than about mail.
	DefaultMinLearned = 20
)

// JunkKeyword is the keyword of a copy filed as junk, the one Thunderbird
// sets and reads (and Apple Mail and others follow).
const JunkKeyword = "$Junk"

// NotJunkKeyword is the keyword a client sets on a message the user said
// is not junk.
const NotJunkKeyword = "$NotJunk"

// FilterOptions configure NewFilter.
type FilterOptions struct {
	DB *DB
	// Hostname is our authserv-id: Authentication-Results fields with it
	// are ours (smtpd removes incoming ones that claim it).
	Hostname string
	// Threshold: a score at or above it is junk. Default DefaultThreshold.
	Threshold float64
	// MinSpam and MinHam: learned messages of each class an account needs
	// before its mail gets a verdict. Default DefaultMinLearned each.
	MinSpam, MinHam int64
	Logger          *slog.Logger
}

// Filter is the delivery filter: see the package doc.
type Filter struct {
	opts FilterOptions
	tok  Tokenizer
	log  *slog.Logger
}

// NewFilter checks opts and builds the filter.
func NewFilter(opts FilterOptions) (*Filter, error) {
	if opts.DB == nil {
		return nil, errors.New("junk: FilterOptions.DB is required")
	}
	if opts.Threshold == 0 {
		opts.Threshold = DefaultThreshold
	}
	if opts.Threshold <= 0 || opts.Threshold >= 1 {
		return nil, fmt.Errorf("junk: threshold %v is not between 0 and 1", opts.Threshold)
	}
	if opts.MinSpam <= 0 {
		opts.MinSpam = DefaultMinLearned
	}
	if opts.MinHam <= 0 {
		opts.MinHam = DefaultMinLearned
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Filter{opts: opts, tok: Tokenizer{Hostname: opts.Hostname}, log: opts.Logger}, nil
}

// Name implements delivery.Filter.
func (f *Filter) Name() string { return "junk" }

// Check implements delivery.Filter: one verdict per recipient account. A
// failure of the statistics database is logged and the message delivered
// without a verdict: a junk filter that cannot judge must not hold mail up.
func (f *Filter) Check(ctx context.Context, m *delivery.Message) (delivery.Decision, error) {
	h := m.Header().Header
	if !f.classifies(m.Envelope, h) {
		return delivery.Decision{}, nil
	}
	if added := m.Added(); len(added) > 0 {
		// The fields earlier filters add (our Authentication-Results)
		// count as the message's.
		h = h.Copy()
		for i := len(added) - 1; i >= 0; i-- {
			h.Add(added[i].Name, strings.ReplaceAll(added[i].Value, "\r\n", ""))
		}
	}
	return f.check(ctx, m.Envelope.ID, m.Recipients, h, m.Body())
}

// check classifies a message for each recipient account. Reading the
// message into features is most of the filter's cost, so it is done only
// when some recipient's model is trained enough to give a verdict: an
// untrained account's copy gets its "untrained" field from the counts
// alone, as before, without the message being read.
func (f *Filter) check(ctx context.Context, id string, rcpts []delivery.Recipient, h textproto.Header, body *io.SectionReader) (delivery.Decision, error) {
	from := fromAddress(h)
	d := delivery.Decision{Rcpt: make(map[string]delivery.Verdict, len(rcpts))}
	var feats *Features
	for _, r := range rcpts {
		var res Result
		st, _, err := f.opts.DB.counts(ctx, r.Account, nil, f.opts.MinSpam, f.opts.MinHam)
		switch {
		case err != nil:
		case st.Spam < f.opts.MinSpam || st.Ham < f.opts.MinHam:
			res = Result{Threshold: f.opts.Threshold, Spam: st.Spam, Ham: st.Ham, Score: 0.5, Verdict: VerdictUntrained}
		default:
			if feats == nil {
				var terr error
				feats, terr = f.tok.Tokenize(h, body, body.Size())
				defer feats.release()
				if terr != nil {
					return delivery.Decision{}, fmt.Errorf("junk: reading the message: %w", terr)
				}
			}
			res, err = f.classify(ctx, r.Account, feats.Hashes(), from, h)
		}
		if err != nil {
			f.log.Error("junk filter: no verdict", "rcpt", r.Account, "msgid", id, "err", err)
			continue
		}
		v := delivery.Verdict{Headers: []delivery.Field{{Name: HeaderName, Value: res.Header()}}}
		if res.Junk() {
			// By name: every account has it (mailstore.DefaultMailboxes);
			// one renamed away means INBOX (the pipeline's rule).
			v.Mailbox = "Junk"
			v.Flags = []string{JunkKeyword}
		}
		f.log.Debug("junk filter", "rcpt", r.Account, "msgid", id, "verdict", res.Verdict, "score", res.Score)
		d.Rcpt[r.Account] = v
	}
	return d, nil
}

// classify scores a message for one account.
func (f *Filter) classify(ctx context.Context, account string, hashes []uint64, from string, h textproto.Header) (Result, error) {
	st, counts, err := f.opts.DB.counts(ctx, account, hashes, f.opts.MinSpam, f.opts.MinHam)
	if err != nil {
		return Result{}, err
	}
	res := Result{Threshold: f.opts.Threshold, Spam: st.Spam, Ham: st.Ham, Score: 0.5}
	if st.Spam < f.opts.MinSpam || st.Ham < f.opts.MinHam {
		res.Verdict = VerdictUntrained
		return res, nil
	}
	res.Score, _ = Score(counts, st.Spam, st.Ham)
	res.Verdict = VerdictNo
	if res.Score < f.opts.Threshold {
		return res, nil
	}
	// Junk by its words: a correspondent who passed authentication is
	// trusted all the same.
	if from != "" && authenticated(h, f.opts.Hostname) {
		ok, err := f.opts.DB.IsCorrespondent(ctx, account, from)
		if err != nil {
			return Result{}, err
		}
		if ok {
			res.Trusted = true
			return res, nil
		}
	}
	res.Verdict = VerdictYes
	return res, nil
}

// classifies says which messages get a verdict, by where they came from:
//   - port 25 (SourceSMTP): all;
//   - submission (587, 465): none, they are our own users' mail;
//   - the queue's local transport (SourceQueue): a retry or a redirect of
//     mail that came in on port 25, known by our Received field on top
//     with an unauthenticated protocol (RFC 3848: ESMTP, ESMTPS, not
//     ESMTPA/ESMTPSA); not the queue's own reports (DSNs carry no
//     Received of ours) nor our users' mail retried.
func (f *Filter) classifies(env delivery.Envelope, h textproto.Header) bool {
	switch env.Source {
	case delivery.SourceSMTP:
		return true
	case delivery.SourceQueue:
		return receivedFromOutside(h, f.opts.Hostname)
	}
	return false
}

// receivedFromOutside reports whether the topmost Received field is
// smtpd's for an unauthenticated transaction.
func receivedFromOutside(h textproto.Header, hostname string) bool {
	v := h.Get("Received")
	if v == "" || hostname == "" {
		return false
	}
	_, after, ok := strings.Cut(v, "by "+hostname+" (Posthouse) with ")
	if !ok {
		return false
	}
	proto, _, _ := strings.Cut(after, " ")
	return proto != "" && !strings.HasSuffix(proto, "A")
}

// fromAddress is the first From: address, lower-cased, or "".
func fromAddress(h textproto.Header) string {
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	l, err := mh.AddressList("From")
	if err != nil || len(l) == 0 {
		return ""
	}
	return strings.ToLower(l[0].Address)
}

// authenticated reports whether a message may be believed about its From:
// as our Authentication-Results say. Without any of ours (no checks were
// made), yes. With a DMARC result, if it passed; else if DKIM or SPF did.
func authenticated(h textproto.Header, hostname string) bool {
	fields := h.FieldsByKey("Authentication-Results")
	seen := false
	var dmarc, pass bool
	dmarcSeen := false
	for fields.Next() {
		id, results, err := authres.Parse(limitString(fields.Value(), 4*maxHeaderValue))
		if err != nil || !strings.EqualFold(id, hostname) {
			continue
		}
		seen = true
		for _, r := range results {
			switch r := r.(type) {
			case *authres.DMARCResult:
				dmarcSeen = true
				dmarc = r.Value == authres.ResultPass
			case *authres.DKIMResult:
				pass = pass || r.Value == authres.ResultPass
			case *authres.SPFResult:
				pass = pass || r.Value == authres.ResultPass
			}
		}
	}
	switch {
	case !seen:
		return true
	case dmarcSeen:
		return dmarc
	}
	return pass
}
