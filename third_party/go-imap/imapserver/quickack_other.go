//go:build !linux

package imapserver

import (
	"net"
	"sync/atomic"
)

var quickAcks atomic.Int64

// quickAck is Linux's TCP_QUICKACK (quickack_linux.go); elsewhere a no-op.
func quickAck(net.Conn) {}
