// Package postgres is the PostgreSQL mailstore backend ([store] backend =
// "postgres"): every account's mailboxes, messages, flags, keywords,
// modseqs, expunge log, subscriptions and bodies live in one PostgreSQL
// database, so several Posthouse processes (nodes) can serve the same
// mailboxes. It keeps the contract of mailstore.Store and
// mailstore.Account and passes mailstore/storetest (without Plant: there
// is nothing to reconcile).
//
// # Schema
//
// schema.go holds the tables, created and upgraded by numbered steps
// (internal/pgdb.Migrate, component "mailstore"). Accounts share the
// tables and every statement names the account. A mailbox row holds
// UIDNEXT, HIGHESTMODSEQ, the \Recent claim point and the counters STATUS
// reads (kept by statement-level triggers); an account row holds the bytes
// and messages the quotas are checked against.
//
// # Transactions and ordering
//
// Every change is one transaction. A change to a mailbox's messages starts
// by bumping the mailbox's modseq (UPDATE … RETURNING), which locks its row
// until the commit: UIDs and modseqs are allocated atomically across nodes,
// transactions on one mailbox commit in modseq order, and a call that turns
// out to change nothing rolls back, keeping the modseq. Within a process, a
// per-account mutex also orders the transactions and the delivery of their
// events, as in the maildir backend; a delivery or APPEND stores its body
// before taking that mutex, so a slow client holds a connection, not the
// account. Copy locks its source rows FOR KEY SHARE, so a concurrent
// expunge waits for it (and the body it shares). A move locks both
// mailbox rows first, in ID order, so that two moves in opposite
// directions on two nodes wait for each other instead of deadlocking
// (TestNodesOppositeMoves). A transaction the database still ends with a
// deadlock or serialization failure (SQLSTATE 40P01, 40001) is run again,
// at most five times in all; a delivery or APPEND, whose body was read
// from the client in the same transaction, is not, and its client gets a
// temporary error to retry.
//
// Round trips: a delivery is four statements (BEGIN; the body's chunk;
// one statement that allocates the UID and modseq, inserts the row, counts
// the usage and notifies the other nodes; COMMIT), five with a quota (a
// first look at the usage refuses a full account before reading the
// message). Snapshot and a FETCH of flags are one statement each, which
// returns the mailbox's messages as one row of arrays. Opening a message
// reads its row and, with PGBodies, its body's first chunk in one
// statement, so a FETCH of a body or a POP3 RETR is one round trip for a
// message under 256 KiB. SEARCH of text reads bodies in batches (up to 64
// messages or 4 MiB a statement, fewer while cheaper criteria skip most
// of what was read ahead), not one statement per message.
//
// # Bodies
//
// Bodies sit behind BodyStore (bodies.go). PGBodies keeps them in
// mail_body_chunks, in rows of at most 256 KiB, written while the MIME
// parser reads the message (one pass; the envelope and body structure are
// cached as the maildir backend caches them) and read chunk by chunk, so
// memory per message is bounded whatever its size. Copies share a body;
// it is deleted with the last row that refers to it, in that row's
// transaction.
//
// # Events across nodes
//
// Each transaction sends its events with pg_notify on one channel
// (Options.Channel); every Store LISTENs on a dedicated connection and
// hands other Stores' events to its watchers. Its own watchers are called
// at commit, before the call returns, and its own notifications are
// dropped by origin when they come back. Notifications sent while the
// LISTEN connection is down are lost, so once it listens again each open
// account catches up (resync.go): for every mailbox its watchers know, it
// reads the rows and expunged ranges with a modseq above the last it
// published, in one REPEATABLE READ transaction, and publishes them as
// appends, flag changes and expunges; notifications of those changes that
// still arrive afterwards are dropped. TestNodesListenerReconnectCatchesUp
// terminates the LISTEN backend (pg_terminate_backend) to prove it.
// Mailboxes created, renamed or deleted meanwhile send no event.
//
// # Copying accounts in
//
// Store implements mailstore.Importer (import.go) for posthouse admin store
// copy: an account read from another backend is written in one transaction,
// rows with the source's UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, \Recent claim
// point, subscriptions and expunge ranges, messages with their UIDs,
// modseqs, flags, keywords, internal dates and EMAILIDs. With PGBodies,
// messages up to one chunk go in batches (at most 128 messages or 4 MiB held
// in memory), bodies and rows in one statement per batch; larger ones, and
// every message with another BodyStore, are streamed through the BodyStore
// (two statements each). BenchmarkImport, 10 KB messages from a Maildir
// account, both in one run on the shared 2-core test machine: batches about
// 3,000 messages/s, streaming 1,100 to 1,900 (0.03 against 2 statements per
// message). One transaction per account, not per batch of messages, so that
// an interrupted copy leaves nothing and "already copied" needs no marker:
// an account whose mailboxes match the source's (names, UIDVALIDITY,
// UIDNEXT, HIGHESTMODSEQ, counts) is skipped; one with other messages is
// refused unless forced. The whole expunge history is copied, so QRESYNC's
// VANISHED (EARLIER) answers as before, not just a HIGHESTMODSEQ that never
// goes back. The account's UIDVALIDITY counter and the shared EMAILID
// sequence are raised above the imported values. MAILBOXIDs (mailbox row
// IDs) are this database's: accounts share the ID space, so the source's
// cannot be kept.
//
// # POP3 maildrop lock
//
// LockMaildrop takes a session-level advisory lock on one dedicated
// connection per Store (plus a local check, since advisory locks are
// re-entrant within a session), so a lock held on one node is refused on
// another, and a node that dies releases its locks with its connection.
package postgres
