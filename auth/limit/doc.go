// Package limit bounds concurrent connections, in total and per client
// address, for every Posthouse listener. Listener wraps a net.Listener so
// that an over-limit connection is answered with the protocol's "too busy"
// line by a caller-supplied function and never reaches the server's Accept,
// before any TLS handshake or session state is spent on it.
//
// A client address is an IPv4 address (IPv4-mapped IPv6 included) or an IPv6
// /64, the block one IPv6 host usually holds: counting single IPv6 addresses
// would let one client take its whole /64's worth of slots. Connections
// whose remote is not an IP address (pipes, Unix sockets) count only against
// the total. It imports nothing of ours.
package limit
