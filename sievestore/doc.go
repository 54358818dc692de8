// Package sievestore keeps users' Sieve scripts and what running them
// needs to remember: each account's scripts and which one is active, the
// administrator's out-of-office setting, the duplicate-tracking list (RFC
// 7352) and the vacation responses already sent (RFC 5230 §4.2, RFC 6131).
// ManageSieve, the admin CLI and the delivery filter (package sievefilter)
// all go through a *Store.
//
// It owns: the database, script names (RFC 5804 §1.6), the quotas
// (scripts per account and bytes per script), compiling scripts with the
// site's sieve.Options and caching the compiled form. It does not: run
// scripts, carry out actions or speak ManageSieve.
//
// # On disk
//
//	<data_dir>/sieve.sqlite   mode 0600 (mailstore/sqlitedb: WAL, one writer)
//
// Tables: scripts (account, name, source, its SHA-256, active; at most one
// active per account, by a partial unique index), vacations (the
// administrator's out-of-office per account: subject, message, start, end,
// period), duplicates (account, id, expiry) and responses (account,
// handle, sender, expiry). One database for every account, like
// junk.sqlite: opened once by serve, and by each admin command beside it;
// SQLite's locking (busy timeout, immediate write transactions) makes the
// two processes safe together.
//
// # PostgreSQL
//
// With [store] backend = "postgres", OpenPostgres keeps the same tables in
// that database (sieve_scripts, sieve_vacations, sieve_duplicates,
// sieve_responses; schema component "sievestore" of internal/pgdb), so a
// script uploaded through ManageSieve on one node runs at a delivery on
// any other, and a sender answered by one node's vacation is not answered
// again by another's. The SQL is the same for both (internal/pgdb.SQLDB
// rewrites placeholders and table names); where SQLite's single writer
// orders the read-then-write steps (the quota in Put, ClaimResponse), each
// PostgreSQL write transaction first takes an advisory lock on its
// account. The compiled cache needs nothing more: it is keyed by content.
//
// # Compiled scripts
//
// The cache is keyed by the SHA-256 of a script's source, not by its
// name: Compile is deterministic for the store's options, so an entry is
// never stale, and a change made by another process (posthouse admin while
// serve runs) is seen at the next delivery without any signal between
// them. Each delivery costs one indexed query for the active script's name
// and hash; the source is read and compiled only when the hash is not in
// the cache (bounded, least recently used out). A stored script that no
// longer compiles (an extension the site has since disabled) is an error
// for the caller, which keeps the message (RFC 5228 §2.10.6).
//
// # Growth
//
// Duplicate and response rows carry their expiry. Writing one prunes the
// account's expired rows, and keeps at most MaxTracked rows per account
// and table (the ones expiring first go): an attacker sending from a
// million addresses costs a bounded table and, past the bound, at worst a
// second vacation response to an old correspondent.
//
// Global scripts (include :global, RFC 6609) are not kept: Posthouse has
// none, and such an include finds no script.
package sievestore
