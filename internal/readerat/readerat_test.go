package readerat

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestConcat(t *testing.T) {
	file := strings.NewReader("0123456789")
	tests := []struct {
		name  string
		parts []*io.SectionReader
		want  string
	}{
		{name: "none", want: ""},
		{name: "one", parts: []*io.SectionReader{String("abc")}, want: "abc"},
		{name: "empty parts skipped", parts: []*io.SectionReader{String(""), String("ab"), String(""), String("c")}, want: "abc"},
		{name: "prefix and cut file", parts: []*io.SectionReader{
			String("Return-Path: <>\r\n"),
			io.NewSectionReader(file, 0, 3),
			io.NewSectionReader(file, 7, 3),
		}, want: "Return-Path: <>\r\n012789"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Concat(tc.parts...)
			if c.Size() != int64(len(tc.want)) {
				t.Fatalf("Size = %d, want %d", c.Size(), len(tc.want))
			}
			got, err := io.ReadAll(io.NewSectionReader(c, 0, c.Size()))
			if err != nil || string(got) != tc.want {
				t.Fatalf("ReadAll = %q, %v; want %q", got, err, tc.want)
			}
			// Every offset and length reads the same bytes as the whole.
			for off := 0; off <= len(tc.want); off++ {
				for n := 0; n <= len(tc.want)-off+2; n++ {
					b := make([]byte, n)
					m, err := c.ReadAt(b, int64(off))
					want := tc.want[off:min(len(tc.want), off+n)]
					if string(b[:m]) != want {
						t.Fatalf("ReadAt(%d, %d) = %q, want %q", off, n, b[:m], want)
					}
					if m < n && err != io.EOF {
						t.Fatalf("ReadAt(%d, %d): short read with %v", off, n, err)
					}
					if m == n && err != nil && (err != io.EOF || off+n != len(tc.want)) {
						t.Fatalf("ReadAt(%d, %d): full read with %v", off, n, err)
					}
				}
			}
		})
	}
}

func TestConcatShortPart(t *testing.T) {
	// A part that says it is longer than its source: reading past the
	// source's end is an error, not silently missing bytes.
	short := io.NewSectionReader(bytes.NewReader([]byte("ab")), 0, 5)
	c := Concat(short, String("xyz"))
	if _, err := io.ReadAll(io.NewSectionReader(c, 0, c.Size())); err == nil {
		t.Fatal("no error for a part shorter than it said")
	}
}
