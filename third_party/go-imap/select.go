package imap

// SelectOptions contains options for the SELECT or EXAMINE command.
type SelectOptions struct {
	ReadOnly  bool
	CondStore bool // requires CONDSTORE
	// QResync holds the QRESYNC parameter's data (requires QRESYNC).
	// (Posthouse patch.)
	QResync *SelectQResync
}

// SelectQResync is the client's state of a mailbox, given with SELECT or
// EXAMINE (QRESYNC (…)) (RFC 7162 §3.2.5). (Posthouse patch.)
type SelectQResync struct {
	UIDValidity uint32
	ModSeq      uint64
	// KnownUIDs limits the VANISHED (EARLIER) response to these UIDs;
	// nil means every UID.
	KnownUIDs UIDSet
	// SeqMatch pairs message sequence numbers with the UIDs they had for
	// the client, or nil.
	SeqMatch *SelectSeqMatch
}

// SelectSeqMatch is QRESYNC's seq-match-data (RFC 7162 §3.2.5.2).
// (Posthouse patch.)
type SelectSeqMatch struct {
	SeqNums SeqSet
	UIDs    UIDSet
}

// SelectData is the data returned by a SELECT command.
//
// In the old RFC 2060, PermanentFlags, UIDNext and UIDValidity are optional.
type SelectData struct {
	// Flags defined for this mailbox
	Flags []Flag
	// Flags that the client can change permanently
	PermanentFlags []Flag
	// Number of messages in this mailbox (aka. "EXISTS")
	NumMessages uint32
	// Sequence number of the first unseen message. Obsolete, IMAP4rev1 only.
	// Server-only, not supported in imapclient.
	FirstUnseenSeqNum uint32
	// Number of recent messages in this mailbox. Obsolete, IMAP4rev1 only.
	// Server-only, not supported in imapclient.
	NumRecent   uint32
	UIDNext     UID
	UIDValidity uint32

	List *ListData // requires IMAP4rev2

	HighestModSeq uint64 // requires CONDSTORE
	MailboxID     string // requires OBJECTID: RFC 8474 objectid (Posthouse patch)
}
