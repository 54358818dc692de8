package smtpclient

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/textproto"
	"testing"
)

func dotStuff(t *testing.T, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 16)
	d := newDotWriter(bw)
	for _, c := range chunks {
		if n, err := d.Write([]byte(c)); err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestDotWriter(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"a\r\nb\r\n"}, "a\r\nb\r\n.\r\n"},
		{[]string{".a\r\n..b\r\n.\r\n"}, "..a\r\n...b\r\n..\r\n.\r\n"},
		{[]string{"a\nb"}, "a\r\nb\r\n.\r\n"},
		{[]string{"a\r", "\n.b\r", "\n", ".", "c"}, "a\r\n..b\r\n..c\r\n.\r\n"},
		{[]string{"x\r"}, "x\r\n.\r\n"},
		{[]string{"a\rb\r\n"}, "a\rb\r\n.\r\n"},
		{[]string{"\n\n.\n"}, "\r\n\r\n..\r\n.\r\n"},
		{nil, ".\r\n"},
	} {
		if got := dotStuff(t, tc.in...); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDotWriterLikeTextproto: on messages with CRLF line ends, split
// anywhere, the output is net/textproto's.
func TestDotWriterLikeTextproto(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	parts := []string{"a", "bc", ".", "..", "\r\n", " x", "\t"}
	for range 500 {
		var msg []byte
		for range 1 + r.IntN(40) {
			msg = append(msg, parts[r.IntN(len(parts))]...)
		}
		msg = append(msg, "\r\n"...)
		var want bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
		tw.Write(msg)
		tw.Close()
		var chunks []string
		for rest := msg; len(rest) > 0; {
			k := 1 + r.IntN(len(rest))
			chunks = append(chunks, string(rest[:k]))
			rest = rest[k:]
		}
		if got := dotStuff(t, chunks...); got != want.String() {
			t.Fatalf("%q: got %q, textproto %q", msg, got, want.String())
		}
	}
}
