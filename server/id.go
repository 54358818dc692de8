package server

import (
	"sync/atomic"
	"time"
)

// idEpoch is where connection ids start counting milliseconds.
var idEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// idWidth digits of base 32 hold 40 bits: milliseconds until 2059, when
// ids grow a digit.
const idWidth = 8

// idDigits are ordered as ASCII is, so ids of one width sort as they were
// issued.
const idDigits = "0123456789abcdefghjkmnpqrstvwxyz"

// lastID is the last id issued in this process, for every listener.
var lastID atomic.Uint64

// nextID returns a new connection id: the milliseconds since idEpoch, or
// one more than the last id when connections come faster than that, in
// fixed-width base 32. Ids are unique in the process and increase; a
// restart does not repeat them unless the process before had run ahead of
// the clock by more than the restart took (more than a thousand
// connections a second, sustained).
func nextID() string {
	now := uint64(max(time.Since(idEpoch).Milliseconds(), 0))
	for {
		last := lastID.Load()
		n := max(now, last+1)
		if lastID.CompareAndSwap(last, n) {
			return formatID(n)
		}
	}
}

func formatID(n uint64) string {
	var b [13]byte
	i := len(b)
	for n > 0 || len(b)-i < idWidth {
		i--
		b[i] = idDigits[n%32]
		n /= 32
	}
	return string(b[i:])
}
