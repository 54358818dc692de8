package imapd

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// spoolBytes reads back everything sp holds.
func spoolBytes(t *testing.T, sp *appendSpool) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(sp.readerAt(), 0, sp.size))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAppendSpoolReuse: a spool's pooled buffer goes back at close and the
// next command's spool holds its own bytes only, whether they come by
// io.Copy (ReadFrom), by Write, across the switch to a file, or with every
// pooled buffer out.
func TestAppendSpoolReuse(t *testing.T) {
	fill := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	cases := []struct {
		name string
		run  func(sp *appendSpool, want []byte) error
		size int
	}{
		{"copy, large", func(sp *appendSpool, w []byte) error { _, err := io.Copy(sp, bytes.NewReader(w)); return err }, spoolInMemory - 1},
		{"copy, small", func(sp *appendSpool, w []byte) error { _, err := io.Copy(sp, bytes.NewReader(w)); return err }, 10},
		{"copy, one byte at a time", func(sp *appendSpool, w []byte) error {
			_, err := io.Copy(sp, iotest.OneByteReader(bytes.NewReader(w)))
			return err
		}, 3000},
		{"copy, exactly the memory", func(sp *appendSpool, w []byte) error { _, err := io.Copy(sp, bytes.NewReader(w)); return err }, spoolInMemory},
		{"copy, into a file", func(sp *appendSpool, w []byte) error { _, err := io.Copy(sp, bytes.NewReader(w)); return err }, 3*spoolInMemory + 7},
		{"write, into a file", func(sp *appendSpool, w []byte) error {
			for len(w) > 0 {
				n := min(len(w), 5000)
				if _, err := sp.Write(w[:n]); err != nil {
					return err
				}
				w = w[n:]
			}
			return nil
		}, spoolInMemory + 5000},
	}
	for round, pooled := range []bool{true, false} {
		if !pooled {
			// Every pooled buffer out: spools grow their own.
			memSpools.Add(maxMemSpools)
		}
		for i, c := range cases {
			want := fill(byte('a'+i+round*len(cases)), c.size)
			sp, _ := newAppendSpool()
			if err := c.run(sp, want); err != nil {
				t.Fatalf("%s (pooled %v): %v", c.name, pooled, err)
			}
			if got := spoolBytes(t, sp); sp.size != int64(len(want)) || !bytes.Equal(got, want) {
				t.Errorf("%s (pooled %v): spool holds %d bytes, size %d, want %d of %q", c.name, pooled, len(got), sp.size, len(want), want[0])
			}
			if inFile := sp.f != nil; inFile != (c.size > spoolInMemory) {
				t.Errorf("%s (pooled %v): in a file %v, want %v", c.name, pooled, inFile, !inFile)
			}
			if (sp.pooled != nil) != (pooled && c.size <= spoolInMemory) {
				t.Errorf("%s (pooled %v): pooled buffer held %v", c.name, pooled, sp.pooled != nil)
			}
			sp.close()
		}
		if !pooled {
			memSpools.Add(-maxMemSpools)
		}
	}
	if n := memSpools.Load(); n != 0 {
		t.Errorf("%d pooled spools still counted out after every close", n)
	}
}

// TestAppendSpoolReadError: a failure reading the literal is the
// client's, returned as it came, not a spool failure of ours.
func TestAppendSpoolReadError(t *testing.T) {
	cut := errors.New("connection reset")
	for _, size := range []int{100, spoolInMemory + 100} {
		sp, _ := newAppendSpool()
		r := io.MultiReader(bytes.NewReader(make([]byte, size)), iotest.ErrReader(cut))
		_, err := io.Copy(sp, r)
		var se *spoolError
		if !errors.Is(err, cut) || errors.As(err, &se) {
			t.Errorf("size %d: err %v, want the reader's own", size, err)
		}
		sp.close()
	}
	if n := memSpools.Load(); n != 0 {
		t.Errorf("%d pooled spools still counted out", n)
	}
}
