//go:build unix

package main

import "syscall"

// privateUmask makes everything this process creates owner-only (files
// 0600, directories 0700), whatever mode the code asks for: serve and admin
// write to data_dir, which holds mail, password hashes and private keys.
// The packages ask for those modes themselves too; this covers what they do
// not control (SQLite's own files, libraries).
func privateUmask() { syscall.Umask(0o077) }
