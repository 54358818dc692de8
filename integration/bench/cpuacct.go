package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpuGroups gives each system a control group of its own to read its CPU
// time from: the kernel's accounting of the group counts every process that
// ran in it, also one that has exited, in nanoseconds (cgroup v1 cpuacct;
// v2's cpu.stat in microseconds). /proc's utime+stime+cutime+cstime, the
// fallback when no hierarchy is writable (not root), counts in clock ticks
// of 10 ms: too coarse for a single delivery, whose CPU is a few ms.
type cpuGroups struct {
	mu     sync.Mutex
	root   string // the hierarchy's root; "" when none is usable
	v2     bool
	groups map[string]*cpuGroup
}

type cpuGroup struct {
	dir   string
	moved map[int]bool // pids already written to cgroup.procs
}

var cpuAcct = newCPUGroups()

func newCPUGroups() *cpuGroups {
	g := &cpuGroups{groups: map[string]*cpuGroup{}}
	if os.Geteuid() != 0 {
		return g
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpuacct/cpuacct.usage"); err == nil {
		g.root = "/sys/fs/cgroup/cpuacct"
	} else if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		g.root, g.v2 = "/sys/fs/cgroup", true
	}
	return g
}

// method says how CPU is read, for the table's notes.
func (g *cpuGroups) method() string {
	const shared = " On a shared machine they move less than the wall-clock rows."
	if g.root == "" {
		return "CPU rows: user+system time of every process of the system, and of the workers its masters reaped, from /proc/<pid>/stat, in 10 ms clock ticks, around the workload (no writable control group hierarchy: not root)." + shared
	}
	kind := "cgroup v1 cpuacct, nanoseconds"
	if g.v2 {
		kind = "cgroup v2 cpu.stat, microseconds"
	}
	return fmt.Sprintf("CPU rows: the CPU time of every process of the system, from a control group of its own that its processes are moved into (%s; a process the system starts joins its parent's group), read before and after the workload; a process that exited in between still counts.", kind) + shared
}

// systemCPU is the CPU time s's processes have used: their group's usage
// once every process of s is in it, else the /proc fallback.
func systemCPU(s server) time.Duration {
	pids := s.PIDs()
	if d, ok := cpuAcct.usage(s.Name(), pids); ok {
		return d
	}
	return cpuTime(pids)
}

// usage moves the pids not yet moved into name's group and reads the
// group's usage.
func (g *cpuGroups) usage(name string, pids []int) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.root == "" {
		return 0, false
	}
	grp, err := g.group(name)
	if err == nil {
		err = grp.add(pids)
	}
	var d time.Duration
	if err == nil {
		d, err = grp.read(g.v2)
	}
	if err != nil {
		// A hierarchy that refuses us is not used again: every later
		// reading, before and after, is the fallback.
		fmt.Fprintf(os.Stderr, "bench: CPU accounting by control group off: %v\n", err)
		g.root = ""
		return 0, false
	}
	return d, true
}

func (g *cpuGroups) group(name string) (*cpuGroup, error) {
	if grp := g.groups[name]; grp != nil {
		return grp, nil
	}
	dir := filepath.Join(g.root, fmt.Sprintf("posthouse-bench-%d-%s", os.Getpid(), name))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	grp := &cpuGroup{dir: dir, moved: map[int]bool{}}
	g.groups[name] = grp
	return grp, nil
}

// add writes each new pid to the group's cgroup.procs (the whole process,
// every thread, moves). A pid that exited meanwhile is skipped.
func (grp *cpuGroup) add(pids []int) error {
	for _, pid := range pids {
		if grp.moved[pid] {
			continue
		}
		err := os.WriteFile(filepath.Join(grp.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		if err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("move %d into %s: %w", pid, grp.dir, err)
		}
		grp.moved[pid] = true
	}
	return nil
}

func (grp *cpuGroup) read(v2 bool) (time.Duration, error) {
	if !v2 {
		b, err := os.ReadFile(filepath.Join(grp.dir, "cpuacct.usage"))
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return time.Duration(ns), err
	}
	f, err := os.Open(filepath.Join(grp.dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat: no usage_usec", grp.dir)
}

// close moves whatever is left in the groups back to the root and removes
// them; the systems have stopped by then.
func (g *cpuGroups) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, grp := range g.groups {
		if b, err := os.ReadFile(filepath.Join(grp.dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile(filepath.Join(g.root, "cgroup.procs"), []byte(pid), 0)
			}
		}
		if err := os.Remove(grp.dir); err != nil {
			fmt.Fprintf(os.Stderr, "bench: remove control group: %v\n", err)
		}
		delete(g.groups, name)
	}
}
