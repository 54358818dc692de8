package backup

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncTree makes everything written below dir durable: on Linux one
// syncfs of dir's file system, instead of an fsync per file.
func syncTree(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
