package imap

import (
	"time"
)

// AppendOptions contains options for the APPEND command.
type AppendOptions struct {
	Flags []Flag
	Time  time.Time
	// Binary says the message came as a literal8 ("~{n}", RFC 3516 §4.4):
	// it may hold binary content, even NUL. (Posthouse patch.)
	Binary bool
}

// AppendData is the data returned by an APPEND command.
type AppendData struct {
	// requires UIDPLUS or IMAP4rev2
	UID         UID
	UIDValidity uint32
	// UIDs, when not empty, are the UIDs of every message of a
	// MULTIAPPEND (RFC 3502), in APPENDUID's uid-set (RFC 4315 §3);
	// UID is then ignored. (Posthouse patch.)
	UIDs UIDSet
}
