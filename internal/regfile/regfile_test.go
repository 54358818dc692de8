//go:build unix

package regfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m")
	if err := os.WriteFile(path, []byte("Subject: hi\r\n\r\nbody\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Name() != path {
		t.Errorf("Name() = %q, want %q", f.Name(), path)
	}
	fl, err := fcntl(f, syscall.F_GETFD)
	if err != nil || fl&syscall.FD_CLOEXEC == 0 {
		t.Errorf("descriptor flags %#x (%v): not close-on-exec", fl, err)
	}
	fl, err = fcntl(f, syscall.F_GETFL)
	if err != nil || fl&syscall.O_NONBLOCK != 0 || fl&syscall.O_ACCMODE != syscall.O_RDONLY {
		t.Errorf("status flags %#x (%v): want blocking, read-only", fl, err)
	}
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, 15); err != nil || string(b) != "body" {
		t.Errorf("ReadAt = %q, %v", b, err)
	}
	all, err := io.ReadAll(f)
	if err != nil || string(all) != "Subject: hi\r\n\r\nbody\r\n" {
		t.Errorf("ReadAll = %q, %v", all, err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("Write to a file opened for reading succeeded")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := Open(missing)
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || pe.Path != missing || pe.Op != "open" {
		t.Errorf("Open(missing) = %v, want a *PathError (open, %s) that is ErrNotExist", err, missing)
	}

	path := filepath.Join(dir, "new")
	f, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 4 {
		t.Errorf("created file: %v, %v", fi, err)
	}
	if _, err := OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second exclusive create = %v, want ErrExist", err)
	}
}

func fcntl(f *os.File, cmd int) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		v     uintptr
		errno syscall.Errno
	)
	if err := rc.Control(func(fd uintptr) {
		v, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, uintptr(cmd), 0)
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return int(v), nil
}
