//go:build !linux

package durable

import (
	"errors"
	"sync/atomic"
)

// kernelSync: only Linux's kernel runs fsyncs asynchronously for us
// (asyncsync_linux.go); elsewhere goroutines do.
type kernelSync struct{}

var kernelSyncOn atomic.Bool

var errNoKernelSync = errors.New("durable: no asynchronous fsync on this system")

func startKernelSync(string) (*kernelSync, error) { return nil, errNoKernelSync }

func (*kernelSync) wait() error { return errNoKernelSync }

func (*kernelSync) poll() (bool, error) { return true, errNoKernelSync }

func kernelSyncUnsupported(error) bool { return true }
