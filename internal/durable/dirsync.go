package durable

import "sync"

// DirSyncer makes renames (and links) into one directory durable, sharing
// fsyncs between concurrent callers (group fsync). A caller whose rename is done
// needs an fsync of the directory that began after the rename: one that
// is already running may have begun before it. So each caller waits for
// the next fsync to begin and end; the callers that arrive while one runs
// all share the one after it. At most one fsync of the directory runs at
// a time, and a lone caller pays exactly one fsync, as before.
//
// Start begins the fsync and returns at once, so the caller can do other
// work (commit its index row) while the directory is flushed. On Linux the
// fsync is handed to the kernel (asyncsync_linux.go) and starts at once;
// elsewhere, or where the kernel refuses, a goroutine runs it, which starts
// when the Go scheduler gets to it.
type DirSyncer struct {
	mu       sync.Mutex
	cond     sync.Cond
	op       *dirOp // the fsync under way (nil: none)
	reaping  bool   // a caller waits for op to end, outside mu
	started  uint64 // fsyncs begun
	finished uint64 // the last fsync that ended
	wanted   uint64 // the latest fsync a caller needs
	failed   uint64 // the last fsync that failed (0: none)
	lastErr  error  // its error
	waiting  int    // callers waiting for another caller to see an fsync end (tests)
}

// Sync fsyncs dir (or waits for an fsync of it that began after this
// call) and reports whether that fsync, and every later one that ended
// meanwhile, succeeded. A DirSyncer serves one directory.
func (d *DirSyncer) Sync(dir string) error {
	return d.Start(dir)()
}

// Start is Sync in two halves: it sees that an fsync of dir begins after
// this call (beginning one now unless one is under way), and the function
// it returns waits for that fsync to end and reports as Sync does. The
// function must be called, once.
func (d *DirSyncer) Start(dir string) (wait func() error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cond.L == nil {
		d.cond.L = &d.mu
	}
	need := d.started + 1
	d.wanted = max(d.wanted, need)
	if d.op != nil && !d.reaping {
		// The one under way may have ended: then the next can begin now
		// rather than when a caller comes to wait.
		if done, err := d.op.poll(); done {
			d.end(d.started, err)
		}
	}
	if d.op == nil {
		d.begin(dir)
	}
	return func() error { return d.wait(dir, need) }
}

// wait returns once fsync number need has ended.
func (d *DirSyncer) wait(dir string, need uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.finished < need {
		switch {
		case d.op == nil:
			d.begin(dir)
		case d.reaping:
			d.waiting++
			d.cond.Wait()
			d.waiting--
		default:
			op, gen := d.op, d.started
			d.reaping = true
			d.mu.Unlock()
			err := op.wait()
			d.mu.Lock()
			d.reaping = false
			d.end(gen, err)
			if d.wanted > d.finished {
				// Callers wait for the next one: it begins now.
				d.begin(dir)
			}
		}
	}
	// After a failed fsync a later one may succeed although the failed
	// one's writes were lost: any failure since need counts.
	if d.failed >= need {
		return d.lastErr
	}
	return nil
}

// begin starts the next fsync; the caller holds mu and no fsync is under
// way.
func (d *DirSyncer) begin(dir string) {
	d.started++
	d.op = beginDirSync(dir)
}

// end records the end of fsync gen; the caller holds mu.
func (d *DirSyncer) end(gen uint64, err error) {
	d.op = nil
	d.finished = gen
	if err != nil {
		d.failed, d.lastErr = gen, err
	}
	d.cond.Broadcast()
}

// DirSyncers holds a DirSyncer per directory. The zero value is ready.
type DirSyncers struct {
	mu sync.Mutex
	m  map[string]*DirSyncer
}

// Sync is DirSyncer.Sync with dir's own syncer.
func (ds *DirSyncers) Sync(dir string) error {
	return ds.get(dir).Sync(dir)
}

// Start is DirSyncer.Start with dir's own syncer.
func (ds *DirSyncers) Start(dir string) (wait func() error) {
	return ds.get(dir).Start(dir)
}

func (ds *DirSyncers) get(dir string) *DirSyncer {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.m == nil {
		ds.m = map[string]*DirSyncer{}
	}
	d := ds.m[dir]
	if d == nil {
		d = &DirSyncer{}
		ds.m[dir] = d
	}
	return d
}

// syncDir is SyncDir; tests replace it (which also keeps the fsync off the
// kernel's queue, so the fake runs).
var syncDir = SyncDir

// dirOp is one fsync of a directory under way: in the kernel, or on a
// goroutine.
type dirOp struct {
	k    *kernelSync
	done chan error
}

// beginDirSync starts an fsync of dir.
func beginDirSync(dir string) *dirOp {
	if kernelSyncOn.Load() {
		k, err := startKernelSync(dir)
		if err == nil {
			return &dirOp{k: k}
		}
		if !kernelSyncUnsupported(err) {
			// dir could not be opened: that is the fsync's outcome.
			o := &dirOp{done: make(chan error, 1)}
			o.done <- err
			return o
		}
		kernelSyncOn.Store(false)
	}
	o := &dirOp{done: make(chan error, 1)}
	go func() { o.done <- syncDir(dir) }()
	return o
}

// wait waits for the fsync to end.
func (o *dirOp) wait() error {
	if o.k != nil {
		return o.k.wait()
	}
	return <-o.done
}

// poll reports whether the fsync has ended, without waiting.
func (o *dirOp) poll() (done bool, err error) {
	if o.k != nil {
		return o.k.poll()
	}
	select {
	case err := <-o.done:
		return true, err
	default:
		return false, nil
	}
}
