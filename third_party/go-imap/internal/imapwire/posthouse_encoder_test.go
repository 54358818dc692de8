package imapwire

import (
	"bufio"
	"bytes"
	"testing"
)

// TestEncoderNumbersDoNotAllocate: numbers are written straight into the
// buffered writer, and Reset makes an encoder reusable (Posthouse patch).
func TestEncoderNumbersDoNotAllocate(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	var enc Encoder
	enc.Reset(bw, ConnSideServer)
	allocs := testing.AllocsPerRun(100, func() {
		enc.Number(4294967295).SP().ModSeq(18446744073709551615).SP().Number(7).SP()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
	out.Reset()
	bw.Reset(&out)
	enc.Reset(bw, ConnSideServer)
	if err := enc.Atom("*").SP().Number(123456).SP().ModSeq(1 << 40).CRLF(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "* 123456 1099511627776\r\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
	// A full buffer: AppendUint grows a copy, which is written whole.
	small := bufio.NewWriterSize(&out, 16)
	out.Reset()
	enc.Reset(small, ConnSideServer)
	enc.Atom("0123456789abcd").SP().Number(4294967295)
	if err := enc.CRLF(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "0123456789abcd 4294967295\r\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}
