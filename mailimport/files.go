package mailimport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailfile"
	"github.com/posthouse/posthouse/mailstore"
)

// PathOptions say how ImportPath reads its source.
type PathOptions struct {
	// Under is a mailbox to put everything in (a single mbox) or below
	// (a tree); "" maps folders by name.
	Under string
	// MboxFormat says which ">From " lines are escapes.
	MboxFormat mailfile.MboxFormat
}

// ImportPath imports the mbox file, Maildir tree, or directory of mbox
// files and Maildirs at path. A single mbox file goes into INBOX (or
// opts.Under), each message of a Google Takeout file by its labels.
func (im *Importer) ImportPath(ctx context.Context, path string, opts PathOptions) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		im.AddSource(fi.Size())
		return im.importMbox(ctx, path, "", opts, true)
	}
	if isMaildirTree(path) {
		return im.importMaildirTree(ctx, path, opts)
	}
	return im.importDir(ctx, path, opts)
}

// isMaildirTree: root is a Maildir or has Maildir++ folders.
func isMaildirTree(root string) bool {
	if mailfile.IsMaildir(root) {
		return true
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), ".") && mailfile.IsMaildir(filepath.Join(root, e.Name())) {
			return true
		}
	}
	return false
}

func (im *Importer) importMaildirTree(ctx context.Context, root string, opts PathOptions) error {
	folders, err := mailfile.MaildirFolders(root)
	if err != nil {
		return err
	}
	for _, f := range folders {
		files, err := mailfile.MaildirFiles(f.Dir)
		if err != nil {
			return err
		}
		im.AddTotal(int64(len(files)))
	}
	for _, f := range folders {
		if err := im.importMaildir(ctx, f.Dir, f.Name, opts); err != nil {
			return err
		}
	}
	return nil
}

