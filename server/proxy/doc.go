// Package proxy reads the PROXY protocol (HAProxy's, versions 1 and 2) on
// listeners that sit behind a TCP load balancer, so the client address a
// session sees (in logs, SPF, throttling, Received headers, trusted
// networks) is the one the load balancer was connected from, not the load
// balancer's own.
//
// Listen wraps a net.Listener. Only connections from Options.Trusted (the
// load balancers) are taken; any other source is closed at once with a
// log line, so a client that reaches the port directly can neither pass
// itself off as someone else nor be served under the load balancer's
// trust. A trusted connection must start with a PROXY header within
// Options.HeaderTimeout; one that sends none, a garbled one, or stalls is
// closed with a log line and never reaches the server. The header is read
// by github.com/pires/go-proxyproto (bounded: a v1 line is at most 107
// bytes, a v2 header at most 16+65535).
//
// A LOCAL (v2) or UNKNOWN (v1) header, which a load balancer's health
// check sends, keeps the connection's own address, as the PROXY protocol
// specification (section 2.1 and 2.2) asks. So does a header carrying a
// Unix socket address.
//
// Headers are read on a goroutine per connection, so one slow or silent
// peer does not hold up the accept loop of the caller (package server's
// Lifecycle); at most MaxPending connections are accepted ahead of the
// caller's Accept, so when the caller stops accepting (out of descriptors)
// the rest wait in the kernel's queue. Accept returns the inner
// listener's errors unchanged, one per call, so the caller's backoff on
// EMFILE and the like governs how often the inner Accept is retried.
//
// Protocol packages never import this one: cmd/posthouse wraps the
// listeners [listen] proxy_protocol names, and the sessions read the
// address through net.Conn.RemoteAddr as usual.
package proxy
