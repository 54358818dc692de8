package pop3d

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		verb    string
		args    []string
		rest    string
		wantErr error
	}{
		{name: "bare verb", line: "STAT", verb: "STAT"},
		{name: "lower case", line: "stat", verb: "STAT"},
		{name: "mixed case", line: "rEtR 1", verb: "RETR", args: []string{"1"}, rest: "1"},
		{name: "two args", line: "TOP 1 10", verb: "TOP", args: []string{"1", "10"}, rest: "1 10"},
		{name: "extra spaces", line: "TOP  1   10 ", verb: "TOP", args: []string{"1", "10"}, rest: " 1   10 "},
		{name: "trailing space", line: "LIST ", verb: "LIST", rest: ""},
		{name: "password with spaces", line: "PASS my secret  pass ", verb: "PASS", args: []string{"my", "secret"}, rest: "my secret  pass "},
		{name: "utf-8 password", line: "PASS pässwörd", verb: "PASS", args: []string{"pässwörd"}, rest: "pässwörd"},
		{name: "three-letter verb", line: "TOP", verb: "TOP"},
		{name: "too many args", line: "TOP 1 2 3", wantErr: errTooManyArgs},
		{name: "empty", line: "", wantErr: errEmptyCommand},
		{name: "NUL", line: "STAT\x00", wantErr: errBadChar},
		{name: "NUL in arg", line: "USER a\x00b", wantErr: errBadChar},
		{name: "DEL", line: "USER a\x7f", wantErr: errBadChar},
		{name: "escape", line: "\x1b[2J", wantErr: errBadChar},
		{name: "long verb", line: "CAPAB", wantErr: errBadKeyword},
		{name: "digit verb", line: "R3TR 1", wantErr: errBadKeyword},
		{name: "leading space", line: " STAT", wantErr: errBadKeyword},
		{name: "high octets verb", line: "\xc3\xa9T", wantErr: errBadKeyword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := parseCommand([]byte(tc.line))
			if err != tc.wantErr {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if cmd.verb != tc.verb || !slices.Equal(cmd.args, tc.args) || cmd.rest != tc.rest {
				t.Fatalf("got %+v, want verb %q args %q rest %q", cmd, tc.verb, tc.args, tc.rest)
			}
		})
	}
}

func TestParseMsgNum(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1", 1, true}, {"42", 42, true}, {"007", 7, true}, {"999999999", 999999999, true},
		{"0", 0, false}, {"", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1a", 0, false},
		{"1000000000", 0, false}, {"99999999999999999999", 0, false}, {" 1", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseMsgNum(tc.in)
		if got != tc.want && tc.ok || ok != tc.ok {
			t.Errorf("parseMsgNum(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if n, ok := parseLineCount("99999999999999999999999"); !ok || n <= 0 {
		t.Errorf("huge line count: %d, %v", n, ok)
	}
	for _, bad := range []string{"", "-1", "x", "1.5"} {
		if _, ok := parseLineCount(bad); ok {
			t.Errorf("parseLineCount(%q) ok", bad)
		}
	}
}

func TestDotWriter(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"empty", nil, ".\r\n"},
		{"plain", []string{"a\r\nb\r\n"}, "a\r\nb\r\n.\r\n"},
		{"no final CRLF", []string{"a\r\nb"}, "a\r\nb\r\n.\r\n"},
		{"leading dot", []string{".a\r\n"}, "..a\r\n.\r\n"},
		{"lone dot line", []string{"a\r\n.\r\nb\r\n"}, "a\r\n..\r\nb\r\n.\r\n"},
		{"dot split across writes", []string{"a\r\n", ".", "b\r\n"}, "a\r\n..b\r\n.\r\n"},
		{"CRLF split across writes", []string{"a\r", "\n.b\r\n"}, "a\r\n..b\r\n.\r\n"},
		{"dot mid-line", []string{"a.b\r\n", "x", ".y\r\n"}, "a.b\r\nx.y\r\n.\r\n"},
		{"many dots", []string{"..\r\n...\r\n"}, "...\r\n....\r\n.\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			dw := dotWriter{w: w, lineStart: true}
			for _, c := range tc.chunks {
				if n, err := dw.Write([]byte(c)); n != len(c) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", c, n, err)
				}
			}
			if err := dw.Close(); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if out.String() != tc.want {
				t.Fatalf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestTopReader(t *testing.T) {
	const m = "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n\r\nl4\r\n"
	tests := []struct {
		name  string
		msg   string
		lines int64
		want  string
	}{
		{"header only", m, 0, "A: 1\r\nB: 2\r\n\r\n"},
		{"one line", m, 1, "A: 1\r\nB: 2\r\n\r\nl1\r\n"},
		{"empty body line counts", m, 3, "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n\r\n"},
		{"all", m, 100, m},
		{"no separator", "A: 1\r\nB: 2\r\n", 5, "A: 1\r\nB: 2\r\n"},
		{"no final CRLF", "A: 1\r\n\r\nbody", 5, "A: 1\r\n\r\nbody"},
		{"empty message", "", 5, ""},
		{"starts with empty line", "\r\nbody\r\nmore\r\n", 1, "\r\nbody\r\n"},
		{"bare LF", "A: 1\n\nl1\nl2\n", 1, "A: 1\n\nl1\n"},
		{"long header line", "X: " + strings.Repeat("x", 40000) + "\r\n\r\nb1\r\nb2\r\n", 1, "X: " + strings.Repeat("x", 40000) + "\r\n\r\nb1\r\n"},
		{"long body line", "A: 1\r\n\r\n" + strings.Repeat("y", 40000) + "\r\nb2\r\n", 1, "A: 1\r\n\r\n" + strings.Repeat("y", 40000) + "\r\n"},
		{"CRLF inside long line is not a separator", "A: " + strings.Repeat("z", 16380) + "\r\n\r\nb\r\n", 0, "A: " + strings.Repeat("z", 16380) + "\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.msg), iotest.OneByteReader(strings.NewReader(tc.msg))} {
				got, err := io.ReadAll(iotest.OneByteReader(newTopReader(r, tc.lines)))
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestTopReaderError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("A: 1\r\n"), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := io.ReadAll(newTopReader(r, 1)); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want ErrUnexpectedEOF", err)
	}
}

func TestRedact(t *testing.T) {
	for line, want := range map[string]string{
		"PASS secret words":               "PASS ***",
		"pass x":                          "PASS ***",
		"AUTH PLAIN AGFsaWNlAHNlY3JldA==": "AUTH PLAIN ***",
		"AUTH LOGIN":                      "AUTH LOGIN",
		"USER alice@example.org":          "USER alice@example.org",
		"top 1  2":                        "TOP 1 2",
		"STAT":                            "STAT",
	} {
		cmd, err := parseCommand([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if got := redact(cmd); got != want {
			t.Errorf("redact(%q) = %q, want %q", line, got, want)
		}
	}
}
