package durable

import "testing"

// TestKernelSyncUsed: on Linux the fsync is the kernel's to run (the
// development and CI kernels have AIO), and a missing directory does not
// turn that off.
func TestKernelSyncUsed(t *testing.T) {
	if !kernelSyncOn.Load() {
		t.Fatal("asynchronous fsync is off before any use")
	}
	var d DirSyncer
	if err := d.Sync(t.TempDir() + "/missing"); err == nil {
		t.Fatal("no error for a missing directory")
	}
	if !kernelSyncOn.Load() {
		t.Fatal("a missing directory turned asynchronous fsync off")
	}
	wait := d.Start(t.TempDir())
	if d.op == nil || d.op.k == nil {
		t.Fatal("the fsync did not go to the kernel")
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if !kernelSyncOn.Load() {
		t.Fatal("asynchronous fsync was turned off")
	}
}
