//go:build !linux

package main

// echoOff is a no-op where we do not manage the terminal ourselves;
// term.ReadPassword still reads without echo.
func echoOff(fd int) (restore func()) { return func() {} }
