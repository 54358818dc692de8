package imapd

import (
	"errors"
	"log/slog"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/diskspace"
	"github.com/posthouse/posthouse/mailstore"
)

// Recurring replies.
var (
	errReadOnly    = no(imap.ResponseCodeCannot, "Mailbox is read-only (selected with EXAMINE)")
	errThrottled   = no(imap.ResponseCodeUnavailable, "Too many failed attempts, try again later")
	errUnavailable = no(imap.ResponseCodeUnavailable, "Temporary server failure, try again later")
	errBadName     = no(imap.ResponseCodeCannot, "Invalid mailbox name")
	errNoMechanism = no(imap.ResponseCodeCannot, "Unsupported authentication mechanism")
	errBadSeqSet   = bad(imap.ResponseCodeClientBug, "Invalid messageset: sequence number beyond the last message")
	// Below the disk reserve (package diskspace), or a write that found
	// no space: new messages wait, the rest of the mailbox works.
	errNoSpace = no(imap.ResponseCodeOverQuota, "Server storage is low: no new messages can be stored now; reading, deleting and moving still work")
)

func no(code imap.ResponseCode, text string) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
}

// bad answers a client's syntax or state mistake; every other refusal is no.
func bad(code imap.ResponseCode, text string) *imap.Error {
	return &imap.Error{Type: imap.StatusResponseTypeBad, Code: code, Text: text}
}

// errKind says how a missing mailbox is reported: as the target of COPY,
// MOVE or APPEND the client should create it ([TRYCREATE], RFC 9051 §6.3.12),
// anywhere else it just does not exist ([NONEXISTENT], RFC 5530).
type errKind int

const (
	errSource errKind = iota
	errDest
)

// mapError is the one place where store and auth errors become IMAP
// responses. Anything unexpected is logged with the connection's logger and
// reported as a temporary failure: internal text never reaches the wire.
func mapError(log *slog.Logger, op string, err error, kind errKind) error {
	if err == nil {
		return nil
	}
	var imapErr *imap.Error
	switch {
	case errors.As(err, &imapErr):
		return imapErr
	case errors.Is(err, mailstore.ErrNoSuchMailbox):
		if kind == errDest {
			return no(imap.ResponseCodeTryCreate, "No such mailbox")
		}
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, mailstore.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, mailstore.ErrBadMailboxName):
		return errBadName
	case errors.Is(err, mailstore.ErrNotAllowed):
		return no(imap.ResponseCodeCannot, "Operation not allowed on this mailbox")
	case errors.Is(err, mailstore.ErrHasChildren):
		return no(imap.ResponseCodeHasChildren, "Mailbox has children; delete them first")
	case errors.Is(err, mailstore.ErrNoSuchMessage):
		return no(imap.ResponseCodeNonExistent, "No such message")
	case errors.Is(err, mailstore.ErrOverQuota):
		return no(imap.ResponseCodeOverQuota, "Quota exceeded")
	case diskspace.IsNoSpace(err):
		log.Error("imap command failed: disk full", "op", op, "err", err)
		return errNoSpace
	case errors.Is(err, mailstore.ErrInUse):
		return no(imap.ResponseCodeInUse, "Mailbox is in use, try again later")
	case errors.Is(err, auth.ErrThrottled):
		return errThrottled
	case errors.Is(err, auth.ErrBadCredentials):
		return no(imap.ResponseCodeAuthenticationFailed, "Authentication failed")
	}
	log.Error("imap command failed", "op", op, "err", err)
	return errUnavailable
}
