// Package mailimport moves mail between files and a Posthouse account, and
// keeps the ledger that makes moving in idempotent. It owns:
//
//   - Importer: the one path by which mail from elsewhere enters an
//     account (admin import, and migrate for IMAP). Each message is
//     spooled (in memory up to 1 MiB, in a temporary file beyond) while its
//     SHA-256 is computed, looked up in the ledger, and stored with
//     Account.Append, so UIDs, modseq, quota and change events work as for
//     any APPEND, also while the server runs.
//   - ImportPath: mbox files, Maildir trees and directories of either
//     (Thunderbird profiles, Google Takeout, Apple Mail's Foo.mbox/mbox),
//     read by mailfile.
//   - Export: an account as a Maildir++ tree or one mboxrd file per
//     mailbox, which ImportPath reads back to the same messages, flags,
//     keywords and internal dates.
//   - Ledger: the SQLite database <data_dir>/import.sqlite, shared by every
//     account.
//
// # Idempotence
//
// The ledger keys every stored message by (account, mailbox ID, UIDVALIDITY,
// SHA-256 of its bytes): importing the same source again stores nothing
// twice, and a message that appears twice in one source is stored once
// (skipped "already imported"). A mailbox deleted and created again has a
// new ID, so its mail can be imported again. Between the append and its
// ledger row a crash could leave a message the ledger does not know, so
// before each append a pending row records the mailbox's UIDNEXT; the next
// Importer of the account resolves pending rows by hashing the messages
// from that UID on that have the pending size, and records the one that
// matches.
//
// The ledger also keeps migrate's per-folder state (UIDVALIDITY and the
// last UID copied of each remote folder).
//
// # Mailbox names
//
// INBOX in any case is the inbox. A one-level source folder named like a
// special-use mailbox (Sent, Sent Items, Sent Messages, Drafts, Trash,
// Deleted Items, Deleted Messages, Junk, Spam, Junk E-mail, Archive,
// Archives), or one an IMAP server marks with SPECIAL-USE, goes into the
// account's mailbox with that special use. Other names are kept, with
// characters the store refuses ('%', '*', control characters) as '_', and
// missing mailboxes are created. With a target mailbox (admin import
// --mailbox), folders go below it and no special-use mapping applies.
//
// A Google Takeout mbox with X-Gmail-Labels files each message in one
// mailbox: Trash, Spam (Junk), Inbox, Sent, Drafts, then its first own
// label, else Archive (Gmail's "archived"). "Starred" sets \Flagged and
// "Opened" \Seen; chats ("Chat" label) are skipped.
package mailimport