// importMaildir imports one Maildir folder.
func (im *Importer) importMaildir(ctx context.Context, dir, name string, opts PathOptions) error {
	folder := name
	if folder == "" {
		folder = mailstore.Inbox
	}
	target, err := im.Target(ctx, name, "", opts.Under)
	if err != nil {
		return err
	}
	kw, err := mailfile.ReadKeywords(dir)
	if err != nil {
		return err
	}
	files, err := mailfile.MaildirFiles(dir)
	if err != nil {
		return err
	}
	for _, rel := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := mailfile.OpenMaildirFile(dir, rel, kw)
		if err != nil {
			im.log.Warn("import: cannot read message file", "path", filepath.Join(dir, rel), "err", err)
			im.Skip(folder, SkipUnreadable)
			continue
		}
		_, err = im.Put(ctx, Message{Folder: folder, Mailbox: target, Body: m, Flags: m.Flags, Date: m.Date})
		m.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// importDir walks a directory for mbox files (Thunderbird's "Foo" and
// "Foo.sbd/Bar", Takeout's "Foo.mbox", Apple Mail's "Foo.mbox/mbox") and
// Maildirs.
func (im *Importer) importDir(ctx context.Context, root string, opts PathOptions) error {
	type source struct {
		path, name string
		maildir    bool
	}
	var sources []source
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "cur" || d.Name() == "new" || d.Name() == "tmp") {
				return filepath.SkipDir
			}
			if path != root && mailfile.IsMaildir(path) {
				sources = append(sources, source{path, folderName(rel), true})
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") || !looksLikeMbox(path) {
			return nil
		}
		sources = append(sources, source{path, folderName(rel), false})
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range sources {
		if s.maildir {
			files, err := mailfile.MaildirFiles(s.path)
			if err != nil {
				return err
			}
			im.AddTotal(int64(len(files)))
		} else if fi, err := os.Stat(s.path); err == nil {
			im.AddSource(fi.Size())
		}
	}
	for _, s := range sources {
		if s.maildir {
			err = im.importMaildir(ctx, s.path, s.name, opts)
		} else {
			err = im.importMbox(ctx, s.path, s.name, opts, false)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// folderName turns a path below the import root into a folder name:
// ".sbd" and ".mbox" endings go, Apple Mail's "Foo.mbox/mbox" is "Foo".
func folderName(rel string) string {
	levels := strings.Split(filepath.ToSlash(rel), "/")
	if n := len(levels); n > 1 && levels[n-1] == "mbox" && strings.HasSuffix(levels[n-2], ".mbox") {
		levels = levels[:n-1]
	}
	for i, l := range levels {
		l = strings.TrimSuffix(l, ".sbd")
		l = strings.TrimSuffix(l, ".mbox")
		levels[i] = l
	}
	return strings.Join(levels, "/")
}

// looksLikeMbox: the file is empty (an empty Thunderbird folder) or starts
// with a From_ line after empty lines.
func looksLikeMbox(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 512)
	n, _ := io.ReadFull(f, b)
	b = bytes.TrimLeft(b[:n], "\r\n")
	return n == 0 || bytes.HasPrefix(b, []byte("From "))
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// importMbox imports one mbox file into the folder name (single: the only
// source, into INBOX or by Takeout labels).
func (im *Importer) importMbox(ctx context.Context, path, name string, opts PathOptions, single bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	folder := name
	if folder == "" {
		folder = filepath.Base(path)
	}
	target, err := im.Target(ctx, name, "", opts.Under)
	if err != nil {
		return err
	}
	cr := &countingReader{r: f}
	r := mailfile.NewMboxReader(bufio.NewReaderSize(cr, 256<<10), opts.MboxFormat)
	var reported int64
	defer func() { im.readSource(cr.n - reported) }()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, err := r.Next()
		im.readSource(cr.n - reported)
		reported = cr.n
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, mailfile.ErrNotMbox) {
			im.log.Warn("import: not an mbox file", "path", path)
			im.Skip(folder, SkipNotMbox)
			return nil
		}
		if err != nil {
			return fmt.Errorf("mailimport: read %s: %w", path, err)
		}
		if msg.Deleted {
			im.Skip(folder, SkipTBDeleted)
			continue
		}
		dest, flags := target, msg.Flags
		if single && opts.Under == "" && len(msg.Labels) > 0 {
			var skip string
			dest, flags, skip, err = im.labelTarget(ctx, msg.Labels, flags)
			if err != nil {
				return err
			}
			if skip != "" {
				im.Skip(folder, skip)
				continue
			}
		}
		date := msg.Received
		if date.IsZero() {
			date = msg.Date
		}
		if _, err := im.Put(ctx, Message{Folder: folder, Mailbox: dest, Body: msg, Flags: flags, Date: date}); err != nil {
			return err
		}
	}
}

// labelTarget picks a Takeout message's mailbox by its labels (see the
// package doc) and adds the flags the labels mean.
func (im *Importer) labelTarget(ctx context.Context, labels []string, flags []imap.Flag) (string, []imap.Flag, string, error) {
	has := map[string]bool{}
	var own string
	for _, l := range labels {
		low := strings.ToLower(l)
		has[low] = true
		switch {
		case gmailSystemLabels[low], strings.HasPrefix(low, "category "):
		case own == "":
			own = l
		}
	}
	if has["chat"] {
		return "", nil, SkipChat, nil
	}
	if has["starred"] {
		flags = append(flags, imap.FlagFlagged)
	}
	if has["opened"] && !has["unread"] {
		flags = append(flags, imap.FlagSeen)
	}
	var name, special string
	switch {
	case has["trash"]:
		special = mailstore.SpecialTrash
	case has["spam"]:
		special = mailstore.SpecialJunk
	case has["inbox"]:
		name = mailstore.Inbox
	case has["sent"]:
		special = mailstore.SpecialSent
	case has["drafts"]:
		special = mailstore.SpecialDrafts
	case own != "":
		name = own
	default:
		special = mailstore.SpecialArchive
	}
	if name == "" {
		name = strings.TrimPrefix(special, `\`)
	}
	t, err := im.Target(ctx, name, special, "")
	return t, flags, "", err
}

// gmailSystemLabels are Gmail's own labels, lower case.
var gmailSystemLabels = map[string]bool{
	"inbox": true, "sent": true, "drafts": true, "spam": true, "trash": true, "starred": true, "important": true,
	"unread": true, "opened": true, "chat": true, "archived": true,
}
