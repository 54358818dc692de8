package durable

import "sync"

// DirSyncer makes renames (and links) into one directory durable, sharing
// fsyncs between concurrent callers (group fsync). A caller whose rename is done
// needs an fsync of the directory that began after the rename: one that
// is already running may have begun before it. So each caller waits for
// the next fsync to begin and end; the callers that arrive while one runs
// all share the one after it. At most one fsync of the directory runs at
// a time, and a lone caller pays exactly one fsync, as before.
type DirSyncer struct {
	mu       sync.Mutex
	cond     sync.Cond
	running  bool
	started  uint64 // fsyncs begun
	finished uint64 // the last fsync that ended
	failed   uint64 // the last fsync that failed (0: none)
	lastErr  error  // its error
	waiting  int    // callers waiting for an fsync to end (tests)
}

// syncDir is SyncDir; tests replace it.
var syncDir = SyncDir

// Sync fsyncs dir (or waits for an fsync of it that began after this
// call) and reports whether that fsync, and every later one that ended
// meanwhile, succeeded. A DirSyncer serves one directory.
func (d *DirSyncer) Sync(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cond.L == nil {
		d.cond.L = &d.mu
	}
	need := d.started + 1
	for d.finished < need {
		if d.running {
			d.waiting++
			d.cond.Wait()
			d.waiting--
			continue
		}
		d.running = true
		d.started++
		gen := d.started
		d.mu.Unlock()
		err := syncDir(dir)
		d.mu.Lock()
		d.running = false
		d.finished = gen
		if err != nil {
			d.failed, d.lastErr = gen, err
		}
		d.cond.Broadcast()
	}
	// After a failed fsync a later one may succeed although the failed
	// one's writes were lost: any failure since need counts.
	if d.failed >= need {
		return d.lastErr
	}
	return nil
}

// DirSyncers holds a DirSyncer per directory. The zero value is ready.
type DirSyncers struct {
	mu sync.Mutex
	m  map[string]*DirSyncer
}

// Sync is DirSyncer.Sync with dir's own syncer.
func (ds *DirSyncers) Sync(dir string) error {
	ds.mu.Lock()
	if ds.m == nil {
		ds.m = map[string]*DirSyncer{}
	}
	d := ds.m[dir]
	if d == nil {
		d = &DirSyncer{}
		ds.m[dir] = d
	}
	ds.mu.Unlock()
	return d.Sync(dir)
}
