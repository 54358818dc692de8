package main

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// imapLimits are Dovecot's service imap client_limit and process_limit.
func (s *pdServer) imapLimits() (client, process int) {
	return s.opts.IMAPClientLimit, s.opts.IMAPProcessLimit
}

// setIMAPLimits rewrites dovecot.conf with new imap service limits and
// reloads Dovecot (SIGHUP to its master): imap processes started from then
// on have them. Workloads call it with no connection open.
func (s *pdServer) setIMAPLimits(client, process int) error {
	if client == s.opts.IMAPClientLimit && process == s.opts.IMAPProcessLimit {
		return nil
	}
	s.opts.IMAPClientLimit, s.opts.IMAPProcessLimit = client, process
	if err := s.writeConfig(); err != nil {
		return err
	}
	logBefore := len(s.readLog("dovecot/dovecot.log"))
	if err := s.dovecot.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("dovecot reload: %w", err)
	}
	// The master logs "SIGHUP received - reloading configuration" and
	// then serves with the new settings.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if log := s.readLog("dovecot/dovecot.log"); len(log) > logBefore && bytes.Contains(log[logBefore:], []byte("reloading configuration")) {
			time.Sleep(500 * time.Millisecond) // old imap processes finish their exits
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("dovecot did not reload its configuration within 10 s\n%s", tail(s.readLog("dovecot/dovecot.log"), 1000))
}

var _ imapTuner = (*pdServer)(nil)

// nofileWanted is the open-file limit the 10,000-connection workload asks
// for (both ends of every connection are on this machine, each system's
// server and the load generator each hold one descriptor per connection).
const nofileWanted = 65536

// raiseHardFileLimit lifts the hard RLIMIT_NOFILE to nofileWanted when
// allowed (root) and below /proc/sys/fs/nr_open; raiseFileLimit then lifts
// the soft limit to it.
func raiseHardFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Max >= nofileWanted {
		return
	}
	want := uint64(nofileWanted)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		var n uint64
		if _, err := fmt.Sscan(string(b), &n); err == nil && n < want {
			want = n
		}
	}
	lim.Max = want
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) // not root: the old limit stays
}
