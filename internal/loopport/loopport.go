// Package loopport picks TCP ports on 127.0.0.1 for servers that tests
// and the benchmark start in another process (posthouse serve, PostgreSQL,
// Postfix, Dovecot), which must be told a port before they bind it.
//
// A port taken with Listen("127.0.0.1:0") and closed again comes from the
// kernel's ephemeral range, the range every outgoing connection of every
// process takes its local port from: while the server is starting, or
// stopped between two runs on the same port, any connection may take it.
// Pick therefore draws from below that range, where only a listener that
// names its port can land, and never returns a port twice in one process.
package loopport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port Pick draws: above the ports services are
// commonly configured on.
const lowest = 20000

var handed struct {
	sync.Mutex
	ports map[int]bool
}

// Pick returns a port on 127.0.0.1 that nothing listens on right now,
// below the ephemeral range when that leaves room, and not returned
// before in this process.
func Pick() (int, error) {
	handed.Lock()
	defer handed.Unlock()
	if handed.ports == nil {
		handed.ports = map[int]bool{}
	}
	lo := ephemeralLow()
	for range 1000 {
		p, err := draw(lo)
		if err != nil {
			return 0, err
		}
		if handed.ports[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use
		}
		ln.Close()
		handed.ports[p] = true
		return p, nil
	}
	return 0, errors.New("loopport: no free loopback port found")
}

// draw is candidate; tests replace it.
var draw = candidate

// candidate draws a port below lo, or asks the kernel for one when the
// ephemeral range leaves fewer than 1,000 ports below it.
func candidate(lo int) (int, error) {
	if lo-lowest >= 1000 {
		return lowest + rand.IntN(lo-lowest), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("loopport: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range
// (Linux's default, 32768, when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}
