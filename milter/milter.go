package milter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gomilter "github.com/emersion/go-milter"

	"github.com/posthouse/posthouse/delivery"
)

// OnError is what becomes of a message when its milter cannot be asked.
type OnError string

// The on_error actions.
const (
	// OnErrorTempfail refuses the message with 451 4.7.1: the sender
	// retries later. The default: no message skips the filter unnoticed.
	OnErrorTempfail OnError = "tempfail"
	// OnErrorAccept delivers the message as if the milter had accepted it.
	OnErrorAccept OnError = "accept"
)

// DefaultTimeout bounds one message's whole conversation with a milter.
// rspamd's own task timeout is 8 s; a milter that takes longer is treated
// as failed, and the SMTP client (which waits up to 10 minutes for the
// reply to DATA, RFC 5321 §4.5.3.2.6) is answered in time.
const DefaultTimeout = 30 * time.Second

// Junk is where a quarantined message goes, flagged JunkFlag.
const (
	Junk     = "Junk"
	JunkFlag = "$Junk"
)

// Options configure a Filter.
type Options struct {
	// Address is the milter's address: "inet:host:port" or "unix:/path".
	Address string
	// Timeout bounds the whole conversation for one message, from dialing
	// to the final reply. 0: DefaultTimeout.
	Timeout time.Duration
	// OnError applies when the milter is unreachable, times out or breaks
	// the protocol. "": OnErrorTempfail.
	OnError OnError
	// Submission also sends mail from the submission ports (587, 465) to
	// the milter, as Postfix does with the same smtpd_milters. Off by
	// default: mail from our own users is not spam-checked.
	Submission bool
	// Hostname is our host name, the j macro (rspamd's MTA name).
	Hostname string
	// Resolver finds the client's host name (PTR, confirmed forward),
	// which milters get as the connection's host name as they do from
	// Postfix; rspamd scores a client without one (RDNS_NONE,
	// HFILTER_HOSTNAME_UNKNOWN). nil: every client is "unknown".
	Resolver Resolver
	Logger   *slog.Logger
}

