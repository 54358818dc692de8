package durable

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// syncFiles runs syncfs once per file system holding one of paths'
// directories. A directory removed meanwhile took its files with it.
func syncFiles(paths []string) error {
	seenDir := map[string]bool{}
	seenDev := map[uint64]bool{}
	for _, p := range paths {
		dir := filepath.Dir(p)
		if seenDir[dir] {
			continue
		}
		seenDir[dir] = true
		d, err := os.Open(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed, with whatever it held
		}
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(d.Fd()), &st); err != nil {
			d.Close()
			return err
		}
		if seenDev[st.Dev] {
			d.Close()
			continue
		}
		seenDev[st.Dev] = true
		err = unix.Syncfs(int(d.Fd()))
		d.Close()
		if err == unix.ENOSYS {
			return fsyncEach(paths)
		}
		if err != nil {
			return &os.PathError{Op: "syncfs", Path: dir, Err: err}
		}
	}
	return nil
}
