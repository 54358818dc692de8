package metrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	// dailyFile holds the hourly counts behind Last24h, in data_dir.
	dailyFile = "metrics-24h.json"
	// dailyHours buckets are kept: the current hour and the 24 before it
	// (one more than Last24h sums, so the hour just ended is never lost
	// to a bucket being reused).
	dailyHours = 25
	// maxDailyFile bounds what loadDaily reads; the real file is about 2 KB.
	maxDailyFile = 64 << 10
)

// hourBucket is one hour's counts; Hour is Unix seconds / 3600.
type hourBucket struct {
	Hour     int64 `json:"hour"`
	In       int64 `json:"in"`
	Out      int64 `json:"out"`
	Rejected int64 `json:"rejected"`
}

// dailyState is the file's content.
type dailyState struct {
	Version int          `json:"version"`
	Hours   []hourBucket `json:"hours"`
}

// daily holds the hourly buckets, indexed by hour modulo dailyHours.
type daily struct {
	path  string
	mu    sync.Mutex
	b     [dailyHours]hourBucket
	dirty bool
}

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// loadDaily reads dir's file if there is one. A damaged file is logged and
// ignored (the counts start afresh): a dashboard number is not worth
// refusing to start over.
func loadDaily(dir string, log *slog.Logger) (*daily, error) {
	d := &daily{path: filepath.Join(dir, dailyFile)}
	f, err := os.Open(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDailyFile+1))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	hours, err := parseDaily(data)
	if err != nil {
		log.Warn("ignoring the saved 24-hour message counts", "file", d.path, "err", err)
		return d, nil
	}
	for _, h := range hours {
		d.b[h.Hour%dailyHours] = h
	}
	return d, nil
}

// parseDaily decodes and checks a saved file: at most maxDailyFile bytes,
// version 1, at most dailyHours buckets with distinct, non-negative hours
// and non-negative counts.
func parseDaily(data []byte) ([]hourBucket, error) {
	if len(data) > maxDailyFile {
		return nil, errors.New("file too large")
	}
	var st dailyState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("unknown version %d", st.Version)
	}
	if len(st.Hours) > dailyHours {
		return nil, fmt.Errorf("%d hours, at most %d", len(st.Hours), dailyHours)
	}
	seen := map[int64]bool{}
	for _, h := range st.Hours {
		if h.Hour < 0 || h.In < 0 || h.Out < 0 || h.Rejected < 0 {
			return nil, errors.New("negative value")
		}
		if seen[h.Hour%dailyHours] {
			return nil, errors.New("two buckets for one slot")
		}
		seen[h.Hour%dailyHours] = true
	}
	return st.Hours, nil
}

// bucket returns the bucket of hour, emptied if it held an older hour.
func (d *daily) bucket(hour int64) *hourBucket {
	b := &d.b[((hour%dailyHours)+dailyHours)%dailyHours]
	if b.Hour != hour {
		*b = hourBucket{Hour: hour}
	}
	return b
}

func (d *daily) add(now time.Time, in, out, rejected int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.bucket(hourOf(now))
	b.In += in
	b.Out += out
	b.Rejected += rejected
	d.dirty = true
}

// sum adds up the hour of now and the 23 before it.
func (d *daily) sum(now time.Time) Summary {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := hourOf(now)
	var s Summary
	for _, b := range d.b {
		if b.Hour > cur-24 && b.Hour <= cur {
			s.In += b.In
			s.Out += b.Out
			s.Rejected += b.Rejected
		}
	}
	return s
}

// save writes the buckets if they changed: a temporary file, fsynced,
// renamed over the old one, and the directory fsynced.
func (d *daily) save() error {
	d.mu.Lock()
	if !d.dirty {
		d.mu.Unlock()
		return nil
	}
	st := dailyState{Version: 1}
	for _, b := range d.b {
		if b != (hourBucket{}) {
			st.Hours = append(st.Hours, b)
		}
	}
	d.dirty = false
	d.mu.Unlock()

	data, err := json.Marshal(st)
	if err == nil {
		err = writeFileAtomic(d.path, data)
	}
	if err != nil {
		d.mu.Lock()
		d.dirty = true
		d.mu.Unlock()
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}
