package imapd

import (
	"strconv"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// OBJECTID (RFC 8474). MAILBOXID is "M", the mailbox's UIDVALIDITY, "-"
// and its mailstore ID: both stay the same across RENAME (RENAME of INBOX
// leaves INBOX its own, and the new mailbox gets new ones), the ID is
// never given to another mailbox of the account, and the UIDVALIDITY part
// keeps an account removed and created again from reusing an old
// MAILBOXID. EMAILID is mailstore's MessageInfo.EmailID (kept by COPY and
// MOVE, never reused). There are no threads: THREADID is NIL (§5.2) and
// SEARCH THREADID matches nothing.

// objectIDCaps are the capabilities OBJECTID adds.
var objectIDCaps = []imap.Cap{imap.CapObjectID}

// mailboxID is mb's MAILBOXID.
func mailboxID(mb mailstore.Mailbox) string {
	return "M" + strconv.FormatUint(uint64(mb.UIDValidity), 10) + "-" + strconv.FormatInt(mb.ID, 10)
}
