//go:build unix

package regfile

import (
	"os"
	"syscall"
)

// Open opens path for reading, as os.Open does.
func Open(path string) (*os.File, error) {
	return OpenFile(path, os.O_RDONLY, 0)
}

// OpenFile opens path with flag and, when it creates the file, perm, as
// os.OpenFile does (close-on-exec, errors as *os.PathError). perm's
// permission bits are used; the umask applies.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC, uint32(perm.Perm()))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
