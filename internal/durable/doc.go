// Package durable holds the file steps that "durable" means in Posthouse
// (write to a temporary file, fsync it, rename it into place, fsync the
// directory): SyncDir and WriteFile. The queue's spool, the maildir store and
// the self-signed certificate certs writes all use these, so the steps are
// written once. DirSyncer shares one directory fsync between concurrent
// writers (the maildir store's deliveries, the queue's Enqueue), and can
// start one (on Linux, in the kernel) for the caller to wait on later. It
// imports nothing of ours but golang.org/x/sys.
package durable
