package mailfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// maildirFlags are the info letters of system flags, in the order names
// carry them (ASCII order, as the Maildir convention asks).
var maildirFlags = []struct {
	c byte
	f imap.Flag
}{
	{'D', imap.FlagDraft},
	{'F', imap.FlagFlagged},
	{'P', imap.Flag("$Forwarded")},
	{'R', imap.FlagAnswered},
	{'S', imap.FlagSeen},
	{'T', imap.FlagDeleted},
}

// maxKeywords is how many keywords a Maildir folder can name: the letters
// a to z.
const maxKeywords = 26

// Keywords are a folder's Dovecot keywords: index 0 is letter 'a'.
type Keywords []string

// KeywordsFile is the file Dovecot keeps a folder's keyword letters in.
const KeywordsFile = "dovecot-keywords"

// ReadKeywords reads dir's dovecot-keywords ("N name" per line); a folder
// without one has none.
func ReadKeywords(dir string) (Keywords, error) {
	f, err := os.Open(filepath.Join(dir, KeywordsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseKeywords(io.LimitReader(f, 64<<10))
}

// ParseKeywords parses the content of a dovecot-keywords file. Lines that
// are not "N name" with 0 <= N < 26 are ignored.
func ParseKeywords(r io.Reader) (Keywords, error) {
	kw := make(Keywords, maxKeywords)
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		num, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		i, err := strconv.Atoi(num)
		name = strings.TrimSpace(name)
		if !ok || err != nil || i < 0 || i >= maxKeywords || !validKeyword(name) {
			continue
		}
		kw[i] = name
		n = max(n, i+1)
	}
	return kw[:n], sc.Err()
}

// ParseMaildirName returns the flags in a Maildir file name's info suffix
// and the delivery time at the start of the name (zero if none).
func ParseMaildirName(name string, kw Keywords) (flags []imap.Flag, delivered time.Time) {
	if secs, _, ok := strings.Cut(name, "."); ok && secs != "" && len(secs) <= 12 {
		if n, err := strconv.ParseInt(secs, 10, 64); err == nil && n > 0 {
			delivered = time.Unix(n, 0)
		}
	}
	info := ""
	for _, sep := range []string{":2,", ";2,", "!2,"} {
		if i := strings.LastIndex(name, sep); i >= 0 {
			info = name[i+len(sep):]
			break
		}
	}
	seen := map[imap.Flag]bool{}
	for i := 0; i < len(info); i++ {
		c := info[i]
		var f imap.Flag
		switch {
		case c >= 'a' && c <= 'z':
			if k := int(c - 'a'); k < len(kw) && kw[k] != "" {
				f = imap.Flag(kw[k])
			}
		default:
			for _, mf := range maildirFlags {
				if mf.c == c {
					f = mf.f
				}
			}
		}
		if f != "" && !seen[f] {
			seen[f] = true
			flags = append(flags, f)
		}
	}
	return flags, delivered
}

// MaildirFolder is one folder of a Maildir tree.
type MaildirFolder struct {
	// Name is the folder's name with '/' between levels; "" is the root
	// (the inbox).
	Name string
	Dir  string
}

// maxFolderDepth bounds the directory nesting MaildirFolders follows.
const maxFolderDepth = 32

// IsMaildir reports whether dir holds a Maildir (a cur/ or new/ directory).
func IsMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// MaildirFolders lists the folders of the Maildir tree at root: root itself
// if it is a Maildir, its Maildir++ subfolders (".Sent", ".A.B"), and
// subdirectories that are Maildirs or hold some (Dovecot's LAYOUT=fs),
// sorted by name. Symbolic links are not followed.
func MaildirFolders(root string) ([]MaildirFolder, error) {
	var out []MaildirFolder
	if IsMaildir(root) {
		out = append(out, MaildirFolder{Name: "", Dir: root})
	}
	if err := walkFolders(root, nil, 0, &out); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b MaildirFolder) int { return strings.Compare(a.Name, b.Name) })
	return slices.CompactFunc(out, func(a, b MaildirFolder) bool { return a.Name == b.Name }), nil
}

func walkFolders(dir string, parent []string, depth int, out *[]MaildirFolder) error {
	if depth > maxFolderDepth {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == "cur" || name == "new" || name == "tmp" {
			continue
		}
		path := filepath.Join(dir, name)
		if depth == 0 && strings.HasPrefix(name, ".") {
			if !IsMaildir(path) {
				continue
			}
			var levels []string
			for _, l := range strings.Split(name[1:], ".") {
				levels = append(levels, decodeLevel(l))
			}
			if slices.Contains(levels, "") {
				continue
			}
			*out = append(*out, MaildirFolder{Name: strings.Join(levels, "/"), Dir: path})
			continue
		}
		if strings.HasPrefix(name, ".") {
			continue
		}
		levels := append(slices.Clone(parent), decodeLevel(name))
		if IsMaildir(path) {
			*out = append(*out, MaildirFolder{Name: strings.Join(levels, "/"), Dir: path})
		}
		if err := walkFolders(path, levels, depth+1, out); err != nil {
			return err
		}
	}
	return nil
}

// decodeLevel decodes a modified UTF-7 level; one that is not is taken as
// it is. A '/' inside a level becomes '_': it is the separator.
func decodeLevel(l string) string {
	if d, err := DecodeUTF7(l); err == nil {
		l = d
	}
	return strings.ReplaceAll(l, "/", "_")
}

// MaildirFiles lists the message files of a Maildir folder (cur/ and new/,
// as "cur/<name>"), in delivery order: by the time at the start of the
// name, then by name.
func MaildirFiles(dir string) ([]string, error) {
	type file struct {
		rel string
		t   int64
	}
	var files []file
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			_, t := ParseMaildirName(e.Name(), nil)
			files = append(files, file{sub + "/" + e.Name(), t.Unix()})
		}
	}
	slices.SortFunc(files, func(a, b file) int {
		if a.t != b.t {
			if a.t < b.t {
				return -1
			}
			return 1
		}
		return strings.Compare(a.rel[4:], b.rel[4:])
	})
	rels := make([]string, len(files))
	for i, f := range files {
		rels[i] = f.rel
	}
	return rels, nil
}

// MaildirMessage is one message file opened by OpenMaildirFile.
type MaildirMessage struct {
	io.Reader // the bytes with CRLF line endings
	Flags     []imap.Flag
	Date      time.Time
	Size      int64 // of the file
	f         *os.File
}

// Close closes the file.
func (m *MaildirMessage) Close() error { return m.f.Close() }

// maxCopyLag is how much later than the delivery time in its name a
// file's modification time may be and still be its internal date.
const maxCopyLag = 24 * time.Hour

// OpenMaildirFile opens rel (from MaildirFiles) in the folder dir with its
// flags and internal date (see the package doc).
func OpenMaildirFile(dir, rel string, kw Keywords) (*MaildirMessage, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("mailfile: %s is not a regular file", rel)
	}
	flags, delivered := ParseMaildirName(filepath.Base(rel), kw)
	date := fi.ModTime()
	if !delivered.IsZero() && date.After(delivered.Add(maxCopyLag)) {
		date = delivered
	}
	return &MaildirMessage{Reader: NewCRLFReader(f), Flags: flags, Date: date, Size: fi.Size(), f: f}, nil
}
