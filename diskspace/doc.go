// Package diskspace owns the free-space check on data_dir: the reserve
// below which Posthouse stops taking new mail so that what it already holds
// can still be read, flagged, moved, expunged and delivered.
//
// # The reserve
//
// A Reserve is a number of bytes, a percentage of the file system, or
// both, the larger applying ([limits] min_free_space, default "1%, 200MiB").
// Free space is what an unprivileged process may use (statfs f_bavail), so
// blocks kept for root do not count. Below the reserve, Monitor.Low is
// true and every protocol refuses new work at its edge, before the client
// sends a message: SMTP 452 4.3.1 at MAIL and RCPT (RFC 3463 §3.5,
// "mail system full"), IMAP APPEND NO [OVERQUOTA]. Nothing else is
// refused: reads, flag changes, moves, expunges and deletions write a little
// (SQLite pages, the WAL, directory entries) and must keep working, which
// they can because the reserve is still free on the disk; the queue keeps
// delivering what it holds. Mail already past RCPT when the disk went low
// is finished inside the reserve rather than refused half way.
//
// A disk that fills anyway (another process, a reserve of 0) fails writes
// with ENOSPC, EDQUOT or SQLite's SQLITE_FULL; IsNoSpace recognises them
// so each protocol's error edge answers "452 4.3.1" or NO [OVERQUOTA]
// instead of a generic local error.
//
// # Cost
//
// Monitor.Low is called for every MAIL, RCPT and APPEND. It reads an atomic
// value; the statfs behind it runs at most once per Options.Interval (1 s),
// by whichever caller first finds the value stale, while the others go on
// with the cached one.
//
// # Logging
//
// Going below the reserve logs one warning (free, reserve, data_dir), then
// one per Options.WarnEvery (10 min) while the episode lasts; coming back
// above it logs once at Info with the episode's duration.
//
// The package imports nothing of Posthouse's and knows no protocol: the
// servers see it through a one-method interface of their own (Low() bool).
package diskspace
