package diskspace

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"
)

func TestReserveOf(t *testing.T) {
	r := DefaultReserve
	if got := r.Of(1 << 30); got != 200<<20 { // 1 % of 1 GiB is ~10 MiB
		t.Errorf("default reserve on 1 GiB = %d, want 200 MiB", got)
	}
	if got := r.Of(100 << 30); got != 1<<30 { // 1 % of 100 GiB
		t.Errorf("default reserve on 100 GiB = %d, want 1 GiB", got)
	}
}

// fakeDisk is a file system whose free space the test sets.
type fakeDisk struct {
	mu    sync.Mutex
	free  int64
	total int64
	err   error
	calls int
}

func (d *fakeDisk) stat(string) (Usage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return Usage{Free: d.free, Total: d.total}, d.err
}

func (d *fakeDisk) set(free int64, err error) {
	d.mu.Lock()
	d.free, d.err = free, err
	d.mu.Unlock()
}

func TestMonitor(t *testing.T) {
	disk := &fakeDisk{free: 500, total: 1000}
	now := time.Unix(1_800_000_000, 0)
	var logs bytes.Buffer
	m := New(Options{
		Dir:       "/data",
		Reserve:   Reserve{Bytes: 100, Percent: 20}, // 200 of 1000
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		Stat:      disk.stat,
		Now:       func() time.Time { return now },
		Interval:  time.Second,
		WarnEvery: time.Minute,
	})
	step := func(d time.Duration) { now = now.Add(d) }

	if m.Low() {
		t.Fatal("Low with 500 free of a 200 reserve")
	}
	// The reading is cached for Interval: no statfs per call.
	for range 1000 {
		m.Low()
	}
	if disk.calls != 1 {
		t.Fatalf("statfs ran %d times within one interval, want 1", disk.calls)
	}

	disk.set(150, nil)
	if m.Low() {
		t.Fatal("Low changed before the cached reading went stale")
	}
	step(time.Second)
	if !m.Low() {
		t.Fatal("not Low with 150 free of a 200 reserve")
	}
	st := m.Status()
	if st.Free != 150 || st.Reserve != 200 || !st.Low || !st.Since.Equal(now) {
		t.Fatalf("Status = %+v", st)
	}
	// Ten minutes low, read every second: the first warning, then one per
	// WarnEvery.
	for range 600 {
		step(time.Second)
		if !m.Low() {
			t.Fatal("Low went away while the disk stayed full")
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 11 {
		t.Errorf("%d warnings in 10 minutes low, want 1 + 10:\n%s", n, logs.String())
	}
	// A failing statfs keeps the last answer, logged once.
	disk.set(150, syscall.EIO)
	for range 5 {
		step(time.Second)
		if !m.Low() {
			t.Fatal("a failing statfs ended the episode")
		}
	}
	if n := strings.Count(logs.String(), "cannot read free disk space"); n != 1 {
		t.Errorf("statfs failure logged %d times, want 1", n)
	}
	if m.Status().Err == nil {
		t.Error("Status hides the statfs error")
	}
	disk.set(900, nil)
	step(time.Second)
	if m.Low() {
		t.Fatal("still Low with 900 free")
	}
	if !strings.Contains(logs.String(), "back above the reserve") || !strings.Contains(logs.String(), "dur=10m6s") {
		t.Errorf("recovery not logged with the episode's duration:\n%s", logs.String())
	}
	if st := m.Status(); st.Low || !st.Since.IsZero() || st.Err != nil {
		t.Errorf("Status after recovery = %+v", st)
	}
}

func TestMonitorNil(t *testing.T) {
	var m *Monitor
	if m.Low() {
		t.Fatal("a nil Monitor is Low")
	}
}

func TestStatRealDir(t *testing.T) {
	u, err := Stat(t.TempDir())
	if err != nil {
		t.Skipf("statfs not available here: %v", err)
	}
	if u.Total <= 0 || u.Free < 0 || u.Free > u.Total {
		t.Fatalf("Stat = %+v", u)
	}
}

func TestIsNoSpace(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil},
		{name: "enospc", err: syscall.ENOSPC, want: true},
		{name: "wrapped path error", err: fmt.Errorf("deliver: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), want: true},
		{name: "edquot", err: &os.SyscallError{Syscall: "fsync", Err: syscall.EDQUOT}, want: true},
		{name: "sqlite full", err: fmt.Errorf("commit: %w", sqlite3.Error{Code: sqlite3.ErrFull}), want: true},
		{name: "sqlite busy", err: sqlite3.Error{Code: sqlite3.ErrBusy}},
		{name: "eio", err: syscall.EIO},
		{name: "other", err: errors.New("disk full")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsNoSpace(tc.err); got != tc.want {
				t.Errorf("IsNoSpace(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
