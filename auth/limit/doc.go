// Package limit counts connections, in total and per client address, and
// the rate at which one client opens them, for every Posthouse listener.
// It is bookkeeping over addresses only: package server's accept loop calls
// Take for each new connection, answers a refusal with the protocol's "too
// busy" line before any TLS handshake or session state is spent on it, and
// releases the Slot when the connection ends. Key is also auth's way of
// grouping a client's password-guessing attempts.
//
// A client address is an IPv4 address (IPv4-mapped IPv6 included) or an IPv6
// /64, the block one IPv6 host usually holds: counting single IPv6 addresses
// would let one client take its whole /64's worth of slots. Connections
// whose remote is not an IP address (pipes, Unix sockets) count only against
// the total. It imports nothing of ours.
//
// # Fair share when full
//
// Idle connections from a few addresses must not keep everyone else out. So
// when every slot is taken, a newcomer is refused only if no address holds
// at least two more slots than the newcomer's does. Otherwise the biggest
// such holder's longest-idle slot is handed to the newcomer and that
// connection is told to close (its protocol says goodbye at the next command
// boundary, SMTP with "421 4.7.0"). Only slots the protocol made evictable
// (Slot.SetEvict) and that are not busy (Slot.SetBusy: a message upload in
// progress) are candidates, so nothing accepted is cut. The ranking is by
// Slot.Touch, which the protocol calls per command. Until the evicted
// connection has closed, the process holds one more connection than the
// total.
//
// # Connection rate
//
// Options.Rate is a token bucket per client address: a burst of Rate new
// connections, refilled at Rate per RateWindow (a minute). Refused attempts
// take tokens too, so a client hammering the port stays refused. The table
// forgets addresses whose bucket has refilled, and is bounded. The bucket
// table is Rate, generic over its key, so that other per-key rates (the
// port-25 gate's messages per envelope sender) reuse it.
package limit
