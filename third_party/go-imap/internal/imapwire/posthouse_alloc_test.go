package imapwire

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// TestEncoderSpecialAllocs: the parentheses and spaces of a FETCH response
// cost no allocation (Posthouse patch), and are written as given.
func TestEncoderSpecialAllocs(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	enc := NewEncoder(bw, ConnSideServer)
	enc.NoFlush = true
	line := func(w *bufio.Writer) {
		enc.Reset(w, ConnSideServer)
		enc.NoFlush = true
		enc.Atom("*").SP().Number(7).SP().Atom("FETCH").SP().Special('(').Atom("UID").SP().Number(42).SP().
			Atom("FLAGS").SP().Special('(').Special(')').Special(')')
		if err := enc.CRLF(); err != nil {
			t.Fatal(err)
		}
	}
	line(bw)
	bw.Flush()
	if got, want := out.String(), "* 7 FETCH (UID 42 FLAGS ())\r\n"; got != want {
		t.Fatalf("encoded %q, want %q", got, want)
	}
	discard := bufio.NewWriterSize(io.Discard, 64<<10)
	if n := testing.AllocsPerRun(1000, func() { line(discard) }); n != 0 {
		t.Errorf("a FETCH FLAGS line allocates %v times", n)
	}
}
