package imapserver

import (
	"net"
	"sync/atomic"
	"syscall"
)

// quickAcks counts the connections told to acknowledge at once (tests).
var quickAcks atomic.Int64

// quickAck makes the kernel acknowledge what arrives next at once instead
// of delaying the ACK to ride on a reply (Posthouse patch). Sent after a
// continuation request: a client that writes a literal and its line's
// CRLF separately with Nagle's algorithm on (Python's imaplib) holds the
// CRLF until the literal is acknowledged, and the server replies only
// after the CRLF, so each literal waited out the delayed-ACK timer
// (40 ms). The connection is unwrapped through NetConn (TLS, PROXY
// protocol) down to its socket; anything else is left alone.
func quickAck(conn net.Conn) {
	for i := 0; i < 8; i++ {
		if sc, ok := conn.(syscall.Conn); ok {
			raw, err := sc.SyscallConn()
			if err != nil {
				return
			}
			var serr error
			if err := raw.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
			}); err == nil && serr == nil {
				quickAcks.Add(1)
			}
			return
		}
		u, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		conn = u.NetConn()
	}
}
