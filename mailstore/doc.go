// Package mailstore defines the message store that smtpd, pop3d and imapd
// share: accounts, mailboxes, UIDs, flags with modseq, message readers and
// change events. It speaks of none of those protocols' sessions, and its API
// mentions no database handle or file path, so that a second backend (for
// example a PostgreSQL index with S3-compatible bodies) can be added without
// touching the protocols.
//
// Two backends ship: mailstore/maildir, Maildir files for bodies and a
// SQLite index per account (the default), and mailstore/postgres, every
// account in one PostgreSQL database shared by several processes, with
// bodies behind its own BodyStore. mailstore/backend opens the one the
// configuration names ([store] backend); cmd/posthouse calls it and knows no
// backend package. Protocols see the Store and Account interfaces declared
// here, or declare the part they use (pop3d.Account, smtpd.Store).
//
// Copying accounts between backends (posthouse admin store copy) goes
// through three narrow interfaces in import.go, outside Store and Account,
// since a copy must set what those never let a caller choose (UIDs,
// modseqs, UIDVALIDITY, EMAILIDs, the expunge history): an Exporter
// (maildir) hands out an ImportSource per account, a consistent read of
// it, and an Importer (postgres) writes it whole or not at all.
//
// It also holds the small UID-set helpers that protocols and backends
// share (UIDSetOf, RangeBounds), so that "*" and n:m mean one thing
// everywhere.
//
// The contract is what the doc comments of Store and Account say, and
// mailstore/storetest checks it: a backend proves itself with storetest.Run,
// as mailstore/maildir does in its TestConformance. A backend that cannot
// keep a sentence of the contract changes the sentence and the suite
// together, never one alone.
//
// Message structure is read by mailstore/mimeparse, in one streaming pass
// with fixed limits (nesting depth 32, 2,000 parts, 256 KiB of fields per
// header, 1 MiB of header per message; see its package doc), so no stored
// message can cost more than time linear in its size and bounded memory,
// whether at delivery, APPEND, reconciliation or FETCH.
package mailstore
