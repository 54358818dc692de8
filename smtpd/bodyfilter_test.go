package smtpd

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// refFilter is the byte-at-a-time definition of what bodyFilter refuses:
// the first bare CR, bare LF or NUL, whatever the read boundaries.
func refFilter(data []byte) error {
	prevCR := false
	for _, c := range data {
		if prevCR && c != '\n' {
			return errBareCR
		}
		switch c {
		case '\n':
			if !prevCR {
				return errBareLF
			}
		case 0:
			return errNUL
		}
		prevCR = c == '\r'
	}
	if prevCR {
		return errBareCR
	}
	return nil
}

// sizedReader hands out data in reads of at most size bytes.
type sizedReader struct {
	data []byte
	size int
}

func (c *sizedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	return n, nil
}

// runFilter passes data through a bodyFilter in reads of size bytes.
func runFilter(data []byte, size int) error {
	f := &bodyFilter{r: &sizedReader{data: data, size: size}, max: 1 << 30}
	if _, err := io.Copy(io.Discard, f); err != nil {
		return err
	}
	return f.finish()
}

func TestBodyFilter(t *testing.T) {
	line := "Subject: a line of text\r\n"
	tests := []struct {
		name string
		data string
		want error
	}{
		{"clean", "From: a@b\r\n\r\n" + line + line, nil},
		{"empty", "", nil},
		{"bare LF", "a\r\nb\nc\r\n", errBareLF},
		{"LF first", "\nabc\r\n", errBareLF},
		{"bare CR", "a\rb\r\n", errBareCR},
		{"CR CR LF", "a\r\r\n", errBareCR},
		{"CR at the end", "abc\r\n\r", errBareCR},
		{"NUL", "a\x00b\r\n", errNUL},
		{"NUL after bare LF", "a\nb\x00", errBareLF},
		{"bare LF after NUL", "a\x00b\n", errNUL},
		{"smuggling", "a\r\n\n.\n\r\nMAIL FROM:<x>\r\n", errBareLF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if ref := refFilter([]byte(tc.data)); !errors.Is(ref, tc.want) && ref != tc.want {
				t.Fatalf("reference says %v, table says %v", ref, tc.want)
			}
			// Every read size, so that each CR LF pair is split somewhere.
			for size := 1; size <= len(tc.data)+1; size++ {
				if got := runFilter([]byte(tc.data), size); got != tc.want {
					t.Fatalf("reads of %d: %v, want %v", size, got, tc.want)
				}
			}
		})
	}
}

// FuzzBodyFilter checks the vectorised scan against the byte-at-a-time
// definition, for any data and read size.
func FuzzBodyFilter(f *testing.F) {
	f.Add([]byte("From: a@b\r\n\r\nbody\r\n"), uint8(7))
	f.Add([]byte("a\r\nb\nc"), uint8(2))
	f.Add([]byte("a\r\r\nb"), uint8(1))
	f.Add([]byte("x\r"), uint8(0))
	f.Add([]byte("\r\n\x00"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		want := refFilter(data)
		if got := runFilter(data, int(size)+1); got != want {
			t.Fatalf("%q in reads of %d: %v, want %v", data, int(size)+1, got, want)
		}
	})
}

func BenchmarkBodyFilter(b *testing.B) {
	line := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,\r\n"), 160)
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := runFilter(line, 4096); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBodyFilterBytewise is the byte-at-a-time scan, for comparison.
func BenchmarkBodyFilterBytewise(b *testing.B) {
	line := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,\r\n"), 160)
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := refFilter(line); err != nil {
			b.Fatal(err)
		}
	}
}
