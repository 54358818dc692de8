package mailfile

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestParseMaildirName(t *testing.T) {
	kw := Keywords{"$Label1", "Work", ""}
	for _, tc := range []struct {
		name  string
		flags []imap.Flag
		secs  int64
	}{
		{"1700000000.M1P2.host,S=100,W=102:2,FRS", []imap.Flag{imap.FlagFlagged, imap.FlagAnswered, imap.FlagSeen}, 1700000000},
		{"1700000000.M1P2.host:2,", nil, 1700000000},
		{"1700000000.M1P2.host:2,DPTab", []imap.Flag{imap.FlagDraft, "$Forwarded", imap.FlagDeleted, "$Label1", "Work"}, 1700000000},
		{"1700000000.M1P2.host:2,Sc", []imap.Flag{imap.FlagSeen}, 1700000000},
		{"1700000000.M1P2.host;2,S", []imap.Flag{imap.FlagSeen}, 1700000000},
		{"courier.name!2,SS", []imap.Flag{imap.FlagSeen}, 0},
		{"new-without-info", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags, d := ParseMaildirName(tc.name, kw)
			if !slices.Equal(flags, tc.flags) {
				t.Errorf("flags %q, want %q", flags, tc.flags)
			}
			if tc.secs == 0 && !d.IsZero() || tc.secs != 0 && d.Unix() != tc.secs {
				t.Errorf("delivered %v, want %d", d, tc.secs)
			}
		})
	}
}

func TestParseKeywords(t *testing.T) {
	kw, err := ParseKeywords(strings.NewReader("0 $Label1\n2 Work\nbad line\n30 Toolate\n1 has space\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Keywords{"$Label1", "", "Work"}); !slices.Equal(kw, want) {
		t.Fatalf("got %q, want %q", kw, want)
	}
}

func TestUTF7(t *testing.T) {
	for _, tc := range []struct{ dec, enc string }{
		{"Entwürfe", "Entw&APw-rfe"},
		{"A&B", "A&-B"},
		{"日本語", "&ZeVnLIqe-"},
		{"a.b", "a&AC4-b"},
	} {
		if got := EncodeUTF7(tc.dec, "."); got != tc.enc {
			t.Errorf("EncodeUTF7(%q) = %q, want %q", tc.dec, got, tc.enc)
		}
		if got, err := DecodeUTF7(tc.enc); err != nil || got != tc.dec {
			t.Errorf("DecodeUTF7(%q) = %q, %v", tc.enc, got, err)
		}
	}
	for _, bad := range []string{"&", "&Zz", "&A-", "é"} {
		if _, err := DecodeUTF7(bad); err == nil {
			t.Errorf("DecodeUTF7(%q) succeeded", bad)
		}
	}
}

func FuzzDecodeUTF7(f *testing.F) {
	for _, s := range []string{"Entw&APw-rfe", "&-", "&ZeVnLIqe-", "a&AC4-b", "&2D3cAA-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dec, err := DecodeUTF7(s)
		if err != nil {
			return
		}
		if len(dec) > 4*len(s) {
			t.Fatalf("decoded %d bytes from %d", len(dec), len(s))
		}
		again, err := DecodeUTF7(EncodeUTF7(dec, ""))
		if err != nil || again != dec {
			t.Fatalf("round trip of %q: %q, %v", dec, again, err)
		}
	})
}

func FuzzParseMaildirName(f *testing.F) {
	f.Add("1700000000.M1P2.host,S=100:2,FRSab", "0 a\n1 b\n")
	f.Add("x!2,", "")
	f.Fuzz(func(t *testing.T, name, keywords string) {
		kw, err := ParseKeywords(strings.NewReader(keywords))
		if err != nil {
			t.Fatal(err)
		}
		if len(kw) > maxKeywords {
			t.Fatalf("%d keywords", len(kw))
		}
		flags, _ := ParseMaildirName(name, kw)
		if len(flags) > len(maildirFlags)+maxKeywords {
			t.Fatalf("%d flags", len(flags))
		}
		for _, fl := range flags {
			if fl == "" {
				t.Fatal("empty flag")
			}
		}
	})
}

