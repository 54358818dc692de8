package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeSyncDir replaces syncDir for a test: each call takes its outcome
// from results, in order, and blocks until release has a value.
type fakeSyncDir struct {
	mu      sync.Mutex
	calls   int
	results []error
	release chan struct{}
}

func (f *fakeSyncDir) install(t *testing.T) {
	t.Helper()
	old, oldKernel := syncDir, kernelSyncOn.Load()
	kernelSyncOn.Store(false) // the fake runs on the goroutine path
	syncDir = func(string) error {
		f.mu.Lock()
		i := f.calls
		f.calls++
		f.mu.Unlock()
		<-f.release
		if i < len(f.results) {
			return f.results[i]
		}
		return nil
	}
	t.Cleanup(func() { syncDir = old; kernelSyncOn.Store(oldKernel) })
}

func (f *fakeSyncDir) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDirSyncerAlone(t *testing.T) {
	f := &fakeSyncDir{release: make(chan struct{})}
	close(f.release)
	f.install(t)
	var d DirSyncer
	for i := range 3 {
		if err := d.Sync("dir"); err != nil {
			t.Fatal(err)
		}
		if got := f.count(); got != i+1 {
			t.Fatalf("after %d lone calls: %d fsyncs, want one each", i+1, got)
		}
	}
}

// TestDirSyncerShares: callers that arrive while an fsync runs do not count
// on it (it may have begun before their rename) and share the next one; a
// failure reaches every caller it was meant to cover, and only them.
func TestDirSyncerShares(t *testing.T) {
	errDisk := errors.New("disk on fire")
	f := &fakeSyncDir{release: make(chan struct{}), results: []error{nil, errDisk, nil}}
	f.install(t)
	var d DirSyncer
	errs := make(chan error, 4)
	go func() { errs <- d.Sync("dir") }()
	waitFor(t, "the first fsync to start", func() bool { return f.count() == 1 })
	for range 3 {
		go func() { errs <- d.Sync("dir") }()
	}
	waitFor(t, "three callers to wait", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.waiting == 3
	})
	f.release <- struct{}{} // the first fsync ends, fine
	if err := <-errs; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	waitFor(t, "the shared fsync to start", func() bool { return f.count() == 2 })
	f.release <- struct{}{} // the shared one fails
	for range 3 {
		if err := <-errs; !errors.Is(err, errDisk) {
			t.Fatalf("waiting caller got %v, want the shared fsync's failure", err)
		}
	}
	if got := f.count(); got != 2 {
		t.Fatalf("%d fsyncs for 4 callers, want 2", got)
	}
	close(f.release)
	if err := d.Sync("dir"); err != nil {
		t.Fatalf("a caller after the failure: %v", err)
	}
}

// TestDirSyncerStartPolls: a caller that comes while an fsync is under way
// but already over begins the next one at once, instead of leaving it to
// whoever waits first.
func TestDirSyncerStartPolls(t *testing.T) {
	f := &fakeSyncDir{release: make(chan struct{})}
	f.install(t)
	var d DirSyncer
	wait1 := d.Start("dir")
	waitFor(t, "the first fsync to start", func() bool { return f.count() == 1 })
	f.release <- struct{}{}
	waitFor(t, "the first fsync to end", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.op.done) == 1
	})
	wait2 := d.Start("dir")
	d.mu.Lock()
	started, finished := d.started, d.finished
	d.mu.Unlock()
	if started != 2 || finished != 1 {
		t.Fatalf("after the second Start: %d fsyncs begun, %d ended; want 2 and 1", started, finished)
	}
	waitFor(t, "the second fsync to start", func() bool { return f.count() == 2 })
	if err := wait1(); err != nil {
		t.Fatalf("first caller: %v", err)
	}
	f.release <- struct{}{}
	if err := wait2(); err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if got := f.count(); got != 2 {
		t.Fatalf("%d fsyncs for 2 callers one after the other, want 2", got)
	}
}

// TestDirSyncerReal runs real fsyncs (on Linux, the kernel's asynchronous
// ones) from many goroutines, each after its own rename, and a directory
// that does not exist.
func TestDirSyncerReal(t *testing.T) {
	dir := t.TempDir()
	var ds DirSyncers
	const workers, rounds = 16, 20
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range rounds {
				tmp := filepath.Join(dir, fmt.Sprintf(".t%d-%d", w, i))
				if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
					errs <- err
					return
				}
				if err := os.Rename(tmp, filepath.Join(dir, fmt.Sprintf("f%d-%d", w, i))); err != nil {
					errs <- err
					return
				}
				if err := ds.Start(dir)(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	d := ds.get(dir)
	if d.started == 0 || d.started > workers*rounds || d.op != nil {
		t.Fatalf("%d fsyncs begun for %d callers (op under way: %v)", d.started, workers*rounds, d.op != nil)
	}
	err := ds.Sync(filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("fsync of a missing directory: %v, want not-exist", err)
	}
	if err := ds.Sync(dir); err != nil {
		t.Fatalf("after a missing directory: %v", err)
	}
}
