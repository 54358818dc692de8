package maildir

import (
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Spare files: a mailbox that receives mail steadily keeps a few unnamed
// files ready (O_TMPFILE on its file system), created in the background,
// and a delivery or APPEND links one into tmp/ and writes into it instead
// of creating its file while the sender waits.
//
// Creating a file is the costliest system call of a delivery where the
// file system hunts for a free inode: ext4 without a journal skips every
// inode freed in the last minute or more, reading its table block each
// time, and a server that expunges mail frees many. On the development
// machine the open(O_CREAT) of the message file took 0.5-1.1 ms of the
// 2.9 ms a message took over one SMTP connection, more than its three
// fsyncs together, and it holds tmp/'s lock meanwhile. An unnamed file is
// created without any directory's lock and linked into tmp/ in
// microseconds: the work is the same, but it moves off the sender's path.
//
// A mailbox gets spares once two messages arrive within spareWarm of each
// other, so an account that receives a message a day never holds any. A
// spare has no name until used, so nothing is left on disk when the
// account closes or the process dies. Once linked, the message is written,
// fsynced, renamed into cur/ and cur/ fsynced exactly as one written into a
// new file. Where unnamed files are not supported (another OS, a file
// system without O_TMPFILE) the first attempt fails and deliveries create
// their files as before.

const (
	// spareTarget is how many spares a warm mailbox keeps: each is an
	// open descriptor.
	spareTarget = 4
	// spareWarm: a mailbox gets spares when two messages arrive within
	// this of each other.
	spareWarm = 10 * time.Second
)

// sparePool holds an account's spares, by mailbox.
type sparePool struct {
	mu     sync.Mutex
	boxes  map[int64]*spareBox
	closed bool
	// off is set once an unnamed file could not be created or linked:
	// the file system does not support them.
	off bool
}

type spareBox struct {
	files   []*os.File
	filling bool // a filler runs
	dead    bool // dropped
	last    time.Time
}

// take returns an unnamed spare file of the mailbox, if it has one, and
// keeps the mailbox supplied: it starts a filler when the mailbox is warm
// and below spareTarget.
func (p *sparePool) take(a *account, mailboxID int64) *os.File {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.off || !sparesSupported {
		return nil
	}
	if p.boxes == nil {
		p.boxes = map[int64]*spareBox{}
	}
	b := p.boxes[mailboxID]
	now := time.Now()
	if b == nil {
		p.boxes[mailboxID] = &spareBox{last: now}
		return nil
	}
	warm := now.Sub(b.last) < spareWarm
	b.last = now
	var f *os.File
	if n := len(b.files); n > 0 {
		f = b.files[n-1]
		b.files = b.files[:n-1]
	}
	if (warm || f != nil) && !b.filling && len(b.files) < spareTarget {
		b.filling = true
		go p.fill(a, mailboxID, b)
	}
	return f
}

// fill creates spares for the mailbox until it holds spareTarget or the
// mailbox or the account goes. A failed create ends it quietly (and turns
// spares off for the account if the file system lacks them).
func (p *sparePool) fill(a *account, mailboxID int64, b *spareBox) {
	dir := filepath.Join(a.mailboxDir(mailboxID), "tmp")
	for {
		p.mu.Lock()
		if b.dead || p.closed || len(b.files) >= spareTarget {
			b.filling = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		f, err := newSpare(dir)
		p.mu.Lock()
		if err != nil || b.dead || p.closed {
			b.filling = false
			if err != nil && spareUnsupported(err) {
				p.off = true
			}
			p.mu.Unlock()
			if f != nil {
				f.Close()
			}
			return
		}
		b.files = append(b.files, f)
		p.mu.Unlock()
	}
}

// unsupported turns spares off for the account (linking failed).
func (p *sparePool) unsupported() {
	p.mu.Lock()
	p.off = true
	p.mu.Unlock()
}

// drop closes a mailbox's spares and stops its filler (the mailbox is
// deleted).
func (p *sparePool) drop(mailboxID int64) {
	p.mu.Lock()
	b := p.boxes[mailboxID]
	delete(p.boxes, mailboxID)
	var files []*os.File
	if b != nil {
		b.dead = true
		files, b.files = b.files, nil
	}
	p.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
}

// close closes every spare; take hands out none after it.
func (p *sparePool) close() {
	p.mu.Lock()
	p.closed = true
	var files []*os.File
	for _, b := range p.boxes {
		b.dead = true
		files = append(files, b.files...)
		b.files = nil
	}
	p.boxes = nil
	p.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
}
