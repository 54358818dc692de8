package durable

import (
	"os"
	"path/filepath"
	"strings"
)

// SyncDir fsyncs a directory so that a file created, renamed, linked or
// removed in it stays that way after a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// tempInfix follows the target's name in WriteFile's temporary file name.
const tempInfix = ".tmp"

// IsTemp reports whether name (a base name) is that of a temporary file
// WriteFile makes, which a crash may leave behind for start-up to remove.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, tempInfix)
}

// WriteFile replaces path with data, durably: through a temporary file in
// the same directory (a dot file, mode perm), fsync'd and renamed over
// path, then the directory fsync'd. On failure path is unchanged and the
// temporary file removed.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempInfix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return SyncDir(dir)
}