func writeFile(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMaildirFolders(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"cur", ".Sent/cur", ".Entw&APw-rfe/new", ".A.B/cur", ".notmaildir", "fs/cur", "fs/sub/cur", "courierimapkeywords"} {
		os.MkdirAll(filepath.Join(root, d), 0o700)
	}
	got, err := MaildirFolders(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, f.Name)
	}
	if want := []string{"", "A/B", "Entwürfe", "Sent", "fs", "fs/sub"}; !slices.Equal(names, want) {
		t.Fatalf("folders %q, want %q", names, want)
	}
}

func TestMaildirFilesAndDates(t *testing.T) {
	dir := t.TempDir()
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	writeFile(t, filepath.Join(dir, "cur", "1600000000.M2P1.h,S=5:2,S"), "a\nb\n", old)
	writeFile(t, filepath.Join(dir, "new", "1500000000.M1P1.h"), "c\r\n", time.Time{}) // copied: mtime now
	writeFile(t, filepath.Join(dir, "cur", ".hidden"), "x", time.Time{})
	files, err := MaildirFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"new/1500000000.M1P1.h", "cur/1600000000.M2P1.h,S=5:2,S"}; !slices.Equal(files, want) {
		t.Fatalf("files %q, want %q", files, want)
	}
	m, err := OpenMaildirFile(dir, files[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(m)
	m.Close()
	if string(b) != "c\r\n" || m.Date.Unix() != 1500000000 {
		t.Errorf("copied file: %q at %v, want its name's time", b, m.Date)
	}
	m, err = OpenMaildirFile(dir, files[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(m)
	m.Close()
	if string(b) != "a\r\nb\r\n" || !m.Date.Equal(old) || !slices.Equal(m.Flags, []imap.Flag{imap.FlagSeen}) {
		t.Errorf("file: %q at %v flags %q", b, m.Date, m.Flags)
	}
}

func TestMaildirWriterRoundTrip(t *testing.T) {
	root := t.TempDir()
	w, err := NewMaildirWriter(root)
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2021, 7, 8, 9, 10, 11, 0, time.UTC)
	type msg struct {
		folder string
		body   string
		flags  []imap.Flag
	}
	msgs := []msg{
		{"INBOX", "S: 1\r\n\r\none\r\n", []imap.Flag{imap.FlagSeen, "Work"}},
		{"INBOX", "S: 2\r\n\r\ntwo\r\n", []imap.Flag{imap.FlagFlagged, "$Label1", "Work", "$Forwarded"}},
		{"a.b/Entwürfe", "S: 3\r\n\r\nthree\r\n", nil},
	}
	for _, m := range msgs {
		fw, err := w.Folder(m.folder)
		if err != nil {
			t.Fatal(err)
		}
		if err := fw.Write(strings.NewReader(m.body), m.flags, date); err != nil {
			t.Fatal(err)
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	folders, err := MaildirFolders(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []msg
	for _, f := range folders {
		kw, err := ReadKeywords(f.Dir)
		if err != nil {
			t.Fatal(err)
		}
		files, err := MaildirFiles(f.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, rel := range files {
			m, err := OpenMaildirFile(f.Dir, rel, kw)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(m)
			m.Close()
			if !m.Date.Equal(date) {
				t.Errorf("%s: date %v", rel, m.Date)
			}
			name := f.Name
			if name == "" {
				name = "INBOX"
			}
			got = append(got, msg{name, string(b), m.Flags})
		}
	}
	if len(got) != len(msgs) {
		t.Fatalf("got %d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if got[i].folder != msgs[i].folder || got[i].body != msgs[i].body || !sameFlags(got[i].flags, msgs[i].flags) {
			t.Errorf("message %d: %+v, want %+v", i, got[i], msgs[i])
		}
	}
}
