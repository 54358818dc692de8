package backup

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ManifestName is the manifest's file name in a snapshot directory.
const ManifestName = "manifest.jsonl"

const (
	manifestFormat  = "posthouse-backup"
	manifestVersion = 1
	// maxManifestLine bounds one line of a manifest read back (an entry is
	// a path and a few numbers).
	maxManifestLine = 64 << 10
)

// Entry kinds.
const (
	KindDir      = "dir"      // a directory of data_dir
	KindDatabase = "database" // a SQLite database, copied with the online backup API
	KindMessage  = "message"  // a message or spool file: never changes once written
	KindFile     = "file"     // any other file of data_dir, copied
	KindExternal = "external" // a file outside data_dir the configuration names
)

// Header is the manifest's first line.
type Header struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	Created  time.Time `json:"created"`
	DataDir  string    `json:"data_dir"`
	Previous string    `json:"previous,omitempty"` // the snapshot unchanged files were linked from
}

// Entry is one line of the manifest: a directory or file of the snapshot.
type Entry struct {
	// Path is slash-separated, relative to the snapshot directory:
	// data/<path in data_dir> or external/<name>.
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Mode   uint32 `json:"mode"` // permission bits
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Source and Role: for an external file, its absolute path and what
	// names it ("config", "tls.cert_file", …).
	Source string `json:"source,omitempty"`
	Role   string `json:"role,omitempty"`
}

// trailer is the last line: a manifest without it was cut short.
type trailer struct {
	End     bool `json:"end"`
	Entries int  `json:"entries"`
}

// Manifest is a snapshot's list of what it holds.
type Manifest struct {
	Header  Header
	Entries []Entry
}

// writeManifest writes m to dir/ManifestName and syncs it.
func writeManifest(dir string, m *Manifest) error {
	f, err := os.OpenFile(filepath.Join(dir, ManifestName), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	err = enc.Encode(m.Header)
	n := 0
	for i := 0; err == nil && i < len(m.Entries); i++ {
		if m.Entries[i].Kind == "" {
			continue // dropped while the backup ran
		}
		err = enc.Encode(m.Entries[i])
		n++
	}
	if err == nil {
		err = enc.Encode(trailer{End: true, Entries: n})
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ErrNoManifest means a directory holds no complete snapshot.
var ErrNoManifest = errors.New("no complete backup manifest")

// ReadManifest reads the manifest of the snapshot in dir.
func ReadManifest(dir string) (*Manifest, error) {
	f, err := os.Open(filepath.Join(dir, ManifestName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoManifest)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseManifest(f)
}

func parseManifest(r io.Reader) (*Manifest, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxManifestLine)
	m := &Manifest{}
	line := 0
	ended := false
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if ended {
			return nil, fmt.Errorf("manifest line %d: after the end", line)
		}
		switch line {
		case 1:
			if err := json.Unmarshal(b, &m.Header); err != nil {
				return nil, fmt.Errorf("manifest line 1: %w", err)
			}
			if m.Header.Format != manifestFormat || m.Header.Version != manifestVersion {
				return nil, fmt.Errorf("manifest: format %q version %d, want %q version %d",
					m.Header.Format, m.Header.Version, manifestFormat, manifestVersion)
			}
			continue
		}
		var e struct {
			Entry
			trailer
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("manifest line %d: %w", line, err)
		}
		if e.End {
			if e.trailer.Entries != len(m.Entries) {
				return nil, fmt.Errorf("manifest: %d entries, its end says %d", len(m.Entries), e.trailer.Entries)
			}
			ended = true
			continue
		}
		if err := e.Entry.check(); err != nil {
			return nil, fmt.Errorf("manifest line %d: %w", line, err)
		}
		m.Entries = append(m.Entries, e.Entry)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if line == 0 {
		return nil, fmt.Errorf("manifest: empty")
	}
	if !ended {
		return nil, fmt.Errorf("manifest: cut short (no end line)")
	}
	return m, nil
}

// check refuses an entry a restore must not act on: a path that would
// leave the snapshot or data_dir, an unknown kind.
func (e *Entry) check() error {
	if !filepath.IsLocal(filepath.FromSlash(e.Path)) || filepath.ToSlash(filepath.Clean(filepath.FromSlash(e.Path))) != e.Path {
		return fmt.Errorf("path %q is not a clean relative path", e.Path)
	}
	switch e.Kind {
	case KindDir, KindDatabase, KindMessage, KindFile:
		if e.Path != "data" && !hasPrefix(e.Path, "data/") {
			return fmt.Errorf("%s %q outside data/", e.Kind, e.Path)
		}
	case KindExternal:
		if !hasPrefix(e.Path, "external/") {
			return fmt.Errorf("external file %q outside external/", e.Path)
		}
	default:
		return fmt.Errorf("unknown kind %q", e.Kind)
	}
	if e.Kind != KindDir && len(e.SHA256) != 64 {
		return fmt.Errorf("%s: no checksum", e.Path)
	}
	if e.Size < 0 || e.Mode&^0o777 != 0 {
		return fmt.Errorf("%s: bad size or mode", e.Path)
	}
	return nil
}

func hasPrefix(s, p string) bool { return len(s) > len(p) && s[:len(p)] == p }
