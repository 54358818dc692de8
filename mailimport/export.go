package mailimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailfile"
	"github.com/posthouse/posthouse/mailstore"
)

// Format is an export's file format.
type Format string

const (
	// FormatMaildir is a Maildir++ tree: flags in file names, keywords in
	// dovecot-keywords, internal dates as modification times.
	FormatMaildir Format = "maildir"
	// FormatMbox is one mboxrd file per mailbox, "<name>.mbox", with
	// '/' levels as directories.
	FormatMbox Format = "mbox"
)

// ExportAccount is the part of mailstore.Account Export reads.
type ExportAccount interface {
	ListMailboxes(ctx context.Context) ([]mailstore.Mailbox, error)
	Snapshot(ctx context.Context, mailboxID int64) (mailstore.Snapshot, error)
	Fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error)
	OpenMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error)
}

// ErrDirNotEmpty: Export refuses to mix its files with others.
var ErrDirNotEmpty = errors.New("mailimport: export directory is not empty")

// exportBatch is how many index rows Export reads at once.
const exportBatch = 500

// Export writes every mailbox of acct into dir (created 0700; it must not
// exist or be empty) in the given format, in UID order. progress, if set,
// is called after every message.
func Export(ctx context.Context, acct ExportAccount, dir string, format Format, progress func(Progress)) (Summary, error) {
	if format != FormatMaildir && format != FormatMbox {
		return Summary{}, fmt.Errorf("mailimport: unknown export format %q", format)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return Summary{}, fmt.Errorf("%w: %s", ErrDirNotEmpty, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Summary{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Summary{}, err
	}
	list, err := acct.ListMailboxes(ctx)
	if err != nil {
		return Summary{}, err
	}
	var md *mailfile.MaildirWriter
	if format == FormatMaildir {
		if md, err = mailfile.NewMaildirWriter(dir); err != nil {
			return Summary{}, err
		}
	}
	var prog Progress
	snaps := make([]mailstore.Snapshot, 0, len(list))
	for _, mb := range list {
		snap, err := acct.Snapshot(ctx, mb.ID)
		if err != nil {
			return Summary{}, fmt.Errorf("mailimport: export %s: %w", mb.Name, err)
		}
		prog.Total += int64(len(snap.Messages))
		snaps = append(snaps, mailstore.Snapshot{Mailbox: mb, Messages: snap.Messages})
	}
	sum := Summary{Skipped: map[string]int64{}}
	for _, snap := range snaps {
		mb := snap.Mailbox
		var w folderWriter
		if md != nil {
			fw, err := md.Folder(mb.Name)
			if err != nil {
				return sum, err
			}
			w = fw
		} else {
			mw, err := newMboxFile(filepath.Join(dir, filepath.FromSlash(mb.Name)+".mbox"))
			if err != nil {
				return sum, err
			}
			w = mw
		}
		sum.Mailboxes = append(sum.Mailboxes, mb.Name)
		msgs := snap.Messages
		for len(msgs) > 0 {
			n := min(len(msgs), exportBatch)
			var set imap.UIDSet
			for _, m := range msgs[:n] {
				set.AddNum(m.UID)
			}
			msgs = msgs[n:]
			infos, err := acct.Fetch(ctx, mb.ID, set, mailstore.FetchOptions{})
			if err != nil {
				w.Close()
				return sum, err
			}
			for _, info := range infos {
				r, _, err := acct.OpenMessage(ctx, mb.ID, info.UID)
				if errors.Is(err, mailstore.ErrNoSuchMessage) {
					sum.Skipped[SkipNoSuchEmail]++
					continue
				}
				if err != nil {
					w.Close()
					return sum, err
				}
				err = w.Write(r, info.Flags, info.InternalDate)
				r.Close()
				if err != nil {
					w.Close()
					return sum, fmt.Errorf("mailimport: export %s: %w", mb.Name, err)
				}
				sum.Messages++
				sum.Bytes += info.Size
				prog.Folder, prog.Messages, prog.Bytes = mb.Name, sum.Messages, sum.Bytes
				if progress != nil {
					progress(prog)
				}
			}
		}
		if err := w.Close(); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

type folderWriter interface {
	Write(r io.Reader, flags []imap.Flag, date time.Time) error
	Close() error
}

// mboxFile is one mailbox's mbox file.
type mboxFile struct {
	f *os.File
	w *mailfile.MboxWriter
}

func newMboxFile(path string) (*mboxFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &mboxFile{f: f, w: mailfile.NewMboxWriter(f)}, nil
}

func (m *mboxFile) Write(r io.Reader, flags []imap.Flag, date time.Time) error {
	return m.w.Write(r, flags, date)
}

func (m *mboxFile) Close() error {
	err := m.w.Flush()
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}
