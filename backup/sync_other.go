//go:build !linux

package backup

import (
	"io/fs"
	"os"
	"path/filepath"
)

// syncTree makes everything written below dir durable: an fsync of every
// file and directory.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		return err
	})
}
