//go:build unix

package server

import "syscall"

// fileLimit is the soft RLIMIT_NOFILE; 0 when it cannot be read or is
// unlimited.
func fileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<30 {
		return 0
	}
	return int(l.Cur)
}
