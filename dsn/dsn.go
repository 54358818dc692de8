package dsn

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/posthouse/posthouse/internal/mailaddr"
	"github.com/posthouse/posthouse/smtpclient"
)

// Report actions (RFC 3464 §2.3.3).
const (
	ActionFailed  = "failed"
	ActionDelayed = "delayed"
)

// Report is one delivery status notification (RFC 3464) about a message.
type Report struct {
	Hostname   string // Reporting-MTA and our From
	QueueID    string
	Sender     string // the original envelope sender, the DSN's recipient
	Arrival    time.Time
	Date       time.Time
	Action     string    // ActionFailed or ActionDelayed
	RetryUntil time.Time // delayed only
	Recipients []Recipient
	Header     []byte // the original message's header (CRLF lines), nil if lost
}

// Recipient is one recipient a report is about.
type Recipient struct {
	Addr        string
	Reply       string // "550 5.1.1 text", as smtpclient.Reply.String writes it
	Remote      string // "" for our own failures (DNS, size, expiry)
	LastAttempt time.Time
	Expired     bool // failed because the message expired (status 4.4.7)
}

// Status returns the RFC 3463 status for a recipient: the remote's
// enhanced code if it gave one, 4.4.7 for an expired message, else the
// reply class with .0.0.
func (r Recipient) Status() string {
	rep := smtpclient.ParseReply(r.Reply)
	code, enh := rep.Code, rep.Enhanced
	switch {
	case r.Expired:
		return "4.4.7"
	case enh != "":
		return enh
	case code >= 500:
		return "5.0.0"
	default:
		return "4.0.0"
	}
}

// oneLine makes reply text safe for a header field: no line breaks, no
// control characters, bounded.
func oneLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSpace(b.String())
	if len(out) > 900 {
		out = out[:900] + "…"
	}
	return out
}

func addrType(addr string) string {
	if mailaddr.IsASCII(addr) {
		return "rfc822; " + addr
	}
	return "utf-8; " + addr // RFC 6533 §3
}

// Build renders the DSN message with CRLF line endings.
func (r *Report) Build() []byte {
	// RFC 6533 §3, §6: an address that is not ASCII needs the global
	// types of the status and header parts.
	statusType, headerType := "message/delivery-status", "text/rfc822-headers"
	global := !mailaddr.IsASCII(r.Sender)
	for _, rc := range r.Recipients {
		if !mailaddr.IsASCII(rc.Addr) {
			global = true
		}
	}
	if global {
		statusType, headerType = "message/global-delivery-status", "message/global-headers"
	}
	h := sha256.New()
	h.Write(r.Header)
	fmt.Fprint(h, r.QueueID, r.Action, r.Date.UnixNano())
	boundary := "posthouse-" + r.QueueID + "-" + hex.EncodeToString(h.Sum(nil))[:16]

	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	// part starts a part of the report: its boundary and header.
	part := func(contentType, description string, more ...string) {
		w("--%s", boundary)
		w("Content-Type: %s", contentType)
		for _, h := range more {
			w("%s", h)
		}
		w("Content-Description: %s", description)
		w("")
	}
	subject := "Undelivered mail returned to sender"
	if r.Action == ActionDelayed {
		subject = "Delayed mail (still being retried)"
	}
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", r.Hostname)
	w("To: <%s>", r.Sender)
	w("Subject: %s", subject)
	w("Date: %s", r.Date.Format(time.RFC1123Z))
	w("Message-ID: <%s.%s.%d@%s>", r.QueueID, r.Action, r.Date.Unix(), r.Hostname)
	w("Auto-Submitted: auto-replied") // RFC 3834 §5
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;")
	w("\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-formatted delivery status notification.")
	w("")

	// Part 1: for people.
	part("text/plain; charset=utf-8", "Notification", "Content-Transfer-Encoding: 8bit")
	w("This is the mail system at %s.", r.Hostname)
	w("")
	if r.Action == ActionDelayed {
		w("Your message could not be delivered yet to the recipients below.")
		w("It is still in the queue and will be retried until %s.", r.RetryUntil.UTC().Format(time.RFC1123))
		w("You do not need to send it again.")
	} else {
		w("Your message could not be delivered to the recipients below.")
		w("It has been removed from the queue; the reasons follow.")
	}
	w("")
	for _, rc := range r.Recipients {
		if rc.Remote != "" {
			w("<%s>: %s said: %s", rc.Addr, rc.Remote, oneLine(rc.Reply))
		} else {
			w("<%s>: %s", rc.Addr, oneLine(rc.Reply))
		}
	}
	w("")

	// Part 2: for programs (RFC 3464 §2).
	part(statusType, "Delivery report")
	w("Reporting-MTA: dns; %s", r.Hostname)
	w("X-Posthouse-Queue-ID: %s", r.QueueID)
	w("Arrival-Date: %s", r.Arrival.Format(time.RFC1123Z))
	for _, rc := range r.Recipients {
		w("")
		w("Final-Recipient: %s", addrType(rc.Addr))
		w("Action: %s", r.Action)
		w("Status: %s", rc.Status())
		if rc.Remote != "" {
			w("Remote-MTA: dns; %s", rc.Remote)
			w("Diagnostic-Code: smtp; %s", oneLine(rc.Reply))
		}
		if !rc.LastAttempt.IsZero() {
			w("Last-Attempt-Date: %s", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if r.Action == ActionDelayed {
			w("Will-Retry-Until: %s", r.RetryUntil.Format(time.RFC1123Z))
		}
	}
	w("")

	// Part 3: the original header (RFC 6522 text/rfc822-headers).
	part(headerType, "Header of the original message")
	if len(r.Header) > 0 {
		b.Write(r.Header)
		if !bytes.HasSuffix(r.Header, []byte("\r\n")) {
			w("")
		}
	} else {
		w("X-Posthouse-Note: the original message could not be read")
	}
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}
