package main

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Modes of everything under data_dir: owner-only.
const (
	privateDirMode  fs.FileMode = 0o700
	privateFileMode fs.FileMode = 0o600
)

// modesMarker, in data_dir, records that every file under it was made
// private once, so later starts only check the top level.
const modesMarker = ".private-modes"

// makePrivate makes data_dir and what lies under it owner-only, for
// installs from before Posthouse created everything that way. The first
// start walks the whole tree once (every message file included) and records
// it in modesMarker; later starts only fix data_dir and its direct entries,
// since new files are created private (privateUmask, and the packages' own
// modes) and the databases tighten their files when opened. Symbolic links
// are left alone. Failures are logged, not fatal: the server works either
// way.
func makePrivate(dataDir string, log *slog.Logger) {
	start := time.Now()
	fixed, failed := 0, 0
	fix := func(path string, info fs.FileInfo) {
		want := privateFileMode
		switch {
		case info.IsDir():
			want = privateDirMode
		case !info.Mode().IsRegular():
			return
		}
		if info.Mode().Perm() == want {
			return
		}
		if err := os.Chmod(path, want); err != nil {
			failed++
			log.Error("cannot make file private", "path", path, "err", err)
			return
		}
		fixed++
	}
	if info, err := os.Lstat(dataDir); err == nil {
		fix(dataDir, info)
	}
	marker := filepath.Join(dataDir, modesMarker)
	_, err := os.Stat(marker)
	full := os.IsNotExist(err)
	if full {
		filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || path == dataDir {
				return nil
			}
			if info, err := d.Info(); err == nil {
				fix(path, info)
			}
			return nil
		})
	} else {
		ents, _ := os.ReadDir(dataDir)
		for _, e := range ents {
			if info, err := e.Info(); err == nil {
				fix(filepath.Join(dataDir, e.Name()), info)
			}
		}
	}
	if fixed > 0 {
		log.Warn("made files under data_dir private (owner-only)", "changed", fixed, "full_walk", full,
			"dur", time.Since(start).Round(time.Millisecond))
	}
	if full && failed == 0 {
		err := os.WriteFile(marker, []byte("Every file under this directory was made owner-only; new ones are created so.\n"), privateFileMode)
		if err != nil {
			log.Error("cannot record that data_dir is private", "path", marker, "err", err)
		}
	}
}
