// Package mailstore defines the message store that smtpd, pop3d and imapd
// share: accounts, mailboxes, UIDs, flags with modseq, message readers and
// change events. It speaks of none of those protocols' sessions, and its API
// mentions no database handle or file path, so that a second backend (for
// example a PostgreSQL index with S3-compatible bodies) can be added without
// touching the protocols.
//
// The backend that ships is mailstore/maildir: Maildir files for bodies and a
// SQLite index per account. cmd/posthouse picks the backend; protocols only
// see the Store and Account interfaces declared here.
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
package mailstore
