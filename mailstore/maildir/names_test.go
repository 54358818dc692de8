package maildir

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/posthouse/posthouse/mailstore"
)

func TestParseMailboxName(t *testing.T) {
	tests := []struct {
		name, in, want string
		bad            bool
	}{
		{name: "plain", in: "Work", want: "Work"},
		{name: "inbox lower", in: "inbox", want: "INBOX"},
		{name: "inbox mixed", in: "InBoX", want: "INBOX"},
		{name: "inbox child", in: "inbox/Sub", want: "INBOX/Sub"},
		{name: "inbox deeper level untouched", in: "a/inbox", want: "a/inbox"},
		{name: "utf8", in: "Entwürfe/日本語", want: "Entwürfe/日本語"},
		{name: "spaces inside", in: "My Stuff", want: "My Stuff"},
		{name: "dots inside", in: "a.b/c..d", want: "a.b/c..d"},
		{name: "empty", in: "", bad: true},
		{name: "dotdot", in: "..", bad: true},
		{name: "dotdot level", in: "a/../b", bad: true},
		{name: "dot level", in: "./a", bad: true},
		{name: "absolute", in: "/etc/passwd", bad: true},
		{name: "trailing sep", in: "a/", bad: true},
		{name: "double sep", in: "a//b", bad: true},
		{name: "tilde", in: "~root", bad: true},
		{name: "tilde level", in: "a/~b", bad: true},
		{name: "percent", in: "a%", bad: true},
		{name: "star", in: "a*b", bad: true},
		{name: "nul", in: "a\x00b", bad: true},
		{name: "newline", in: "a\r\nb", bad: true},
		{name: "del", in: "a\x7fb", bad: true},
		{name: "c1 control", in: "a\u0085b", bad: true},
		{name: "bidi override", in: "a\u202eb", bad: true},
		{name: "zero width", in: "a\u200bb", bad: true},
		{name: "backslash", in: `a\b`, bad: true},
		{name: "invalid utf8", in: "a\xffb", bad: true},
		{name: "blank level", in: "a/ /b", bad: true},
		{name: "too long", in: strings.Repeat("x", mailstore.MaxMailboxName+1), bad: true},
		{name: "too deep", in: strings.Repeat("x/", mailstore.MaxMailboxLevels) + "x", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mailstore.ParseMailboxName(tc.in)
			if tc.bad {
				if !errors.Is(err, mailstore.ErrBadMailboxName) {
					t.Fatalf("mailstore.ParseMailboxName(%q) = %q, %v; want ErrBadMailboxName", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("mailstore.ParseMailboxName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestAccountNames(t *testing.T) {
	tests := []struct {
		name, in, dir string
		bad           bool
	}{
		{name: "plain", in: "alice@example.org", dir: "alice@example.org"},
		{name: "upper case folds", in: "Alice@Example.ORG", dir: "alice@example.org"},
		{name: "plus tag kept", in: "a+b@x.org", dir: "a+b@x.org"},
		{name: "slash in local part", in: "a/b@x.org", dir: "a%2Fb@x.org"},
		{name: "leading dot", in: ".a@x.org", dir: "%2Ea@x.org"},
		{name: "dotdot local", in: "..@x.org", dir: "%2E.@x.org"},
		{name: "percent", in: "a%2F@x.org", dir: "a%252f@x.org"},
		{name: "utf8", in: "jürgen@x.org", dir: "j%C3%BCrgen@x.org"},
		{name: "no at", in: "alice", bad: true},
		{name: "empty local", in: "@x.org", bad: true},
		{name: "empty domain", in: "a@", bad: true},
		{name: "slash domain", in: "a@x/../y", bad: true},
		{name: "dotdot domain", in: "a@x..y", bad: true},
		{name: "nul", in: "a\x00@x.org", bad: true},
		{name: "space", in: "a b@x.org", bad: true},
		{name: "newline", in: "a@x.org\n", bad: true},
		{name: "empty", in: "", bad: true},
		{name: "too long", in: strings.Repeat("a", 400) + "@x.org", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := mailstore.CheckAccountName(tc.in)
			if tc.bad {
				if !errors.Is(err, mailstore.ErrBadAccountName) {
					t.Fatalf("mailstore.CheckAccountName(%q) = %q, %v; want ErrBadAccountName", tc.in, n, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := accountDirName(n); d != tc.dir {
				t.Fatalf("accountDirName(%q) = %q, want %q", n, d, tc.dir)
			}
		})
	}
}

func TestAccountDirNameLong(t *testing.T) {
	a := strings.Repeat("é", 60) + "@" + strings.Repeat("d", 60) + ".org"
	b := strings.Repeat("é", 60) + "@" + strings.Repeat("d", 61) + ".org"
	da, db := accountDirName(a), accountDirName(b)
	if len(da) > maxAccountDir || len(db) > maxAccountDir || da == db {
		t.Fatalf("long names: %q (%d) %q (%d)", da, len(da), db, len(db))
	}
	if !strings.Contains(da, "~") || !filepath.IsLocal(da) {
		t.Fatalf("long name not hashed or not local: %q", da)
	}
}

// FuzzParseMailboxName checks that accepted names are canonical, stable and
// free of everything that could matter to a file system or to LIST.
func FuzzParseMailboxName(f *testing.F) {
	for _, s := range []string{"INBOX", "inbox/a", "a/b/c", "..", "a/../b", "~x", "a%", "日本", "a\x00", "/a", "a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := mailstore.ParseMailboxName(in)
		if err != nil {
			if !errors.Is(err, mailstore.ErrBadMailboxName) {
				t.Fatalf("error without ErrBadMailboxName: %v", err)
			}
			return
		}
		again, err := mailstore.ParseMailboxName(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
		if !utf8.ValidString(got) || strings.ContainsAny(got, "\x00%*\\\r\n") {
			t.Fatalf("accepted %q", got)
		}
		for _, l := range strings.Split(got, "/") {
			if l == "" || l == "." || l == ".." || strings.HasPrefix(l, "~") {
				t.Fatalf("accepted level %q in %q", l, got)
			}
		}
		if strings.EqualFold(strings.Split(got, "/")[0], "inbox") && !strings.HasPrefix(got, "INBOX") {
			t.Fatalf("inbox not canonical: %q", got)
		}
	})
}

// FuzzParseAccountName checks that every accepted account name maps to one
// local directory name with no separator or leading dot.
func FuzzParseAccountName(f *testing.F) {
	for _, s := range []string{"alice@example.org", "../x@y", "a/b@c", ".a@b", "a@b..c", "é@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := mailstore.CheckAccountName(in)
		if err != nil {
			return
		}
		d := accountDirName(n)
		if d == "" || d[0] == '.' || strings.ContainsAny(d, "/\\\x00") || !filepath.IsLocal(d) || len(d) > maxAccountDir {
			t.Fatalf("account %q -> directory %q", in, d)
		}
	})
}

// FuzzParseEmailID: parseEmailID accepts exactly what emailID makes.
func FuzzParseEmailID(f *testing.F) {
	for _, s := range []string{"E1", "E0", "E01", "E-1", "E+1", "E9223372036854775807", "E9223372036854775808", "e1", "", "E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseEmailID(s)
		if ok != (n > 0 && emailID(n) == s) {
			t.Fatalf("parseEmailID(%q) = %d, %v; emailID(%d) = %q", s, n, ok, n, emailID(n))
		}
	})
}
