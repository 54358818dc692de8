package sieve

import "time"

// ActionKind names an action of a Result.
type ActionKind uint8

const (
	ActionKeep     ActionKind = iota // store in INBOX (keep, RFC 5228 §4.3)
	ActionFileInto                   // store in Mailbox
	ActionRedirect                   // send to Address
	ActionReject                     // refuse with Reason (RFC 5429 reject: a DSN/MDN after acceptance or 5xx)
	ActionEReject                    // refuse with Reason at the SMTP level where possible (ereject)
	ActionDiscard                    // throw away (only cancels the implicit keep)
)

func (k ActionKind) String() string {
	return [...]string{"keep", "fileinto", "redirect", "reject", "ereject", "discard"}[k]
}

// Action is one thing the script asks for. Actions are deduplicated:
// keep or fileinto of one mailbox stores one copy (its flags are the
// union), a redirect to one address goes once.
type Action struct {
	Kind    ActionKind
	Mailbox string   // fileinto
	Create  bool     // fileinto :create (RFC 5490 §3.2): create a missing mailbox
	Copy    bool     // fileinto/redirect :copy (RFC 3894): did not cancel the implicit keep
	Flags   []string // keep/fileinto: the flags the copy gets (RFC 5232)
	Address string   // redirect: a bare address, local@domain
	Reason  string   // reject/ereject
	Pos     Pos      // where in the script (the top script's for an include)
}

// Vacation is a vacation response to consider (RFC 5230, RFC 6131).
// The caller sends it unless Skip is set or it already sent a response
// with Handle to To within Period; it adds Auto-Submitted: auto-replied,
// In-Reply-To and References, and goes through the queue.
type Vacation struct {
	To      string // the reply's recipient: the envelope sender
	From    string // :from, or the recipient's address (Envelope.To)
	Subject string // :subject, or "Auto: " and the message's subject (RFC 5230 §5.3)
	Reason  string // the body; a whole MIME entity when MIME is set
	MIME    bool
	// Handle names the response for tracking: "h:" and the :handle, or
	// "s:" and a hash of the unexpanded :subject, :from, :mime and reason
	// (RFC 5230 §4.2).
	Handle string
	Period time.Duration // :days or :seconds, within the site's bounds; 0 = reply every time
	// InReplyTo is the message's Message-ID, for In-Reply-To and
	// References.
	InReplyTo string
	// Skip, when not empty, says why no response may be sent (RFC 5230
	// §4.5, §4.6): null sender, automated sender, list mail,
	// Auto-Submitted, not addressed to the user, the user's own message.
	Skip string
}

// FieldRef names one field of the message's own header (Env.Header):
// the Index-th field named Name (1-based, names without regard to case).
type FieldRef struct {
	Name  string
	Index int
}

// DuplicateMark is a unique id to record in the duplicate-tracking list
// once the message was delivered (RFC 7352 §3: only after a successful
// run). With Last, an existing entry's expiry restarts.
type DuplicateMark struct {
	ID     string
	Period time.Duration
	Last   bool
}

// Result is what a run decided. After a run that failed (Run returned an
// error), Result is FailedResult: keep the message in INBOX, nothing
// else (RFC 5228 §2.10.6).
type Result struct {
	Actions []Action
	// ImplicitKeep says the message is also stored in INBOX with
	// KeepFlags, as no action cancelled the implicit keep.
	ImplicitKeep bool
	KeepFlags    []string
	Vacation     *Vacation
	// Header edits (RFC 5293), for every stored and redirected copy:
	// AddTop goes on top of the header, in order; AddBottom after the
	// message's last field; Delete names the message's own fields to
	// remove. Fields added and deleted again by the script are not listed.
	AddTop, AddBottom []Field
	Delete            []FieldRef
	Duplicates        []DuplicateMark
	// Failed is set on the result of a run that ended in an error.
	Failed bool
}

// FailedResult is the result of a run that failed: implicit keep.
func FailedResult() Result { return Result{ImplicitKeep: true, Failed: true} }
