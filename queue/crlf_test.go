package queue

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

// crlfReference is crlfWriter's byte-at-a-time definition: a bare LF
// becomes CRLF, every byte counts toward the limit, 8-bit bytes are noted,
// and finish ends the message with CRLF.
func crlfReference(in [][]byte, limit int64) (out []byte, n int64, eightbit bool, err error) {
	prevCR := false
	var last byte
	put := func(b byte) error {
		n++
		if limit > 0 && n > limit {
			return ErrTooBig
		}
		last = b
		out = append(out, b)
		return nil
	}
	for _, p := range in {
		for _, b := range p {
			if b == '\n' && !prevCR {
				if err := put('\r'); err != nil {
					return nil, 0, false, err
				}
			}
			if err := put(b); err != nil {
				return nil, 0, false, err
			}
			prevCR = b == '\r'
			if b >= 0x80 {
				eightbit = true
			}
		}
	}
	if n > 0 && last != '\n' {
		if last != '\r' {
			if err := put('\r'); err != nil {
				return nil, 0, false, err
			}
		}
		if err := put('\n'); err != nil {
			return nil, 0, false, err
		}
	}
	return out, n, eightbit, nil
}

func checkCRLF(t *testing.T, data []byte, cut int, limit int64) {
	t.Helper()
	var chunks [][]byte
	if cut > 0 && cut < len(data) {
		chunks = [][]byte{data[:cut], data[cut:]}
	} else {
		chunks = [][]byte{data}
	}
	want, wantN, want8, wantErr := crlfReference(chunks, limit)
	var buf bytes.Buffer
	cw := &crlfWriter{w: bufio.NewWriter(&buf), limit: limit}
	var err error
	for _, c := range chunks {
		if _, err = cw.Write(c); err != nil {
			break
		}
	}
	if err == nil {
		err = cw.finish()
	}
	if !errors.Is(err, wantErr) && !(err == nil && wantErr == nil) {
		t.Fatalf("%q cut %d limit %d: err %v, want %v", data, cut, limit, err, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !bytes.Equal(buf.Bytes(), want) || cw.n != wantN || cw.eightbit != want8 {
		t.Fatalf("%q cut %d limit %d: got %q n=%d 8bit=%v, want %q n=%d 8bit=%v",
			data, cut, limit, buf.Bytes(), cw.n, cw.eightbit, want, wantN, want8)
	}
}

func TestCRLFWriter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		data  string
		cut   int
		limit int64
	}{
		{name: "crlf", data: "a: b\r\n\r\nbody\r\n"},
		{name: "bare lf", data: "a: b\n\nbody\n"},
		{name: "cr lf split", data: "line\r\nnext\r\n", cut: 5},
		{name: "bare cr", data: "a\rb\r"},
		{name: "no final newline", data: "abc"},
		{name: "eight bit", data: "caf\xc3\xa9\n"},
		{name: "empty", data: ""},
		{name: "at the limit", data: "ab\n", limit: 4},
		{name: "over the limit", data: "ab\n", limit: 3},
		{name: "over the limit in a run", data: "abcdef", limit: 3},
	} {
		t.Run(tc.name, func(t *testing.T) { checkCRLF(t, []byte(tc.data), tc.cut, tc.limit) })
	}
}

// FuzzCRLFWriter: the run-at-a-time writer gives the reference's bytes,
// count, 8-bit flag and errors, however the input is cut.
func FuzzCRLFWriter(f *testing.F) {
	f.Add([]byte("a: b\r\n\r\nbody\n.\r\n"), 3, int64(0))
	f.Add([]byte("x\ry\n\n\r\r\n\xff"), 1, int64(7))
	f.Fuzz(func(t *testing.T, data []byte, cut int, limit int64) {
		if len(data) > 1<<16 {
			return
		}
		checkCRLF(t, data, cut, limit)
	})
}
