package milter

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScanHeader(t *testing.T) {
	long := strings.Repeat("x", maxFieldBytes+100)
	tests := []struct {
		name      string
		in        string
		leadSpace bool
		fields    [][2]string
		body      string
	}{
		{"plain", "A: 1\r\nB:2\r\n\r\nbody\r\n", false, [][2]string{{"A", "1"}, {"B", "2"}}, "body\r\n"},
		{"lead space kept", "A:  1\r\n\r\n", true, [][2]string{{"A", "  1"}}, ""},
		{"folds", "A: 1\r\n 2\r\n\t3\r\n\r\nb", false, [][2]string{{"A", "1\n 2\n\t3"}}, "b"},
		{"bare LF", "A: 1\nB: 2\n\nb\n", false, [][2]string{{"A", "1"}, {"B", "2"}}, "b\n"},
		{"no body", "A: 1\r\n", false, [][2]string{{"A", "1"}}, ""},
		{"no final newline", "A: 1", false, [][2]string{{"A", "1"}}, ""},
		{"empty", "", false, nil, ""},
		{"body only", "\r\nbody", false, nil, "body"},
		{"not a field ends the header", "A: 1\r\nnot a field\r\nmore\r\n", false, [][2]string{{"A", "1"}}, "not a field\r\nmore\r\n"},
		{"fold first", " x\r\nA: 1\r\n", false, nil, " x\r\nA: 1\r\n"},
		{"space before colon", "A : 1\r\n\r\n", false, [][2]string{{"A", "1"}}, ""},
		{"NUL", "A: x\x00y\r\n\r\n", false, [][2]string{{"A", "x y"}}, ""},
		{"long field cut", "A: " + long + "\r\nB: 2\r\n\r\nb", false, [][2]string{{"A", long[:maxFieldBytes-len("A: ")]}, {"B", "2"}}, "b"},
		{"mbox From line", "From x@y Thu\r\nA: 1\r\n", false, nil, "From x@y Thu\r\nA: 1\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [][2]string
			off, err := scanHeader(strings.NewReader(tc.in), tc.leadSpace, func(n, v string) error {
				got = append(got, [2]string{n, v})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.fields) {
				t.Errorf("fields = %.200q, want %.200q", got, tc.fields)
			}
			if tc.in[off:] != tc.body {
				t.Errorf("body = %q, want %q", tc.in[off:], tc.body)
			}
		})
	}

	// A header without end stops at the bound; the rest is body.
	huge := strings.Repeat("X-A: 0123456789\r\n", maxHeaderBytes/10)
	off, err := scanHeader(strings.NewReader(huge), false, func(string, string) error { return nil })
	if err != nil || off < maxHeaderBytes || off > maxHeaderBytes+20 || huge[off-2:off] != "\r\n" {
		t.Errorf("huge header: body at %d (%v), want just past %d at a line start", off, err, maxHeaderBytes)
	}
}

func FuzzScanHeader(f *testing.F) {
	for _, s := range []string{"A: 1\r\nB:2\r\n\r\nbody", "A: 1\r\n 2\r\n\r\n", "x\r\n", " x\r\n", "A:\x00\r\n\r\n", "A: 1\n\nb", ""} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, lead bool) {
		n := 0
		off, err := scanHeader(strings.NewReader(in), lead, func(name, value string) error {
			n++
			if !validName([]byte(name)) || strings.IndexByte(value, 0) >= 0 || len(value) > maxFieldBytes {
				t.Fatalf("bad field %q: %q", name, value)
			}
			if !lead && value != "" && (value[0] == ' ' || value[0] == '\t') {
				t.Fatalf("leading space in %q", value)
			}
			return nil
		})
		if err != nil || off < 0 || off > int64(len(in)) {
			t.Fatalf("offset %d of %d, err %v", off, len(in), err)
		}
		// The body starts at a line start, after every field.
		if off > 0 && off < int64(len(in)) && in[off-1] != '\n' {
			t.Fatalf("body at %d is not at a line start", off)
		}
		if n > 0 && off == 0 {
			t.Fatal("fields but the body starts at 0")
		}
	})
}

