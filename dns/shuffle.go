package dns

import "math/rand/v2"

// shuffle randomises MX order before the stable sort by preference, so that
// equal-preference hosts share the load (RFC 5321 §5.1).
func shuffle(mxs []MX) {
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
}