// Resolver is the part of *dns.Resolver the filter uses.
type Resolver interface {
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// maxPTRNames bounds the PTR names tried for a forward confirmation.
const maxPTRNames = 5

// clientName is the client's host name when its PTR record names a host
// with the client's address (forward-confirmed, RFC 8601 §3 iprev's
// rule), else "unknown", as Postfix tells milters.
func (f *Filter) clientName(ctx context.Context, ip netip.Addr) string {
	if f.opts.Resolver == nil || !ip.IsValid() {
		return "unknown"
	}
	ip = ip.Unmap()
	names, err := f.opts.Resolver.LookupPTR(ctx, ip)
	if err != nil {
		return "unknown"
	}
	for _, name := range names[:min(len(names), maxPTRNames)] {
		addrs, err := f.opts.Resolver.LookupIP(ctx, name)
		if err == nil && slices.ContainsFunc(addrs, func(a netip.Addr) bool { return a.Unmap() == ip }) {
			return strings.TrimSuffix(name, ".")
		}
	}
	return "unknown"
}

// Filter asks one milter about each message; it implements
// delivery.Filter. It keeps no connection between messages and is safe
// for concurrent use.
type Filter struct {
	opts             Options
	network, address string
	log              *slog.Logger
	bodyOnce         sync.Once   // replacing the body is logged once
	legacy           atomic.Bool // the milter speaks protocol version 2 to 5
}

// New checks opts and builds a Filter. It does not connect: a milter that
// is down at start is the on_error action's case, like one that goes down
// later.
func New(opts Options) (*Filter, error) {
	network, address, err := ParseAddress(opts.Address)
	if err != nil {
		return nil, err
	}
	switch opts.OnError {
	case "":
		opts.OnError = OnErrorTempfail
	case OnErrorTempfail, OnErrorAccept:
	default:
		return nil, fmt.Errorf("milter %s: on_error %q: want %q or %q", opts.Address, opts.OnError, OnErrorTempfail, OnErrorAccept)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("milter %s: negative timeout", opts.Address)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Filter{opts: opts, network: network, address: address,
		log: opts.Logger.With("filter", "milter", "milter", opts.Address)}, nil
}

// Name identifies the filter: "milter inet:127.0.0.1:11332".
func (f *Filter) Name() string { return "milter " + f.opts.Address }

// What we offer the milter at negotiation. Actions: the ones a verdict
// can carry out (header fields, quarantine). Body replacement, recipient
// and sender changes are not offered; a milter that sends them anyway is
// ignored for them. Protocol: every step the milter may ask us to skip
// and every reply it may leave out (go-milter honours both), and header
// values with their leading space. Not SMFIP_SKIP: go-milter v0.5.0's
// client takes an SMFIR_SKIP answer for a protocol error.
const (
	offerActions  = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptQuarantine
	offerProtocol = gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom |
		gomilter.OptNoRcptTo | gomilter.OptNoBody | gomilter.OptNoHeaders | gomilter.OptNoEOH |
		gomilter.OptNoUnknown | gomilter.OptNoData |
		gomilter.OptNoHeaderReply | gomilter.OptNoConnReply | gomilter.OptNoHeloReply |
		gomilter.OptNoMailReply | gomilter.OptNoRcptReply | gomilter.OptNoDataReply |
		gomilter.OptNoUnknownReply | gomilter.OptNoEOHReply | gomilter.OptNoBodyReply |
		gomilter.OptHeaderLeadingSpace
	// legacyProtocol is what protocol versions 2 to 5 know of.
	legacyProtocol = 0x7f
)

// Limits on what one milter may add to or change in a message; beyond
// them its fields are dropped (and logged), so a runaway milter cannot
// fail delivery (the pipeline refuses more than 16 KiB of added fields in
// all).
const (
	maxAddFields = 50
	maxAddBytes  = 8 << 10
	// maxChangeFields bounds the fields one milter changes or deletes
	// (the pipeline refuses more than 100 removals per copy in all).
	maxChangeFields = 50
)

// Check runs one conversation with the milter. It never returns an error
// for the milter's failures: those are the on_error action. It returns
// one only when ctx ends first (the session is going away).
func (f *Filter) Check(ctx context.Context, m *delivery.Message) (delivery.Decision, error) {
	if !f.applies(m.Envelope.Source) {
		return delivery.Decision{}, nil
	}
	start := time.Now()
	log := f.log.With("msgid", m.Envelope.ID)
	cctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	res, err := f.converse(cctx, m, log)
	if err != nil {
		if ctx.Err() != nil {
			return delivery.Decision{}, fmt.Errorf("milter %s: %w", f.opts.Address, ctx.Err())
		}
		if cctx.Err() != nil {
			err = fmt.Errorf("no answer within %s: %w", f.opts.Timeout, err)
		}
		log.Error("milter failed", "on_error", string(f.opts.OnError), "dur", time.Since(start), "err", err)
		if f.opts.OnError == OnErrorAccept {
			return delivery.Decision{}, nil
		}
		return delivery.Decision{All: delivery.Verdict{Action: delivery.Reject, Reply: replyFailed}}, nil
	}
	d := res.decision(m, f, log)
	log.Info("milter verdict", "action", res.describe(), "dur", time.Since(start))
	return d, nil
}

// applies reports whether the message's source is one this filter checks:
// port 25 always, the submission ports when configured, never the queue
// (a local retry: the milter saw the message when it arrived).
func (f *Filter) applies(s delivery.Source) bool {
	switch s {
	case delivery.SourceSMTP:
		return true
	case delivery.SourceSubmission, delivery.SourceSubmissions:
		return f.opts.Submission
	}
	return false
}

// result is what one conversation came to.
type result struct {
	// action is the milter's last word: accept, continue, reject,
	// tempfail, discard or a reply code.
	action gomilter.ActionCode
	reply  delivery.Reply // for reject, tempfail and reply codes
	// refused holds the envelope recipients the milter refused at RCPT,
	// with their replies.
	refused map[string]delivery.Reply
	mods    []gomilter.ModifyAction
	stage   string // where the conversation ended
}

// converse dials the milter and walks it through the message: connect,
// HELO, MAIL, RCPT, header, body, end of message, stopping at the first
// answer that ends it.
func (f *Filter) converse(ctx context.Context, m *delivery.Message, log *slog.Logger) (*result, error) {
	// The client's name first: the milter's clock starts at connect.
	host := cString(f.clientName(ctx, m.Envelope.Client.IP))
	s, err := f.session(ctx, f.legacy.Load())
	if errors.Is(err, gomilter.ErrUnsupportedMilterVersion) && !f.legacy.Load() {
		// A milter of protocol version 2 to 5: go-milter speaks to it
		// only when offered nothing of version 6.
		f.legacy.Store(true)
		s, err = f.session(ctx, true)
	}
	if err != nil {
		return nil, err
	}
	defer s.Close()

	res := &result{action: gomilter.ActContinue}
	env := &m.Envelope
	ip := env.Client.IP

	// Connect. Macros go before the step they belong to.
	connMacros := []string{"j", f.opts.Hostname, "{daemon_name}", string(env.Source), "v", "Posthouse"}
	family := gomilter.FamilyUnknown
	if ip.IsValid() {
		family = gomilter.FamilyInet
		if ip.Is6() && !ip.Is4In6() {
			family = gomilter.FamilyInet6
		}
		connMacros = append(connMacros, "{client_addr}", ip.Unmap().String(), "{client_name}", host)
	}
	if err := s.Macros(gomilter.CodeConn, connMacros...); err != nil {
		return nil, err
	}
	addr := ""
	if ip.IsValid() {
		addr = ip.Unmap().String()
	}
	act, err := s.Conn(host, family, 0, addr)
	if done, err := res.step("connect", act, err); done || err != nil {
		return res, err
	}

	if env.Client.Helo != "" {
		var heloMacros []string
		if env.Client.TLSVersion != 0 {
			heloMacros = append(heloMacros, "{tls_version}", tls.VersionName(env.Client.TLSVersion),
				"{cipher}", tls.CipherSuiteName(env.Client.TLSCipher))
		}
		if len(heloMacros) > 0 {
			if err := s.Macros(gomilter.CodeHelo, heloMacros...); err != nil {
				return nil, err
			}
		}
		act, err := s.Helo(cString(env.Client.Helo))
		if done, err := res.step("helo", act, err); done || err != nil {
			return res, err
		}
	}

	mailMacros := []string{"i", cString(env.ID), "{mail_addr}", cString(env.From)}
	if env.Client.User != "" {
		mailMacros = append(mailMacros, "{auth_authen}", cString(env.Client.User))
	}
	if err := s.Macros(gomilter.CodeMail, mailMacros...); err != nil {
		return nil, err
	}
	var mailArgs []string
	if env.UTF8 {
		mailArgs = append(mailArgs, "SMTPUTF8")
	}
	act, err = s.Mail(cString(env.From), mailArgs)
	if done, err := res.step("mail", act, err); done || err != nil {
		return res, err
	}

	// Every envelope recipient once, in order; a refusal is per recipient.
	var rcpts []string
	for _, r := range m.Recipients {
		for _, a := range r.Addresses {
			if !slices.Contains(rcpts, a) {
				rcpts = append(rcpts, a)
			}
		}
	}
	for _, a := range rcpts {
		if err := s.Macros(gomilter.CodeRcpt, "{rcpt_addr}", cString(a)); err != nil {
			return nil, err
		}
		act, err := s.Rcpt(cString(a), nil)
		if err != nil {
			return nil, err
		}
		switch act.Code {
		case gomilter.ActReject, gomilter.ActTempFail, gomilter.ActReplyCode:
			r, err := actionReply(act)
			if err != nil {
				return nil, err
			}
			if res.refused == nil {
				res.refused = map[string]delivery.Reply{}
			}
			res.refused[a] = r
			log.Debug("milter refused a recipient", "rcpt", a, "code", r.Code)
			continue
		}
		if done, err := res.step("rcpt", act, err); done || err != nil {
			return res, err
		}
	}
	if len(res.refused) == len(rcpts) {
		res.stage = "rcpt"
		return res, nil
	}

	// Header and body, from the spool, streamed.
	wantHeader := !s.ProtocolOption(gomilter.OptNoHeaders)
	wantBody := !s.ProtocolOption(gomilter.OptNoBody)
	var bodyAt int64
	if wantHeader || wantBody {
		var stopped *gomilter.Action
		// The fields earlier filters added (our Authentication-Results)
		// go on top of the stored message: the milter sees them there.
		var added strings.Builder
		for _, fld := range m.Added() {
			added.WriteString(fld.Name + ": " + fld.Value + "\r\n")
		}
		head := io.MultiReader(strings.NewReader(added.String()), m.Body())
		bodyAt, err = scanHeader(head, s.ProtocolOption(gomilter.OptHeaderLeadingSpace), func(name, value string) error {
			if !wantHeader {
				return nil
			}
			act, err := s.HeaderField(name, value)
			if err != nil {
				return err
			}
			if act.Code != gomilter.ActContinue {
				stopped, wantHeader = act, false
				return errStop
			}
			return nil
		})
		bodyAt = max(bodyAt-int64(added.Len()), 0)
		if errors.Is(err, errStop) {
			err = nil
		}
		if stopped != nil || err != nil {
			if done, err := res.step("header", stopped, err); done || err != nil {
				return res, err
			}
		}
	}
	act, err = s.HeaderEnd()
	if done, err := res.step("eoh", act, err); done || err != nil {
		return res, err
	}
	if wantBody {
		act, err := f.sendBody(s, io.NewSectionReader(m.Body(), bodyAt, m.Size()-bodyAt))
		if done, err := res.step("body", act, err); done || err != nil {
			return res, err
		}
	}
	if err := s.Macros(gomilter.CodeEOB, "i", cString(env.ID)); err != nil {
		return nil, err
	}
	mods, act, err := s.End()
	if err != nil {
		return nil, err
	}
	if _, err := res.step("end", act, nil); err != nil {
		return nil, err
	}
	if res.action == gomilter.ActContinue || res.action == gomilter.ActAccept {
		res.mods = mods
	}
	return res, nil
}

// session dials the milter and negotiates. The connection's deadlines
// stay within ctx's, and it is cut when ctx ends.
func (f *Filter) session(ctx context.Context, legacy bool) (*gomilter.ClientSession, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, f.network, f.address)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	conn := &boundedConn{Conn: raw, limit: deadline}
	context.AfterFunc(ctx, conn.expire)
	actions, protocol := offerActions, offerProtocol
	if legacy {
		protocol &= legacyProtocol
	}
	client := gomilter.NewClientWithOptions(f.network, f.address, gomilter.ClientOptions{
		Dialer:       oneConn{conn},
		ReadTimeout:  f.opts.Timeout,
		WriteTimeout: f.opts.Timeout,
		ActionMask:   actions,
		ProtocolMask: protocol,
	})
	s, err := client.Session()
	if err != nil {
		raw.Close()
		return nil, err
	}
	// A milter may only choose among what was offered (milter protocol
	// v6 negotiation); go-milter takes its answer as it comes.
	s.ProtocolOpts &= protocol
	s.ActionOpts &= actions
	return s, nil
}

// chunkPool holds body chunk buffers (64 KiB each), so that a busy
// server does not allocate one per message.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, gomilter.MaxBodyChunk); return &b }}

// errStop ends the header scan when the milter has answered.
var errStop = errors.New("milter answered")

// sendBody streams the body in chunks of up to gomilter.MaxBodyChunk and
// returns the milter's first answer other than continue, or continue.
func (f *Filter) sendBody(s *gomilter.ClientSession, r io.Reader) (*gomilter.Action, error) {
	bp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bp)
	buf := *bp
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			act, err := s.BodyChunk(buf[:n])
			if err != nil {
				return nil, err
			}
			if act.Code != gomilter.ActContinue {
				return act, nil
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return &gomilter.Action{Code: gomilter.ActContinue}, nil
		case err != nil:
			return nil, fmt.Errorf("reading the spooled message: %w", err)
		}
	}
}

