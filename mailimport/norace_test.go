//go:build !race

package mailimport

const raceEnabled = false
