package smtpd

import (
	"errors"

	"github.com/emersion/go-smtp"
)

// Outcome is one accepted message or one refused MAIL, RCPT or DATA, as
// Options.Observe hears of it (cmd feeds package metrics).
type Outcome struct {
	Mode Mode
	// Accepted: a message was accepted (the 250 after its data).
	Accepted bool
	// Stage is "mail", "rcpt" or "data" for a refusal.
	Stage string
	// Reason names a refusal from a fixed list (outcomeReason), never a
	// client's words, so it is safe as a metric label.
	Reason string
	// Temporary: the refusal was a 4xx.
	Temporary bool
}

// observe reports the result of one MAIL, RCPT or DATA to Options.Observe.
// *err is the reply as the session method returns it.
func (s *session) observe(stage string, err *error) {
	f := s.s.opts.Observe
	if f == nil {
		return
	}
	var se *smtp.SMTPError
	switch {
	case *err == nil:
		return // MAIL or RCPT accepted: not an outcome of its own
	case errors.As(*err, &se) && se.Code >= 200 && se.Code < 300:
		f(Outcome{Mode: s.s.opts.Mode, Accepted: true})
		return
	}
	reply, _ := toSMTPError(*err)
	f(Outcome{Mode: s.s.opts.Mode, Stage: stage, Reason: outcomeReason(reply), Temporary: reply.Code < 500})
}

// outcomeReason names a refusal: our named replies by what they mean, and
// the others (the gate's, the delivery filters', header checks') by the
// subject of their enhanced code (RFC 3463 §3).
func outcomeReason(r *smtp.SMTPError) string {
	switch r {
	case errNoSuchUser:
		return "unknown_user"
	case errRelayDenied:
		return "relay_denied"
	case errMailboxFull, errMessageOverQuota:
		return "quota"
	case errTooBig:
		return "too_big"
	case errSenderNotOwned:
		return "sender_not_owned"
	case errBareLineEnding, errNULInMessage, errLineTooLong:
		return "malformed"
	case errAuthRequired, errStartTLSFirst:
		return "auth_required"
	case errBadSender, errBadRecipient, errNeedSMTPUTF8, errUnknownMailParam, errUnknownRcptParam,
		errNeedMail, errNeedRcpt, errNestedMail, errBadAuthParam, errTooManyBadRcpts:
		return "protocol"
	case errLocal, errDataTimeout, errShuttingDown:
		return "temporary"
	}
	switch r.EnhancedCode[1] {
	case 7:
		return "policy"
	case 1:
		return "address"
	case 2:
		return "mailbox"
	case 3:
		return "system"
	case 6:
		return "content"
	}
	return "other"
}
