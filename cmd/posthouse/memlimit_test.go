package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/config"
)

// fakeRoot lays out files under a temporary root: path → content.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo8G = "MemTotal:        8388608 kB\nMemFree:         1000 kB\n"

func TestAvailableMemory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  int64
		from  string
	}{
		{"no cgroup limit (v2 max)", map[string]string{
			"proc/meminfo": meminfo8G, "proc/self/cgroup": "0::/system.slice/posthouse.service\n",
			"sys/fs/cgroup/system.slice/posthouse.service/memory.max": "max\n",
		}, 8 << 30, "MemTotal"},
		{"v2 limit on the service", map[string]string{
			"proc/meminfo": meminfo8G, "proc/self/cgroup": "0::/system.slice/posthouse.service\n",
			"sys/fs/cgroup/system.slice/posthouse.service/memory.max": "1073741824\n",
			"sys/fs/cgroup/system.slice/memory.max":                   "max\n",
		}, 1 << 30, "cgroup memory limit"},
		{"v2 lower limit on a parent", map[string]string{
			"proc/meminfo": meminfo8G, "proc/self/cgroup": "0::/a/b\n",
			"sys/fs/cgroup/a/b/memory.max": "2147483648\n", "sys/fs/cgroup/a/memory.max": "536870912\n",
		}, 512 << 20, "cgroup memory limit"},
		{"v2 in a cgroup namespace (own cgroup at the root)", map[string]string{
			"proc/meminfo": meminfo8G, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "268435456\n",
		}, 256 << 20, "cgroup memory limit"},
		{"v1 unlimited", map[string]string{
			"proc/meminfo": meminfo8G, "proc/self/cgroup": "4:memory:/docker/abc\n1:cpu:/\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",
		}, 8 << 30, "MemTotal"},
		{"v1 limit", map[string]string{
			"proc/meminfo": meminfo8G, "proc/self/cgroup": "4:cpu,memory:/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "805306368\n",
		}, 768 << 20, "cgroup memory limit"},
		{"limit above MemTotal", map[string]string{
			"proc/meminfo": meminfo8G, "proc/self/cgroup": "0::/x\n", "sys/fs/cgroup/x/memory.max": "17179869184\n",
		}, 8 << 30, "MemTotal"},
		{"nothing readable", map[string]string{}, 0, "MemTotal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, from := availableMemory(fakeRoot(t, tc.files))
			if got != tc.want || (got != 0 && from != tc.from) {
				t.Errorf("= %d (%s), want %d (%s)", got, from, tc.want, tc.from)
			}
		})
	}
}

func TestApplyMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // the variable wins when set; not here
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	root := fakeRoot(t, map[string]string{"proc/meminfo": meminfo8G, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"})
	for _, tc := range []struct {
		name, setting string
		want          int64
		log           string
	}{
		{"auto", "auto", (8 << 30) * 8 / 10 &^ (1<<20 - 1), "80% of MemTotal 8192MiB"},
		{"percent", "50%", 4 << 30, "50% of MemTotal"},
		{"size", "300MiB", 300 << 20, "limit=300MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := config.Default()
			cfg.Limits.MemoryLimit = tc.setting
			applyMemoryLimit(cfg, slog.New(slog.NewTextHandler(&logs, nil)), root)
			if got := debug.SetMemoryLimit(-1); got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
			if strings.Count(logs.String(), "memory limit") != 1 || !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log = %q, want one line with %q", logs.String(), tc.log)
			}
		})
	}
}
