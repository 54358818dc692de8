package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/posthouse/posthouse/internal/loopport"
)

// server is one mail system under test, driven only over the network and
// through its own command-line tools.
type server interface {
	// Name is the column title in the results table.
	Name() string
	// Addr gives "127.0.0.1:port" for "smtp", "imap", "pop3" and
	// "submission" ("" when the system has no such listener).
	Addr(proto string) string
	// AddUser creates a mailbox user with a password.
	AddUser(ctx context.Context, address, password string) error
	// PIDs lists every process of the mail system (for memory figures).
	PIDs() []int
	// MailRoot is the directory holding all stored mail and indexes.
	MailRoot() string
	// Reindex makes the system pick up mail files written directly into a
	// maildir: Posthouse restarts (start-up reconciliation indexes them);
	// Dovecot needs nothing (it scans the maildir at the next SELECT).
	Reindex(ctx context.Context) error
	// FastPopulate is the faster way to fill a mailbox for this system:
	// "append" or "maildir" (see populate).
	FastPopulate() string
	// FileOwner is the uid/gid that mail files written directly must have.
	FileOwner() (uid, gid int)
	// Close stops every process and removes the temporary directory.
	Close() error
}

// ports are a server's listening ports on 127.0.0.1 by protocol ("smtp",
// "imap", "pop3", …). A server embeds them for its Addr.
type ports map[string]int

// Addr is the host:port of proto's listener, "" if there is none.
func (p ports) Addr(proto string) string {
	if port, ok := p[proto]; ok {
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	return ""
}

// freePorts picks n distinct free TCP ports on 127.0.0.1 (loopport: below
// the ephemeral range). A port may in theory be taken by someone else
// before the server binds it; startup then fails with a clear error.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		p, err := loopport.Pick()
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// waitPorts waits until every address accepts a TCP connection.
func waitPorts(ctx context.Context, timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not accepting connections after %s: %w", a, timeout, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// procInfo is what /proc says about one process.
type procInfo struct {
	pid, ppid int
	comm      string
}

// allProcs lists the processes visible in /proc.
func allProcs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parens.
		s := string(b)
		open, closeIdx := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closeIdx < open {
			continue
		}
		f := strings.Fields(s[closeIdx+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out = append(out, procInfo{pid: pid, ppid: ppid, comm: s[open+1 : closeIdx]})
	}
	return out
}

// descendants returns root and every process below it.
func descendants(root int) []int {
	if root <= 0 {
		return nil
	}
	procs := allProcs()
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// memUsage sums VmRSS and Pss (from smaps_rollup) over pids, in bytes.
func memUsage(pids []int) (rss, pss int64) {
	for _, pid := range pids {
		rss += procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
		pss += procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	}
	return rss, pss
}

// procField reads a "Key: N kB" line from a /proc file, in bytes.
func procField(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n * 1024
	}
	return 0
}

// diskUsage is du's figure for dir: allocated blocks of every file and
// directory below it, in bytes.
func diskUsage(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			total += blocksOf(info)
		}
		return nil
	})
	return total
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuTime is the CPU time used by the processes in pids and by every child
// they have reaped (utime+stime+cutime+cstime). A mail system's masters
// reap their workers, so the sum over the live processes of a system also
// counts workers that have exited, with nothing counted twice.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 15 {
			continue
		}
		for _, x := range f[11:15] {
			n, _ := strconv.ParseInt(x, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}
