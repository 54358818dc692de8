package smtpd

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/srs"
)

// The submission sender rule on the message itself, and the SRS addresses
// bounces come back to. The rule on MAIL FROM is in session.Mail; both
// ask Directory.CanSendAs, so there is one rule for the envelope and the
// header.

// Limits on the From and Sender fields we check: more than this is no
// message a person sends, and each address costs a directory lookup.
const (
	maxSenderFieldBytes = 16 << 10
	maxSenderAddresses  = 50
)

var (
	// RFC 5322 §3.6.2: From is required; a field we cannot read cannot be
	// checked, so it is refused rather than passed on.
	errFromMalformed = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Malformed From or Sender header field, cannot check the sender"}
	errHeaderUnread  = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message header too large or malformed, cannot check the sender"}
	// An SRS address of ours that does not check out (forged, expired).
	errBadSRS = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Invalid or expired SRS address"}
	// SRS addresses take bounces only (RFC 3464, RFC 3834 replies use the
	// null sender too): anything else would make them a relay.
	errSRSNotBounce = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "SRS address accepts only bounces (null sender)"}
)

// errFromNotOwned names the address, so the user sees which one is wrong.
func errFromNotOwned(field, addr, user string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
		Message: fmt.Sprintf("%s address <%s> not owned by authenticated user %s", field, sanitizeLogValue(addr, 254), user)}
}

// SRS reverses the SRS addresses our queue makes as the envelope sender of
// forwarded mail (package srs; cmd/posthouse passes *srs.Rewriter).
type SRS interface {
	// Reverse returns the address an SRS address of ours stands for;
	// srs.ErrNotSRS when address is not at our SRS domain, another error
	// when it is but does not check out.
	Reverse(address string) (string, error)
}

// checkHeaderSender applies the submission rule to the message: every
// address in every From field, and in Sender if there is one, must be one
// the authenticated user may send as (Directory.CanSendAs: their own, an
// alias that reaches them, a send-as grant). A Sender the user owns does
// not make a foreign From acceptable: From is what recipients see and what
// DMARC aligns with. A message without From gets one (RFC 5322 §3.6.2
// requires it; RFC 6409 §8 lets the MSA complete a message): the envelope
// sender, which Mail has already checked. It returns that field, or "".
// On port 25 it does nothing.
func (s *session) checkHeaderSender(hdr headerInfo, from string, log *slog.Logger) (string, error) {
	if !s.s.opts.Mode.submission() {
		return "", nil
	}
	user, _ := s.authenticated()
	if !hdr.known {
		log.Warn("message refused: header not readable for the sender check")
		return "", errHeaderUnread
	}
	if len(hdr.from) == 0 {
		log.Info("no From field, adding the envelope sender", "from", from)
		return "From: <" + from + ">\r\n", nil
	}
	for _, f := range []struct {
		name   string
		values []string
	}{{"From", hdr.from}, {"Sender", hdr.sender}} {
		addrs, err := headerAddresses(f.values)
		if err != nil || (f.name == "From" && len(addrs) == 0) {
			log.Warn("message refused: malformed sender field", "field", f.name, "err", err)
			return "", errFromMalformed
		}
		for _, a := range addrs {
			ok, err := s.s.opts.Directory.CanSendAs(s.ctx, user, a)
			if err != nil {
				return "", s.fail("checking header sender", err)
			}
			if !ok {
				log.Warn("message refused: sender not owned", "field", f.name, "addr", sanitizeLogValue(a, 254))
				return "", errFromNotOwned(f.name, a, user)
			}
		}
	}
	return "", nil
}

// headerAddresses parses address lists (go-message's parser, so encoded
// words in display names decode; group syntax gives its members, an empty
// group nothing) and returns the distinct addresses, at most
// maxSenderAddresses of them.
func headerAddresses(values []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		if len(v) > maxSenderFieldBytes {
			return nil, errors.New("field too long")
		}
		list, err := mail.ParseAddressList(v)
		if err != nil {
			return nil, err
		}
		for _, a := range list {
			k := strings.ToLower(a.Address)
			if seen[k] {
				continue
			}
			seen[k] = true
			if out = append(out, a.Address); len(out) > maxSenderAddresses {
				return nil, errors.New("too many addresses")
			}
		}
	}
	return out, nil
}

// resolveRcpt is Directory.Resolve, except for SRS addresses of ours: a
// valid one takes a bounce back to the original sender through the queue;
// an invalid or expired one, or mail other than a bounce, is refused.
func (s *session) resolveRcpt(addr string) (auth.Resolution, error) {
	if r := s.s.opts.SRS; r != nil && srs.IsSRS(addr) {
		orig, err := r.Reverse(addr)
		switch {
		case errors.Is(err, srs.ErrNotSRS):
			// Another domain's SRS address: ordinary resolution.
		case err != nil:
			s.log.Info("invalid SRS address", "rcpt", addr, "err", err)
			return auth.Resolution{}, errBadSRS
		case s.env.from != "":
			s.log.Info("SRS address refused: not a bounce", "rcpt", addr, "from", s.env.from)
			return auth.Resolution{}, errSRSNotBounce
		default:
			s.log.Info("bounce to SRS address, returning to the original sender", "rcpt", addr, "to", orig)
			return auth.Resolution{Remote: []string{orig}}, nil
		}
	}
	return s.s.opts.Directory.Resolve(s.txContext(), addr)
}
