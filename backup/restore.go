package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	// Dir is a snapshot, or a backup directory (its newest snapshot).
	Dir     string
	DataDir string
	// Force restores into a data_dir that is not empty, after deleting
	// what it holds. The server must not be running on it.
	Force bool
	// ConfigTo, if set, is where the saved configuration file is written
	// (not over an existing file unless Force).
	ConfigTo string
}

// RestoreResult is what Restore did.
type RestoreResult struct {
	Snapshot string
	Files    int
	Bytes    int64
	// External lists the files saved from outside data_dir, which Restore
	// leaves in the snapshot (except the configuration with ConfigTo).
	External []Entry
	// ConfigWritten is ConfigTo when the configuration was written there.
	ConfigWritten string
	Duration      time.Duration
}

// ErrNotEmpty is a restore into a data_dir that holds something, without
// Force.
var ErrNotEmpty = errors.New("data_dir is not empty")

// Restore copies a snapshot into an empty data_dir: the databases as they
// were saved (so every mailbox keeps its UIDVALIDITY, UIDs, flags and
// modseqs, and clients do not download anything again), message and
// spool files, and the other files. Every file's checksum is checked as it
// is copied; on a mismatch Restore stops and says so, leaving a partial
// data_dir that a restore with Force replaces.
func Restore(ctx context.Context, opts RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	snap, err := Latest(opts.Dir)
	if err != nil {
		return nil, err
	}
	m, err := ReadManifest(snap)
	if err != nil {
		return nil, err
	}
	if in, err := inside(opts.DataDir, snap); err == nil && in {
		return nil, fmt.Errorf("restore: data_dir %s is inside the backup", opts.DataDir)
	}
	if err := prepareDataDir(opts.DataDir, opts.Force); err != nil {
		return nil, err
	}
	res := &RestoreResult{Snapshot: snap}
	for _, e := range m.Entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		src := filepath.Join(snap, filepath.FromSlash(e.Path))
		if e.Kind == KindExternal {
			res.External = append(res.External, e)
			continue
		}
		rel, _ := filepath.Rel("data", filepath.FromSlash(e.Path))
		dst := filepath.Join(opts.DataDir, rel)
		if e.Kind == KindDir {
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
			if err := os.Chmod(dst, os.FileMode(e.Mode)|0o700); err != nil {
				return nil, fmt.Errorf("restore: %w", err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if err := copyChecked(src, dst, e); err != nil {
			return nil, fmt.Errorf("restore: %w (data_dir %s now holds a partial restore: restore again with --force)", err, opts.DataDir)
		}
		res.Files++
		res.Bytes += e.Size
	}
	if opts.ConfigTo != "" {
		if err := restoreConfig(snap, res.External, opts.ConfigTo, opts.Force); err != nil {
			return nil, err
		}
		res.ConfigWritten = opts.ConfigTo
	}
	if err := syncTree(opts.DataDir); err != nil {
		return nil, fmt.Errorf("restore: sync: %w", err)
	}
	res.Duration = time.Since(start)
	return res, nil
}

// prepareDataDir makes sure dir exists and is empty: created if missing,
// emptied with force.
func prepareDataDir(dir string, force bool) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if len(ents) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("restore: %s: %w (%d entries); restore into an empty one, or use --force to delete what it holds",
			dir, ErrNotEmpty, len(ents))
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	return nil
}

// copyChecked copies the snapshot's file src to dst and checks it against
// its manifest entry.
func copyChecked(src, dst string, e Entry) error {
	sum, n, err := copyFile(src, dst, os.FileMode(e.Mode)&0o777)
	if err != nil {
		return err
	}
	if n != e.Size || sum != e.SHA256 {
		return fmt.Errorf("%s: content differs from the manifest", e.Path)
	}
	return nil
}

// restoreConfig writes the saved configuration file to dst.
func restoreConfig(snap string, ext []Entry, dst string, force bool) error {
	for _, e := range ext {
		if e.Role != "config" {
			continue
		}
		if _, err := os.Stat(dst); err == nil {
			if !force {
				return fmt.Errorf("restore: %s exists; use --force to replace it", dst)
			}
			if err := os.Remove(dst); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		}
		if err := copyChecked(filepath.Join(snap, filepath.FromSlash(e.Path)), dst, e); err != nil {
			return fmt.Errorf("restore: configuration: %w", err)
		}
		return nil
	}
	return fmt.Errorf("restore: the backup holds no configuration file")
}
