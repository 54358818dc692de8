package imap

// Posthouse patch: NOTIFY (RFC 5465).

// NotifyFilter names the mailboxes an event group is about (RFC 5465 §6).
type NotifyFilter string

const (
	NotifySelected        NotifyFilter = "SELECTED"
	NotifySelectedDelayed NotifyFilter = "SELECTED-DELAYED"
	NotifyInboxes         NotifyFilter = "INBOXES"
	NotifyPersonal        NotifyFilter = "PERSONAL"
	NotifySubscribed      NotifyFilter = "SUBSCRIBED"
	NotifySubtree         NotifyFilter = "SUBTREE"
	NotifyMailboxes       NotifyFilter = "MAILBOXES"
)

// NotifyEvent is an event a client asks to be told of (RFC 5465 §5).
type NotifyEvent string

const (
	NotifyMessageNew            NotifyEvent = "MessageNew"
	NotifyMessageExpunge        NotifyEvent = "MessageExpunge"
	NotifyFlagChange            NotifyEvent = "FlagChange"
	NotifyAnnotationChange      NotifyEvent = "AnnotationChange"
	NotifyMailboxName           NotifyEvent = "MailboxName"
	NotifySubscriptionChange    NotifyEvent = "SubscriptionChange"
	NotifyMailboxMetadataChange NotifyEvent = "MailboxMetadataChange"
	NotifyServerMetadataChange  NotifyEvent = "ServerMetadataChange"
)

// NotifyOptions is a NOTIFY command: NONE, or SET with its event groups.
type NotifyOptions struct {
	None   bool // NOTIFY NONE
	Status bool // NOTIFY SET STATUS: send the initial STATUS responses
	Groups []NotifyEventGroup
}

// NotifyEventGroup is one "(filter events)" of NOTIFY SET.
type NotifyEventGroup struct {
	Filter    NotifyFilter
	Mailboxes []string      // for SUBTREE and MAILBOXES
	Events    []NotifyEvent // nil: NONE
	// NewFetch is true when MessageNew came with FETCH attributes, which
	// the library does not parse.
	NewFetch bool
}
