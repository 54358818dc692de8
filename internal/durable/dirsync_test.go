package durable

import (
	"errors"
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
	old := syncDir
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
	t.Cleanup(func() { syncDir = old })
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