// step records the milter's answer to one step and reports whether the
// conversation is over: anything but continue ends it.
func (res *result) step(stage string, act *gomilter.Action, err error) (done bool, _ error) {
	if err != nil {
		return true, err
	}
	res.stage = stage
	switch act.Code {
	case gomilter.ActContinue:
		res.action = act.Code
		return false, nil
	case gomilter.ActAccept, gomilter.ActDiscard:
		res.action = act.Code
		return true, nil
	case gomilter.ActReject, gomilter.ActTempFail, gomilter.ActReplyCode:
		r, err := actionReply(act)
		if err != nil {
			return true, err
		}
		res.action, res.reply = act.Code, r
		return true, nil
	}
	return true, fmt.Errorf("milter answered %q at %s", rune(act.Code), stage)
}

// actionReply is the reply for a refusing action.
func actionReply(act *gomilter.Action) (delivery.Reply, error) {
	switch act.Code {
	case gomilter.ActReject:
		return replyReject, nil
	case gomilter.ActTempFail:
		return replyTempfail, nil
	}
	return parseReply(act.SMTPCode, act.SMTPText)
}

// decision turns the conversation's result into a verdict for every
// recipient, and refusals for the accounts all of whose addresses the
// milter refused at RCPT.
func (res *result) decision(m *delivery.Message, f *Filter, log *slog.Logger) delivery.Decision {
	var d delivery.Decision
	switch res.action {
	case gomilter.ActReject, gomilter.ActTempFail, gomilter.ActReplyCode:
		d.All = delivery.Verdict{Action: delivery.Reject, Reply: res.reply}
		return d
	case gomilter.ActDiscard:
		d.All = delivery.Verdict{Action: delivery.Discard}
		return d
	}
	for _, r := range m.Recipients {
		var first *delivery.Reply
		all := true
		for _, a := range r.Addresses {
			rep, ok := res.refused[a]
			if !ok {
				all = false
				break
			}
			if first == nil {
				first = &rep
			}
		}
		if all && first != nil {
			if d.Rcpt == nil {
				d.Rcpt = map[string]delivery.Verdict{}
			}
			d.Rcpt[r.Account] = delivery.Verdict{Action: delivery.Reject, Reply: *first}
		}
	}
	d.All = f.modifications(res.mods, log)
	return d
}

