package diskspace

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Defaults for zero Options fields.
const (
	DefaultInterval  = time.Second
	DefaultWarnEvery = 10 * time.Minute
)

// Reserve is the free space to keep: the larger of Bytes and Percent of
// the file system's size. The zero Reserve keeps nothing.
type Reserve struct {
	Bytes   int64
	Percent float64 // 0 to 100
}

// DefaultReserve is the larger of 1 % and 200 MiB: room on a small disk
// for a mailbox's worth of expunges and the queue's pending deliveries.
var DefaultReserve = Reserve{Bytes: 200 << 20, Percent: 1}

// Of is the reserve in bytes on a file system of total bytes.
func (r Reserve) Of(total int64) int64 {
	return max(r.Bytes, int64(float64(total)*r.Percent/100))
}

// String writes the reserve as [limits] min_free_space reads it, sizes in
// bytes.
func (r Reserve) String() string {
	switch {
	case r.Percent > 0 && r.Bytes > 0:
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%, " + strconv.FormatInt(r.Bytes, 10)
	case r.Percent > 0:
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(r.Bytes, 10)
}

// Usage is one reading of the file system holding the directory.
type Usage struct {
	Free  int64 // bytes an unprivileged process may still use
	Total int64 // the file system's size in bytes
}

// Stat reads dir's file system (statfs).
func Stat(dir string) (Usage, error) { return statfs(dir) }

// Status is what Monitor.Status reports.
type Status struct {
	Usage
	Reserve int64     // the reserve in bytes on this file system
	Low     bool      // Free < Reserve
	Since   time.Time // start of the current episode; zero when not Low
	Checked time.Time // when Usage was read
	Err     error     // the last statfs error, if it failed
}

// Options configure a Monitor.
type Options struct {
	Dir     string // data_dir
	Reserve Reserve
	Logger  *slog.Logger
	// Interval is how long a reading is used before the next statfs;
	// default DefaultInterval.
	Interval time.Duration
	// WarnEvery bounds the repeated warning while low; default
	// DefaultWarnEvery.
	WarnEvery time.Duration
	// Stat replaces statfs (tests); Now replaces time.Now.
	Stat func(dir string) (Usage, error)
	Now  func() time.Time
}

// Monitor answers whether data_dir's free space is below the reserve,
// from a reading at most Interval old. Safe for concurrent use.
type Monitor struct {
	opts Options
	low  atomic.Bool
	// next is when the reading goes stale, in UnixNano; refreshing
	// admits one caller at a time to statfs.
	next       atomic.Int64
	refreshing atomic.Bool

	mu       sync.Mutex // guards the fields below
	status   Status
	lastWarn time.Time
}

// New returns a Monitor and takes its first reading.
func New(opts Options) *Monitor {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.WarnEvery <= 0 {
		opts.WarnEvery = DefaultWarnEvery
	}
	if opts.Stat == nil {
		opts.Stat = statfs
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{opts: opts}
	m.refreshing.Store(true)
	m.refresh(opts.Now())
	return m
}

// Low reports whether free space is below the reserve. A failing statfs
// keeps the last answer (and is logged): an unreadable disk is no reason
// to refuse mail that could be stored, nor to accept it blindly.
func (m *Monitor) Low() bool {
	if m == nil {
		return false
	}
	now := m.opts.Now()
	if now.UnixNano() >= m.next.Load() && m.refreshing.CompareAndSwap(false, true) {
		m.refresh(now)
	}
	return m.low.Load()
}

// Status returns the latest reading, refreshed first when stale.
func (m *Monitor) Status() Status {
	m.Low()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// refresh reads the disk; the caller holds refreshing.
func (m *Monitor) refresh(now time.Time) {
	defer m.refreshing.Store(false)
	u, err := m.opts.Stat(m.opts.Dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.next.Store(now.Add(m.opts.Interval).UnixNano())
	log := m.opts.Logger
	st := &m.status
	if err != nil {
		if st.Err == nil {
			log.Error("cannot read free disk space", "dir", m.opts.Dir, "err", err)
		}
		st.Err = err
		return
	}
	st.Err = nil
	st.Usage, st.Checked = u, now
	st.Reserve = m.opts.Reserve.Of(u.Total)
	low := u.Free < st.Reserve
	switch {
	case low && !st.Low:
		st.Low, st.Since, m.lastWarn = true, now, now
		log.Warn("free disk space below the reserve: refusing new mail, reads and deletions go on",
			"dir", m.opts.Dir, "free", u.Free, "reserve", st.Reserve)
	case low && now.Sub(m.lastWarn) >= m.opts.WarnEvery:
		m.lastWarn = now
		log.Warn("free disk space still below the reserve", "dir", m.opts.Dir, "free", u.Free,
			"reserve", st.Reserve, "dur", now.Sub(st.Since).Round(time.Second))
	case !low && st.Low:
		log.Info("free disk space back above the reserve: accepting mail again", "dir", m.opts.Dir,
			"free", u.Free, "reserve", st.Reserve, "dur", now.Sub(st.Since).Round(time.Millisecond))
		st.Low, st.Since = false, time.Time{}
	}
	m.low.Store(low)
}

// IsNoSpace reports whether err is a write that failed for want of space:
// ENOSPC, EDQUOT, or SQLite's SQLITE_FULL.
func IsNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrFull {
		return true
	}
	var sp *sqlite3.Error
	return errors.As(err, &sp) && sp != nil && sp.Code == sqlite3.ErrFull
}
