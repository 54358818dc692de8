package mailfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// MaildirWriter writes a Maildir++ tree: the inbox at the root, every other
// folder in a ".Level1.Level2" directory.
type MaildirWriter struct {
	root  string
	stamp int64 // the time in every file name: names sort in write order
	pid   int
	seq   int
}

// NewMaildirWriter creates the tree's root (mode 0700) if needed.
func NewMaildirWriter(root string) (*MaildirWriter, error) {
	w := &MaildirWriter{root: root, stamp: time.Now().Unix(), pid: os.Getpid()}
	if err := makeMaildir(root); err != nil {
		return nil, err
	}
	return w, nil
}

func makeMaildir(dir string) error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// FolderDir is where folder name ('/' between levels; "" or "INBOX" for
// the root) lives under root.
func FolderDir(root, name string) string {
	if name == "" || name == "INBOX" {
		return root
	}
	levels := strings.Split(name, "/")
	for i, l := range levels {
		levels[i] = EncodeUTF7(l, ".")
	}
	return filepath.Join(root, "."+strings.Join(levels, "."))
}

// MaildirFolderWriter writes the messages of one folder.
type MaildirFolderWriter struct {
	w   *MaildirWriter
	dir string
	kw  Keywords
	// Dropped counts keywords beyond the 26 a folder can name.
	Dropped int
}

// Folder creates (if needed) and returns the folder name.
func (w *MaildirWriter) Folder(name string) (*MaildirFolderWriter, error) {
	dir := FolderDir(w.root, name)
	if err := makeMaildir(dir); err != nil {
		return nil, err
	}
	kw, err := ReadKeywords(dir)
	if err != nil {
		return nil, err
	}
	return &MaildirFolderWriter{w: w, dir: dir, kw: kw}, nil
}

// Write stores one message with its flags, its internal date as the file's
// modification time, and lines as they are.
func (fw *MaildirFolderWriter) Write(r io.Reader, flags []imap.Flag, date time.Time) error {
	fw.w.seq++
	unique := fmt.Sprintf("%d.M%08dP%d.posthouse-export", fw.w.stamp, fw.w.seq, fw.w.pid)
	tmp := filepath.Join(fw.dir, "tmp", unique)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	n, err := io.Copy(bw, r)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	name := fmt.Sprintf("%s,S=%d:2,%s", unique, n, fw.info(flags))
	dst := filepath.Join(fw.dir, "cur", name)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	if date.IsZero() {
		return nil
	}
	return os.Chtimes(dst, date, date)
}

// info is the flag letters of flags: system flags, then keyword letters.
func (fw *MaildirFolderWriter) info(flags []imap.Flag) string {
	var sys, kws []byte
	for _, mf := range maildirFlags {
		for _, f := range flags {
			if strings.EqualFold(string(f), string(mf.f)) {
				sys = append(sys, mf.c)
				break
			}
		}
	}
	for _, f := range flags {
		if strings.HasPrefix(string(f), `\`) || strings.EqualFold(string(f), "$Forwarded") || !validKeyword(string(f)) {
			continue
		}
		i := -1
		for k, name := range fw.kw {
			if strings.EqualFold(name, string(f)) {
				i = k
			}
		}
		if i < 0 {
			if len(fw.kw) >= maxKeywords {
				fw.Dropped++
				continue
			}
			fw.kw = append(fw.kw, string(f))
			i = len(fw.kw) - 1
		}
		kws = append(kws, byte('a'+i))
	}
	return string(sys) + string(sortBytes(kws))
}

func sortBytes(b []byte) []byte {
	for i := 1; i < len(b); i++ {
		for j := i; j > 0 && b[j] < b[j-1]; j-- {
			b[j], b[j-1] = b[j-1], b[j]
		}
	}
	return b
}

// Close writes the folder's dovecot-keywords.
func (fw *MaildirFolderWriter) Close() error {
	if len(fw.kw) == 0 {
		return nil
	}
	var b strings.Builder
	for i, k := range fw.kw {
		if k != "" {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
	}
	return os.WriteFile(filepath.Join(fw.dir, KeywordsFile), []byte(b.String()), 0o600)
}