func TestParseReply(t *testing.T) {
	tests := []struct {
		code int
		text string
		want string // "code e.n.h text" or "error"
	}{
		{554, "5.7.1 Gtube pattern", "554 5.7.1 Gtube pattern"},
		{550, "Spam", "550 5.7.1 Spam"},
		{451, "4.7.1 Try again later", "451 4.7.1 Try again later"},
		{421, "4.4.2 closing", "451 4.4.2 closing"},
		{550, "4.7.1 wrong class", "550 5.7.1 4.7.1 wrong class"},
		{550, "", "550 5.7.1 Message refused by content filter"},
		{450, "", "450 4.7.1 Message deferred by content filter, try again later"},
		// go-milter hands over what follows "550-" or "550 ".
		{550, "5.7.1 first line\r\n550 5.7.1 second line", "550 5.7.1 first line second line"},
		{550, "100%% spam", "550 5.7.1 100% spam"},
		{550, "caf\xc3\xa9\x07", "550 5.7.1 caf???"},
		{250, "2.0.0 ok", "error"},
		{0, "", "error"},
		{600, "x", "error"},
	}
	for _, tc := range tests {
		r, err := parseReply(tc.code, tc.text)
		got := "error"
		if err == nil {
			got = fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
		}
		if got != tc.want {
			t.Errorf("parseReply(%d, %q) = %q, want %q", tc.code, tc.text, got, tc.want)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"5.7.1 Gtube pattern", "550-5.7.1 a\r\n550 5.7.1 b", "%%", "4.7.1", "\xff\x00"} {
		f.Add(550, s)
		f.Add(451, s)
	}
	f.Fuzz(func(t *testing.T, code int, text string) {
		r, err := parseReply(code, text)
		if err != nil {
			return
		}
		if r.Code < 400 || r.Code > 599 || r.Code == 421 || r.Enhanced[0] != r.Code/100 || r.Text == "" || len(r.Text) > maxReplyText ||
			!utf8.ValidString(r.Text) || strings.ContainsFunc(r.Text, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
			t.Fatalf("parseReply(%d, %q) = %+v", code, text, r)
		}
	})
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{
		"inet:127.0.0.1:11332":  "tcp 127.0.0.1:11332",
		"inet:[::1]:11332":      "tcp [::1]:11332",
		"inet:localhost:1":      "tcp localhost:1",
		"unix:/run/milter.sock": "unix /run/milter.sock",
		"INET:h:2":              "tcp h:2",
		"127.0.0.1:11332":       "error",
		"inet:127.0.0.1":        "error",
		"inet::11332":           "error",
		"inet:h:0":              "error",
		"inet:h:70000":          "error",
		"unix:relative":         "error",
		"local:/x":              "error",
		"inet:h :1":             "error",
		"":                      "error",
	} {
		n, a, err := ParseAddress(in)
		got := n + " " + a
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("ParseAddress(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"inet:127.0.0.1:11332", "inet:[::1]:1", "unix:/x", "inet:h:0", ":", "inet:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, a, err := ParseAddress(s)
		if err != nil {
			return
		}
		if n != "tcp" && n != "unix" || a == "" || strings.ContainsAny(a, " \x00\r\n") {
			t.Fatalf("ParseAddress(%q) = %q %q", s, n, a)
		}
	})
}

func TestField(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"X-A", "1", "1"},
		{"X-A", " lead", "lead"},
		{"X-A", "a\n\tb", "a\r\n\tb"},
		{"X-A", "a\r\n b", "a\r\n b"},
		{"X-A", "a\nb", "a\r\n\tb"},
		{"X-A", "a\n\n \nb", "a\r\n\tb"},
	} {
		f, ok := field(tc.name, tc.value)
		if !ok || f.Value != tc.want {
			t.Errorf("field(%q, %q) = %q %v, want %q", tc.name, tc.value, f.Value, ok, tc.want)
		}
	}
	for _, tc := range [][2]string{{"", "x"}, {"A B", "x"}, {"A:", "x"}, {"X", "a\x00"}, {"X", strings.Repeat("y", 1000)}} {
		if _, ok := field(tc[0], tc[1]); ok {
			t.Errorf("field(%q, %.20q) accepted", tc[0], tc[1])
		}
	}
}

func FuzzField(f *testing.F) {
	f.Add("X-Spamd-Result", "default: False [0.00 / 15.00];\n\tSYM(0.00)[]")
	f.Add("X", "a\r\n\r\nb\rc")
	f.Fuzz(func(t *testing.T, name, value string) {
		fl, ok := field(name, value)
		if !ok {
			return
		}
		// What the pipeline accepts: folds only, no line over 998 octets.
		for i, line := range strings.Split(fl.Name+": "+fl.Value, "\r\n") {
			if len(line) > 998 || strings.ContainsAny(line, "\r\n\x00") || i > 0 && line[0] != ' ' && line[0] != '\t' {
				t.Fatalf("field(%q, %q) = %q", name, value, fl.Value)
			}
		}
	})
}
