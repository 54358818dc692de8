package main

import (
	"bufio"
	"bytes"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/internal/gcfloor"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from [limits]
// memory_limit, unless GOMEMLIMIT is set (the runtime has then applied
// it), and logs the limit in force once. Near the limit the garbage
// collector runs more often: a burst of large messages slows the server
// down instead of getting it killed by the kernel or its cgroup. root is
// "/" but for tests: where /proc and /sys/fs/cgroup are read.
func applyMemoryLimit(cfg *config.Config, log *slog.Logger, root string) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		log.Info("memory limit", "limit", limitString(debug.SetMemoryLimit(-1)), "source", "GOMEMLIMIT")
		return
	}
	size, percent, err := config.ParseMemoryLimit(cfg.Limits.MemoryLimit)
	if err != nil { // Validate has refused it already
		return
	}
	source := "limits.memory_limit"
	if percent > 0 {
		total, from := availableMemory(root)
		if total <= 0 {
			log.Warn("memory limit: cannot tell how much memory this process may use; none set", "memory_limit", cfg.Limits.MemoryLimit)
			return
		}
		// Whole MiB, so that the log line reads well.
		size = config.ByteSize(float64(total)*percent/100) &^ (1<<20 - 1)
		source = strconv.FormatFloat(percent, 'f', -1, 64) + "% of " + from + " " + strconv.FormatInt(total>>20, 10) + "MiB"
	}
	if size == 0 {
		log.Info("memory limit", "limit", "off", "source", source)
		return
	}
	debug.SetMemoryLimit(int64(size))
	log.Info("memory limit", "limit", size.String(), "source", source)
}

// heapFloor is the Go heap target kept at least (internal/gcfloor), unless
// the memory limit is under four times as much: collections every few MiB
// of garbage were a tenth of the server's latency under imaptest's
// stress load.
const heapFloor = 16 << 20

// applyHeapFloor starts holding the heap target at heapFloor, or a quarter
// of the memory limit in force when that is less, and logs it once.
func applyHeapFloor(log *slog.Logger) {
	floor := min(int64(heapFloor), debug.SetMemoryLimit(-1)/4)
	gcfloor.Start(floor)
	log.Info("heap floor", "floor", config.ByteSize(floor).String())
}

func limitString(n int64) string {
	if n == math.MaxInt64 {
		return "off"
	}
	return config.ByteSize(n).String()
}

// availableMemory is the memory this process may use: the lowest cgroup
// memory limit on its path (v2 memory.max, v1 memory.limit_in_bytes),
// capped by MemTotal; and which of them it is. 0 when none is known.
func availableMemory(root string) (int64, string) {
	total := memTotal(root)
	from := "MemTotal"
	if lim := cgroupLimit(root); lim > 0 && (total == 0 || lim < total) {
		total, from = lim, "cgroup memory limit"
	}
	return total, from
}

// memTotal reads MemTotal from /proc/meminfo, in bytes.
func memTotal(root string) int64 {
	data, err := os.ReadFile(filepath.Join(root, "proc/meminfo"))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || n <= 0 {
				return 0
			}
			if len(f) == 3 && f[2] == "kB" {
				n *= 1024
			}
			return n
		}
	}
	return 0
}

// cgroupLimit is the lowest memory limit of the cgroups this process is
// in, from its own up to the root of each hierarchy; 0 when none is set.
func cgroupLimit(root string) int64 {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0
	}
	var lowest int64
	consider := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			return
		}
		s := strings.TrimSpace(string(b))
		n, err := strconv.ParseInt(s, 10, 64)
		// "max" (v2) or a huge page-rounded number (v1) mean no limit.
		if err != nil || n <= 0 || n >= 1<<60 {
			return
		}
		if lowest == 0 || n < lowest {
			lowest = n
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var base, file string
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			base, file = filepath.Join(root, "sys/fs/cgroup"), "memory.max"
		case hasController(parts[1], "memory"): // cgroup v1
			base, file = filepath.Join(root, "sys/fs/cgroup/memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		// In a container the cgroup path is often not visible under
		// /sys/fs/cgroup (a cgroup namespace mounts its own cgroup as the
		// root): walk from the path up to the root, reading what exists.
		p := filepath.Clean("/" + parts[2])
		for {
			consider(filepath.Join(base, p, file))
			if p == "/" {
				break
			}
			p = filepath.Dir(p)
		}
	}
	return lowest
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
