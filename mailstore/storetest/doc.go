// Package storetest is the conformance suite of mailstore backends, in the
// way testing/fstest.TestFS is for fs.FS: a backend proves that it keeps
// the contract of mailstore.Store and mailstore.Account, as written in
// their doc comments, by running
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Backend{
//			Open:   func(t *testing.T, cfg storetest.Config) mailstore.Store { … },
//			Reopen: …, // optional: restart over the same storage
//			Plant:  …, // optional: store a message behind the index's back
//		})
//	}
//
// Every subtest gets a Store over new, empty storage from Backend.Open, so
// subtests are independent and their failures name one behaviour. Every
// assertion is exact (UIDs, counts, flags, sizes, bytes, error sentinels
// with errors.Is). Events of a change must have been delivered when the
// call that made it returns (Account.Watch says so, and Events/BeforeReturn
// checks it); elsewhere the suite awaits events with a deadline, never a
// sleep. The groups run in parallel; the whole suite takes a few seconds
// on a local disk. Run it under -race.
//
// # What it covers
//
//   - Store: default mailboxes (names, special use, subscribed), handles
//     sharing state and events, accounts kept apart, ErrBadAccountName,
//     handle Close, Remove (ErrClosed for open handles, ErrNoSuchAccount,
//     the name coming back empty) and Store.Close.
//   - Mailboxes: CREATE with missing parents, ErrMailboxExists,
//     ErrBadMailboxName, INBOX in any case, special use, DELETE (INBOX,
//     children, mail and usage going, a re-created name getting a new ID
//     and a greater UIDVALIDITY), RENAME (children, new parents, IDs,
//     UIDVALIDITY, messages and subscriptions kept; INBOX's RFC 9051
//     §6.3.6 rule), subscriptions (of names that do not exist, outliving
//     their mailbox).
//   - Append and Deliver: results, bytes exactly as given (large, 8-bit,
//     bare LF), sizes, internal dates with their zone, flags at append,
//     Deliver's fallback to INBOX, UIDs strictly increasing and never
//     reused after expunge, a new modseq for every append.
//   - Fetch and OpenMessage: UID sets with '*', cached envelope and body
//     structure, seekable readers, ErrNoSuchMessage.
//   - StoreFlags: add, remove and set of system flags and keywords (case
//     rules, \Recent ignored), a new modseq for each changed message and
//     none for unchanged ones, UNCHANGEDSINCE (RFC 7162 §3.1.3), one
//     EventFlags per change.
//   - Expunge and UID EXPUNGE, Copy and Move: UID maps, what source and
//     destination hold, usage, event order (a move's appends before its
//     expunges).
//   - Watch: every kind of change, in commit order, with modseqs that match
//     the mailbox's, delivered before the call returns; stop, and Close
//     ending watches; the Watch-then-Snapshot recipe while another session
//     changes the mailbox.
//   - Quota: ErrOverQuota at Deliver, Append and Copy (not Move), nothing
//     left behind by a refusal, the exact boundary, quota changes; the
//     same for the message quota (MessageUsage).
//   - EmailID (RFC 8474): an objectid per message, kept by Copy, Move and a
//     restart, never handed out again after an expunge, found by Search;
//     ThreadID finds nothing.
//   - Search: flags, dates, sizes, UIDs, modseq, headers, body and text,
//     NOT and OR; sequence numbers refused.
//   - Recent (IMAP4rev1 \Recent): ClaimRecent hands each UID to one
//     caller only (also when racing), raising the claim point and never
//     lowering it, without a modseq or an event; Status counts the
//     unclaimed messages of every way mail arrives; a new mailbox starts
//     unclaimed from UID 1.
//   - Changes (CONDSTORE/QRESYNC): Fetch with ChangedSince returns the
//     messages changed since (flags, arrivals) in UID order within the
//     UID set; Expunged names every UID expunged since (expunge, move out,
//     INBOX rename), never an existing message, and survives a restart.
//   - POP3: LockMaildrop exclusivity (also when racing) and the maildrop
//     view pop3d builds (sizes, expunges during a session, UPDATE state).
//   - Errors: ErrNoSuchMailbox from every call on a deleted mailbox ID,
//     ErrClosed from every call on a closed handle.
//   - Concurrency: parallel deliveries (distinct increasing UIDs, nothing
//     lost, events in UID order), snapshots taken during writes, racing
//     creates and flag changes (no lost update).
//   - Restart (with Backend.Reopen): everything a client sees survives;
//     UIDs, modseqs and the \Recent claim point go on; a maildrop lock
//     does not.
//   - Reconciliation (with Backend.Plant; ReconcileAccount when the Store
//     is also a Reconciler): a message found in storage without an index
//     entry is indexed under a new UID, with its bytes, envelope, usage
//     and an event, by Store.Reconcile (every account), ReconcileAccount
//     and when a restarted store opens the account; nothing is dropped,
//     and a second pass changes nothing.
//
// Where the behaviour checked here is not obvious from the protocols, the
// sentence that promises it is in mailstore's doc comments; a backend that
// needs the suite to assert less must change those first.
package storetest
