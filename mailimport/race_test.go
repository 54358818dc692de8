//go:build race

package mailimport

// raceEnabled: the race detector makes every byte copied slow, so the
// memory test imports a smaller (still telling) file.
const raceEnabled = true
