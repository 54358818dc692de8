package durable

import (
	"errors"
	"os"
	"path/filepath"
)

// SyncFiles writes the given files' data and names (each file and the
// directory holding it) to the device, and waits for them. On Linux it is
// one syncfs(2) per file system they live on, a single device flush for
// any number of files (syncfs also writes whatever else is dirty there);
// elsewhere each file and each directory is fsynced. On a file system
// without a journal (ext4 without one, ext2), syncfs flushes the device's
// cache before it writes the last inode table and directory blocks: those
// are on stable storage only after the next flush, which any later fsync
// on that file system issues. A file or directory removed meanwhile is
// skipped. The first error is returned; the files are then not known to be
// written.
func SyncFiles(paths []string) error {
	return syncFiles(paths)
}

// fsyncEach is SyncFiles by one fsync per file and per directory.
func fsyncEach(paths []string) error {
	dirs := map[string]bool{}
	var first error
	for _, p := range paths {
		dirs[filepath.Dir(p)] = true
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil && first == nil {
			first = err
		}
	}
	for d := range dirs {
		if err := SyncDir(d); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}
