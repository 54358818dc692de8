package smtpd

import (
	"context"
	"errors"
	"io"
	"net"
	"os"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/diskspace"
	"github.com/posthouse/posthouse/mailstore"
)

// Named replies. Every reply carries an enhanced status code (RFC 2034,
// RFC 3463); 5xx only where retrying cannot help.
var (
	// RFC 4954 §6 / RFC 6409 §4.3: submission needs AUTH before MAIL.
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	// RFC 3207 §4: submission before STARTTLS.
	errStartTLSFirst = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	// RFC 4954 §6: AUTH before STARTTLS on submission.
	errEncryptionRequired = &smtp.SMTPError{Code: 538, EnhancedCode: smtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism, use STARTTLS first"}
	errAuthNotAvailable   = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "AUTH not available on this port, use submission (587 or 465)"}
	errAuthUnknownMech    = &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unrecognized authentication mechanism"}
	errAuthFailed         = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	errAuthThrottled      = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentication attempts, try again later"}
	errAuthTemporary      = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure, try again later"}
	errTooManyBadRcpts    = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many invalid recipients, closing connection"}
	errAuthTooManyFails   = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentication attempts, closing connection"}

	errRelayDenied      = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	errNoSuchUser       = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errMailboxFull      = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full, try again later"}
	errMessageOverQuota = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 2, 2}, Message: "Message larger than the recipient's whole quota"}
	errTooBig           = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed maximum message size"}
	errSenderNotOwned   = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address not owned by authenticated user"}
	errBadSender        = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax"}
	errBadRecipient     = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax"}
	// RFC 6531 §3.7.4.1: a non-ASCII address without SMTPUTF8.
	errNeedSMTPUTF8 = &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII address requires SMTPUTF8"}

	// RFC 5321 §2.3.8: lines end with CRLF. A bare CR or LF is refused
	// rather than guessed at: see the package doc.
	errBareLineEnding = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message refused: bare CR or LF in message, lines must end with CRLF"}
	errNULInMessage   = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message refused: NUL octet in message"}
	// RFC 5321 §4.5.3.1.6: text lines are at most 1000 octets with CRLF.
	errLineTooLong = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message refused: line too long"}
	errDataTimeout = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout while reading message, try again"}

	errNeedMail     = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Need MAIL before RCPT"}
	errNeedRcpt     = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Need RCPT before DATA"}
	errNestedMail   = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Nested MAIL command, use RSET first"}
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	// RFC 5321 §4.3.2: commands out of sequence are 503. Those go-smtp
	// answers itself are translated by our edge (conn.go).
	errHeloFirst  = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Send EHLO or HELO first"}
	errInTransfer = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Command not allowed during message transfer"}
	// RFC 3207 §4.2: after STARTTLS the client starts over with EHLO.
	errHeloAfterTLS = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Send EHLO again after STARTTLS"}
	// RFC 4954 §4: an AUTH response that is not base64 is 501 5.5.2.
	errBadBase64  = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Cannot decode base64 response"}
	errAuthSyntax = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Syntax: AUTH mechanism [initial-response]"}
	// RFC 5321 §4.2.3: 555 for MAIL FROM and RCPT TO parameters we do not
	// know.
	errUnknownMailParam = &smtp.SMTPError{Code: 555, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "MAIL FROM parameter not recognized or not implemented"}
	errUnknownRcptParam = &smtp.SMTPError{Code: 555, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "RCPT TO parameter not recognized or not implemented"}
	errBadAuthParam     = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Malformed AUTH parameter"}
	// RFC 3463 §3.6: an over-long command line is a syntax error; the
	// connection closes because the rest of the line cannot be skipped
	// reliably.
	errCommandTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Line too long, closing connection"}
	errDataRead       = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Error while reading message data, closing connection"}

	// STARTTLS (RFC 3207), run by our edge.
	errNoTLS            = &smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "STARTTLS not available"}
	errTLSActive        = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "TLS already active"}
	errStartTLSSyntax   = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Syntax: STARTTLS takes no parameters"}
	errTLSInTransaction = &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "STARTTLS not allowed in a mail transaction, use RSET first"}

	// Session caps: RFC 5321 §3.8 lets the server close with 421.
	errTooManyJunk    = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many commands without a mail transaction, closing connection"}
	errTooManyErrors  = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many errors, closing connection"}
	errSessionTooLong = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Session time limit reached, closing connection"}
	errEvicted        = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections from your address, closing an idle one"}
	errLocal          = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error in processing, try again later"}
	// RFC 3463 §3.5 X.3.1 "mail system full": below the disk reserve, or
	// a write that found no space (RFC 5321 §4.2.2: 452 insufficient
	// system storage).
	errNoSpace = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
)

// errBareLF, errBareCR and errNUL are raised by the body filter and
// translated to errBareLineEnding / errNULInMessage.
var (
	errBareLF     = errors.New("smtpd: bare LF in message")
	errBareCR     = errors.New("smtpd: bare CR in message")
	errNUL        = errors.New("smtpd: NUL in message")
	errBodyTooBig = errors.New("smtpd: message too big")
)

// replier is an error that carries the reply the client should get: a
// delivery filter's (*delivery.RejectError) or the gate's.
type replier interface {
	SMTPReply() (code int, enhanced [3]int, text string)
}

// toSMTPError is the one place errors become SMTP replies. It returns a bare
// *smtp.SMTPError (go-smtp matches with a type assertion) and reports whether
// err was an internal failure the caller must log: such errors get the
// generic 451 4.3.0 and their text never goes on the wire.
func toSMTPError(err error) (reply *smtp.SMTPError, internal bool) {
	var se *smtp.SMTPError
	var rp replier
	switch {
	case err == nil:
		return nil, false
	case errors.As(err, &se):
		if se == smtp.ErrDataTooLarge {
			return errTooBig, false
		}
		return se, false
	case errors.As(err, &rp):
		code, e, text := rp.SMTPReply()
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{e[0], e[1], e[2]}, Message: text}, false
	case errors.Is(err, errBodyTooBig):
		return errTooBig, false
	case errors.Is(err, errBareLF), errors.Is(err, errBareCR):
		return errBareLineEnding, false
	case errors.Is(err, errNUL):
		return errNULInMessage, false
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong, false
	case errors.Is(err, auth.ErrNoSuchUser), errors.Is(err, mailstore.ErrNoSuchAccount):
		return errNoSuchUser, false
	case errors.Is(err, auth.ErrNotLocal):
		return errRelayDenied, false
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, sasl.ErrUnexpectedClientResponse):
		return errAuthFailed, false
	case errors.Is(err, auth.ErrThrottled):
		return errAuthThrottled, false
	case errors.Is(err, mailstore.ErrOverQuota):
		return errMailboxFull, false
	case diskspace.IsNoSpace(err):
		// Ours to log: the disk filled past the reserve.
		return errNoSpace, true
	case errors.Is(err, context.DeadlineExceeded):
		// A store or queue call ran out of DeliveryTimeout: ours.
		return errLocal, true
	case errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return errDataTimeout, false
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, smtp.ErrDataReset):
		// The client went away mid-message; nobody reads this reply.
		return errLocal, false
	case errors.Is(err, context.Canceled):
		return errShuttingDown, false
	default:
		return errLocal, true
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