// modifications carries out what the milter asked at the end of the
// message, as far as a verdict can: quarantine files into Junk with
// $Junk; added and inserted fields are prepended (their position is not
// kept); a changed field is removed (its index counts over the header the
// milter was sent, as delivery.FieldRef does; 0 means 1, as in libmilter)
// and, unless the new value is empty (a deletion), added with its new
// value on top. Body, sender and recipient changes are not applied
// (logged).
func (f *Filter) modifications(mods []gomilter.ModifyAction, log *slog.Logger) delivery.Verdict {
	var v delivery.Verdict
	added := 0
	for _, mod := range mods {
		switch mod.Code {
		case gomilter.ActQuarantine:
			v.Mailbox, v.Flags = Junk, []string{JunkFlag}
			log.Info("milter quarantined the message: filed into Junk", "reason", sanitizeText(mod.Reason))
		case gomilter.ActAddHeader, gomilter.ActInsertHeader, gomilter.ActChangeHeader:
			if mod.Code == gomilter.ActChangeHeader {
				if len(mod.HeaderName) > 76 || !validName([]byte(mod.HeaderName)) {
					log.Warn("milter changed a header field with a malformed name; ignored", "field", sanitizeText(mod.HeaderName))
					continue
				}
				if len(v.Remove) >= maxChangeFields {
					log.Warn("milter changed too many header fields; ignored", "field", mod.HeaderName)
					continue
				}
				v.Remove = append(v.Remove, delivery.FieldRef{Name: mod.HeaderName, Index: int(max(mod.HeaderIndex, 1))})
				log.Debug("milter changed a header field", "field", mod.HeaderName, "index", mod.HeaderIndex, "deleted", mod.HeaderValue == "")
				if mod.HeaderValue == "" {
					continue
				}
			}
			fl, ok := field(mod.HeaderName, mod.HeaderValue)
			if !ok {
				log.Warn("milter added a malformed header field; dropped", "field", sanitizeText(mod.HeaderName))
				continue
			}
			n := len(fl.Name) + len(fl.Value) + 4
			if len(v.Headers) >= maxAddFields || added+n > maxAddBytes {
				log.Warn("milter added too many header fields; dropped", "field", fl.Name)
				continue
			}
			added += n
			v.Headers = append(v.Headers, fl)
		case gomilter.ActReplBody:
			f.bodyOnce.Do(func() {
				f.log.Warn("milter replaces message bodies; Posthouse does not support it and keeps the original body")
			})
		default:
			log.Warn("milter asked for a change that was not offered; ignored", "code", string(rune(mod.Code)))
		}
	}
	return v
}

