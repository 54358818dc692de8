// Package regfile opens regular files without offering them to Go's
// network poller.
//
// os.Open and os.OpenFile hand every new descriptor to the poller. On
// Linux, for a regular file, that is six system calls where one would do:
// the openat, fcntl twice to make the descriptor non-blocking, an
// epoll_ctl that fails (epoll refuses regular files), and fcntl twice
// more to make it blocking again. Under imaptest's stress workload those
// five extra calls were about 40 % of the CPU of opening the message
// files that FETCH reads (perf, 10 clients). Open and OpenFile here make
// the openat and one fcntl (os.NewFile asks whether the descriptor is
// non-blocking); the file then reads and writes with plain blocking
// system calls, as os.File does for a regular file after the failed
// epoll_ctl.
//
// Use them for regular files on hot paths (message files, spool files);
// pipes, sockets, FIFOs and terminals want os.Open, whose poller gives
// them deadlines and lets a blocked read be interrupted.
package regfile
