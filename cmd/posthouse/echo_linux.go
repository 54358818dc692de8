package main

import "golang.org/x/sys/unix"

// echoOff turns terminal echo off before the prompt is written, so that
// characters typed ahead of term.ReadPassword (which turns echo off itself,
// a moment later) are not shown either. It returns the function that
// restores the terminal.
func echoOff(fd int) (restore func()) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}
	}
	t := *old
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ISIG
	t.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return func() {}
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }
}
