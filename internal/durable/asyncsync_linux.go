package durable

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelSync is an fsync of a directory that the kernel runs on its own
// (Linux AIO, IOCB_CMD_FSYNC, on a kernel worker since Linux 4.18): it
// begins when io_submit returns, whatever the Go scheduler is doing.
//
// Why: a delivery renames its file into cur/, then commits its index row
// while cur/ is fsynced. Started on a goroutine, that fsync waited behind
// the committing goroutine for a processor: under imaptest's load 1.5-2.4
// ms on average, longer than the fsync itself, which made the directory
// the last thing an APPEND waited for.
type kernelSync struct {
	fd  int
	ctx uintptr // aio_context_t
	dir string
}

// kernelSyncOn is cleared when the kernel refuses asynchronous fsyncs (no
// AIO, a seccomp filter, a file system without fsync for it): from then on
// goroutines run them.
var kernelSyncOn atomic.Bool

func init() { kernelSyncOn.Store(true) }

// iocb is the kernel's struct iocb (linux/aio_abi.h, little-endian).
type iocb struct {
	data      uint64
	key       uint32
	rwFlags   int32
	opcode    uint16
	reqprio   int16
	fildes    uint32
	buf       uint64
	nbytes    uint64
	offset    int64
	reserved2 uint64
	flags     uint32
	resfd     uint32
}

// ioEvent is the kernel's struct io_event.
type ioEvent struct {
	data uint64
	obj  uint64
	res  int64
	res2 int64
}

const iocbCmdFsync = 2

// aioContexts keeps AIO contexts (one request each) for reuse: a
// DirSyncer has at most one fsync under way, so there are about as many
// as directories being synced at once.
var aioContexts struct {
	mu   sync.Mutex
	free []uintptr
}

func getAIOContext() (uintptr, error) {
	aioContexts.mu.Lock()
	if n := len(aioContexts.free); n > 0 {
		ctx := aioContexts.free[n-1]
		aioContexts.free = aioContexts.free[:n-1]
		aioContexts.mu.Unlock()
		return ctx, nil
	}
	aioContexts.mu.Unlock()
	var ctx uintptr
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&ctx)), 0); e != 0 {
		return 0, e
	}
	return ctx, nil
}

func putAIOContext(ctx uintptr) {
	aioContexts.mu.Lock()
	aioContexts.free = append(aioContexts.free, ctx)
	aioContexts.mu.Unlock()
}

// startKernelSync opens dir and has the kernel fsync it.
func startKernelSync(dir string) (*kernelSync, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	ctx, err := getAIOContext()
	if err != nil {
		unix.Close(fd)
		return nil, &os.SyscallError{Syscall: "io_setup", Err: err}
	}
	cb := iocb{opcode: iocbCmdFsync, fildes: uint32(fd)}
	cbs := [1]*iocb{&cb}
	for {
		_, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, ctx, 1, uintptr(unsafe.Pointer(&cbs[0])))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			putAIOContext(ctx)
			unix.Close(fd)
			return nil, &os.SyscallError{Syscall: "io_submit", Err: e}
		}
		break
	}
	return &kernelSync{fd: fd, ctx: ctx, dir: dir}, nil
}

// wait waits for the fsync to end and reports its result.
func (k *kernelSync) wait() error {
	_, err := k.reap(nil)
	return err
}

// poll reports the fsync's result if it has ended.
func (k *kernelSync) poll() (done bool, err error) {
	return k.reap(&unix.Timespec{})
}

func (k *kernelSync) reap(timeout *unix.Timespec) (done bool, err error) {
	var ev ioEvent
	for {
		n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, k.ctx, 1, 1, uintptr(unsafe.Pointer(&ev)), uintptr(unsafe.Pointer(timeout)), 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			// The request's fate is unknown: its context is not reused,
			// and the caller hears of a failed fsync.
			unix.Close(k.fd)
			return true, &os.PathError{Op: "fsync (io_getevents)", Path: k.dir, Err: e}
		}
		if n == 0 {
			return false, nil
		}
		break
	}
	putAIOContext(k.ctx)
	unix.Close(k.fd)
	if ev.res < 0 {
		return true, &os.PathError{Op: "fsync", Path: k.dir, Err: unix.Errno(-ev.res)}
	}
	return true, nil
}

// kernelSyncUnsupported says whether err, from startKernelSync, means the
// kernel will not run asynchronous fsyncs here, rather than that the
// directory could not be opened.
func kernelSyncUnsupported(err error) bool {
	var se *os.SyscallError
	return errors.As(err, &se)
}