// field makes a header field from a milter's name and value: folds ("\n"
// or "\r\n" followed by white space, or a bare line break, which becomes
// a fold) are CRLF then the white space; leading white space and empty
// lines go. It reports false for a name that is no field name, a value
// with NUL, or a line over 998 octets (RFC 5322 §2.1.1).
func field(name, value string) (delivery.Field, bool) {
	if len(name) > 76 || !validName([]byte(name)) || strings.IndexByte(value, 0) >= 0 {
		return delivery.Field{}, false
	}
	var b strings.Builder
	lineLen := len(name) + 2
	for i, line := range strings.FieldsFunc(value, func(c rune) bool { return c == '\r' || c == '\n' }) {
		if i == 0 {
			line = strings.TrimLeft(line, " \t")
		} else {
			if strings.TrimSpace(line) == "" {
				continue
			}
			b.WriteString("\r\n")
			lineLen = 0
			if line[0] != ' ' && line[0] != '\t' {
				b.WriteByte('\t')
				lineLen = 1
			}
		}
		lineLen += len(line)
		if lineLen > 998 {
			return delivery.Field{}, false
		}
		b.WriteString(line)
	}
	return delivery.Field{Name: name, Value: b.String()}, true
}

// describe names the outcome for the log.
func (res *result) describe() string {
	s := "accept"
	switch res.action {
	case gomilter.ActReject, gomilter.ActTempFail, gomilter.ActReplyCode:
		s = fmt.Sprintf("refuse %d", res.reply.Code)
	case gomilter.ActDiscard:
		s = "discard"
	}
	if len(res.refused) > 0 {
		s += fmt.Sprintf(", %d recipients refused", len(res.refused))
	}
	return s + " at " + res.stage
}

// cString makes s safe as a milter protocol string, which ends at NUL.
func cString(s string) string {
	return strings.ReplaceAll(s, "\x00", " ")
}
