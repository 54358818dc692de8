package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// VerifyResult is what Verify checked and found.
type VerifyResult struct {
	Snapshot         string
	Databases, Files int
	Bytes            int64
	Problems         []string // one line each; none when the snapshot is sound
}

// maxProblems bounds the problems Verify lists (a snapshot gone wrong
// could have millions).
const maxProblems = 1000

// ErrDamaged is a snapshot that failed Verify.
var ErrDamaged = errors.New("backup damaged")

// Verify checks the snapshot in dir (or the newest one in a backup
// directory): every file listed in the manifest is there with its size and
// checksum, nothing else is, every database passes PRAGMA integrity_check,
// and every message or spool file a database references is in the
// snapshot. The error wraps ErrDamaged when a check failed; the result
// lists the problems.
func Verify(ctx context.Context, dir string) (*VerifyResult, error) {
	snap, err := Latest(dir)
	if err != nil {
		return nil, err
	}
	m, err := ReadManifest(snap)
	if err != nil {
		return nil, err
	}
	v := &VerifyResult{Snapshot: snap}
	problem := func(format string, args ...any) {
		if len(v.Problems) < maxProblems {
			v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
		}
	}
	listed := make(map[string]*Entry, len(m.Entries))
	for i := range m.Entries {
		e := &m.Entries[i]
		listed[e.Path] = e
	}
	for i := range m.Entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := &m.Entries[i]
		p := filepath.Join(snap, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			problem("%s: missing (%v)", e.Path, errors.Unwrap(err))
			continue
		}
		if e.Kind == KindDir {
			if !fi.IsDir() {
				problem("%s: not a directory", e.Path)
			}
			continue
		}
		if !fi.Mode().IsRegular() {
			problem("%s: not a regular file", e.Path)
			continue
		}
		sum, n, err := hashFile(p)
		if err != nil {
			problem("%s: %v", e.Path, err)
			continue
		}
		v.Files++
		v.Bytes += n
		if n != e.Size || sum != e.SHA256 {
			problem("%s: content differs from the manifest (size %d, listed %d)", e.Path, n, e.Size)
			continue
		}
		if e.Kind != KindDatabase {
			continue
		}
		v.Databases++
		if err := integrityCheck(ctx, p); err != nil {
			problem("%s: %v", e.Path, err)
			continue
		}
		rel := strings.TrimPrefix(e.Path, "data/")
		if ref, ok := referencingOf(rel); ok {
			files, err := ref.files(ctx, p)
			if err != nil {
				problem("%s: %v", e.Path, err)
				continue
			}
			for _, f := range files {
				fp := dataPath(path.Join(ref.base, f))
				if x := listed[fp]; x == nil || x.Kind != KindMessage {
					problem("%s references %s, which the backup lacks", e.Path, fp)
				}
			}
		}
	}
	// Anything not in the manifest was not written by the backup.
	err = filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(snap, p)
		rel = filepath.ToSlash(rel)
		if rel == "." || rel == ManifestName || rel == "external" {
			return nil
		}
		if listed[rel] == nil {
			problem("%s: in the snapshot but not in its manifest", rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(v.Problems) > 0 {
		return v, fmt.Errorf("%s: %w: %d problems", snap, ErrDamaged, len(v.Problems))
	}
	return v, nil
}

// integrityCheck runs PRAGMA integrity_check on the database at p.
func integrityCheck(ctx context.Context, p string) error {
	db, err := sqlitedb.OpenFile(p, true)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check(20)`)
	msgs, err := sqlitedb.Collect(rows, err, sqlitedb.Value[string])
	if err != nil {
		return fmt.Errorf("integrity_check: %w", err)
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return nil
	}
	return fmt.Errorf("integrity_check: %s", strings.Join(msgs, "; "))
}
