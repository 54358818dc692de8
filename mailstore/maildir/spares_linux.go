package maildir

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const sparesSupported = true

// newSpare creates an unnamed file on dir's file system.
func newSpare(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(spare)"), nil
}

// linkSpare gives an unnamed file its name (through /proc, which needs no
// privilege, unlike AT_EMPTY_PATH).
func linkSpare(f *os.File, path string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil {
		return &os.LinkError{Op: "link spare", Old: f.Name(), New: path, Err: err}
	}
	return nil
}

// spareUnsupported says whether err, from newSpare, means the file system
// does not offer unnamed files (kernels before 3.11 answer EISDIR).
func spareUnsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR)
}
