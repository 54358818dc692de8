package maildir

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"sort"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/regfile"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// openAhead is how many messages' file names one lookup reads. A FETCH of
// bodies opens its messages in UID order; looking each one up alone cost a
// query per message (a fifth of the server's CPU in FETCH 1:1000
// BODY.PEEK[] of 50 KB messages), looking them up 256 at a time costs four.
const openAhead = 256

// fileWindow is a handle's last look-up of file names: the files of the
// messages of one mailbox with UIDs in [lo, hi] as the index listed them.
// A message's file is written once and never renamed or rewritten (doc.go,
// Layout), so a name read here stays right for as long as the message
// exists; once it is expunged its name is queued for the account's
// unlinker and then unlinked, and either sends the opener to the index,
// which answers ErrNoSuchMessage.
type fileWindow struct {
	mu        sync.Mutex
	mailboxID int64
	lo, hi    imap.UID
	files     []windowFile // ascending UID
}

type windowFile struct {
	uid  imap.UID
	file string
	size int64
}

// lookup returns uid's file from the window.
func (fw *fileWindow) lookup(mailboxID int64, uid imap.UID) (windowFile, bool) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.files == nil || fw.mailboxID != mailboxID || uid < fw.lo || uid > fw.hi {
		return windowFile{}, false
	}
	i := sort.Search(len(fw.files), func(i int) bool { return fw.files[i].uid >= uid })
	if i < len(fw.files) && fw.files[i].uid == uid {
		return fw.files[i], true
	}
	return windowFile{}, false
}

// openMessage is account.openMessage through the handle's window: a miss
// reads the next openAhead file names of the mailbox from uid on.
func (h *handle) openMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	wf, ok := h.files.lookup(mailboxID, uid)
	if !ok {
		if err := h.readWindow(ctx, mailboxID, uid); err != nil {
			return h.a.openMessage(ctx, mailboxID, uid)
		}
		wf, ok = h.files.lookup(mailboxID, uid)
	}
	if !ok {
		// Not in the index when the window was read: the slow path
		// tells a missing message from a missing mailbox.
		return h.a.openMessage(ctx, mailboxID, uid)
	}
	if h.a.unlink.queued(mailboxID, wf.file) {
		// Expunged since the window was read; the name waits for the
		// unlinker.
		return h.a.openMessage(ctx, mailboxID, uid)
	}
	f, err := regfile.Open(filepath.Join(h.a.mailboxDir(mailboxID), filepath.FromSlash(wf.file)))
	if err != nil {
		// Expunged since the window was read (its name is gone), or an
		// error the slow path reports properly.
		return h.a.openMessage(ctx, mailboxID, uid)
	}
	return f, wf.size, nil
}

// readWindow replaces the handle's window with the files of the first
// openAhead messages of the mailbox from uid on: one indexed range scan.
func (h *handle) readWindow(ctx context.Context, mailboxID int64, uid imap.UID) error {
	const q = `SELECT uid, file, size FROM messages WHERE mailbox = ? AND uid >= ? ORDER BY uid LIMIT ?`
	a := h.a
	a.stmtMu.Lock()
	db := a.db
	a.stmtMu.Unlock()
	if db == nil || a.gone.Load() {
		return errors.New("maildir: account closed")
	}
	rows, err := db.Read.QueryContext(sqlitedb.Quiet(ctx), q, mailboxID, int64(uid), openAhead)
	files, err := sqlitedb.Collect(rows, err, func(row sqlitedb.Scanner) (windowFile, error) {
		var (
			u  int64
			wf windowFile
		)
		err := row.Scan(&u, &wf.file, &wf.size)
		wf.uid = imap.UID(u)
		return wf, err
	})
	if err != nil {
		return err
	}
	// A window of fewer than openAhead ends with the mailbox's last
	// message: one delivered later is past hi and misses.
	hi := uid
	if len(files) > 0 {
		hi = files[len(files)-1].uid
	}
	h.files.mu.Lock()
	h.files.mailboxID, h.files.lo, h.files.hi, h.files.files = mailboxID, uid, hi, files
	h.files.mu.Unlock()
	return nil
}
