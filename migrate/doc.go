// Package migrate copies a mailbox account from a remote IMAP server into a
// Posthouse account: every folder, with flags, keywords and internal dates,
// through mailimport.Importer (so each message is stored once, through
// Account.Append, while the server runs and the user receives mail).
//
// The source is imaps://host[:port] (TLS from the start, port 993) or
// imap://host[:port] (STARTTLS required, port 143); the password never
// travels in clear text.
//
// One connection lists the folders (LIST with RETURN (SPECIAL-USE) when
// offered, RFC 6154; the personal namespace prefix, such as Courier's
// "INBOX.", is taken off the names), and per folder SELECTs read-only and
// searches the UIDs above the last one copied. Then up to Options.Parallel
// connections copy folders at once, each in batches of Options.Batch UIDs:
// UID FETCH (FLAGS INTERNALDATE), then UID FETCH (BODY.PEEK[]) whose
// literals stream into the importer (which spools a message over 1 MiB to
// a temporary file), so memory does not depend on the size of a folder or
// a message.
//
// Resuming: after every stored message the folder's UIDVALIDITY and the
// last UID copied are recorded in the ledger (mailimport.Ledger, keyed by
// account, login@host and folder), so a run started again fetches only
// what is left; a message whose record a kill cut off is found by the
// ledger's content hash and not stored twice. A changed UIDVALIDITY starts
// the folder from the beginning, and the ledger again stores nothing twice.
//
// Special use: a folder the server marks \Sent, \Drafts, \Trash, \Junk or
// \Archive, or a one-level folder with a common name for one (see
// mailimport), goes into the account's mailbox with that special use.
package migrate
