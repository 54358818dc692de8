//go:build race

package mimeparse

// raceEnabled shrinks the bombs: the race detector makes the parser's
// byte loop about ten times slower, and the bounds do not depend on size.
const raceEnabled = true
