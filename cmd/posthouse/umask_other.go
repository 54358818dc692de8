//go:build !unix

package main

// privateUmask is a no-op where there is no umask; the packages still ask
// for owner-only modes.
func privateUmask() {}
