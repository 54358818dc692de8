package dkim

import (
	"context"
	"errors"
	"io"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

const (
	// MaxVerifications bounds the signatures checked per message, and so
	// the DNS queries one message can make us send.
	MaxVerifications = 5
	// VerifyTimeout bounds all of a message's verification.
	VerifyTimeout = 15 * time.Second
)

// Result is one signature's outcome as RFC 8601 §2.7.1 names it.
type Result string

// The results Verify gives.
const (
	Pass      Result = "pass"
	Fail      Result = "fail"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Verification is the outcome of one DKIM-Signature field (RFC 6376 §6).
type Verification struct {
	Domain     string // the signature's d=, "" when unreadable
	Identifier string // its i=
	Result     Result
	Err        error // why it did not pass; nil for Pass
}

// LookupTXT resolves the TXT records of a name, for key records
// (<selector>._domainkey.<domain>).
type LookupTXT func(ctx context.Context, name string) ([]string, error)

// ErrHeader: the message could not be read, so no signature could be
// checked (RFC 8601 permerror for the message).
var ErrHeader = errors.New("dkim: unreadable message header")

// Verify checks the DKIM signatures of the message r, at most
// MaxVerifications of them (the rest are ignored) and within VerifyTimeout,
// looking up keys with lookup. A message without signatures gives none.
func Verify(ctx context.Context, r io.Reader, lookup LookupTXT) ([]Verification, error) {
	ctx, cancel := context.WithTimeout(ctx, VerifyTimeout)
	defer cancel()
	verifs, err := msgdkim.VerifyWithOptions(r, &msgdkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			txts, err := lookup(ctx, name)
			return txts, temporary(err)
		},
		MaxVerifications: MaxVerifications,
	})
	if err != nil && !errors.Is(err, msgdkim.ErrTooManySignatures) {
		err = errors.Join(ErrHeader, err)
	} else {
		err = nil
	}
	out := make([]Verification, len(verifs))
	for i, v := range verifs {
		out[i] = Verification{Domain: v.Domain, Identifier: v.Identifier, Result: result(v.Err), Err: v.Err}
	}
	return out, err
}

// result maps a verification error to its RFC 8601 §2.7.1 result.
func result(err error) Result {
	switch {
	case err == nil:
		return Pass
	case msgdkim.IsTempFail(err):
		return TempError
	case msgdkim.IsPermFail(err):
		return PermError
	default:
		return Fail
	}
}

// temporary gives a lookup error that says it is temporary (a Temporary()
// method, as the dns package's errors have; or a timeout) the net.Error
// shape go-msgauth looks for, so a resolver failure is temperror (RFC 6376
// §6.1.2: try again later), not permerror.
func temporary(err error) error {
	var t interface{ Temporary() bool }
	if err == nil || !(errors.As(err, &t) && t.Temporary() || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	return tempError{err}
}

// tempError is a temporary lookup failure as a net.Error.
type tempError struct{ error }

func (tempError) Timeout() bool   { return false }
func (tempError) Temporary() bool { return true }
func (e tempError) Unwrap() error { return e.error }
