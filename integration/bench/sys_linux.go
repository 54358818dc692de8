package main

import (
	"io/fs"
	"syscall"
)

// blocksOf is the space a file occupies on disk (st_blocks × 512).
func blocksOf(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit so the load
// generator (and the servers it starts, which inherit it) can hold a
// thousand connections each side.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// syncFS flushes the file system holding dir, so directly written mail
// files are on disk before a server indexes them.
func syncFS() {
	syscall.Sync()
}
