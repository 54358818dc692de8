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

func TestCut(t *testing.T) {
	const msg = "0123456789"
	tests := []struct {
		name string
		skip [][2]int64
		want string
	}{
		{name: "none", want: msg},
		{name: "start", skip: [][2]int64{{0, 3}}, want: "3456789"},
		{name: "end", skip: [][2]int64{{7, 10}}, want: "0123456"},
		{name: "several", skip: [][2]int64{{1, 2}, {4, 6}, {9, 10}}, want: "023678"},
		{name: "adjacent", skip: [][2]int64{{1, 3}, {3, 5}}, want: "056789"},
		{name: "all", skip: [][2]int64{{0, 10}}, want: ""},
		{name: "past the end clamped", skip: [][2]int64{{8, 20}, {30, 40}}, want: "01234567"},
		{name: "overlap clamped", skip: [][2]int64{{2, 5}, {4, 7}}, want: "01789"},
		{name: "empty and backwards ignored", skip: [][2]int64{{3, 3}, {6, 4}}, want: msg},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Cut(String(msg), tc.skip)
			got, err := io.ReadAll(io.NewSectionReader(c, 0, c.Size()))
			if err != nil || string(got) != tc.want || c.Size() != int64(len(tc.want)) {
				t.Fatalf("Cut = %q (size %d), %v; want %q", got, c.Size(), err, tc.want)
			}
			// In front of a prefix, as smtpd and the pipeline use it.
			p := Concat(String("X: y\r\n"), c)
			got, err = io.ReadAll(io.NewSectionReader(p, 0, p.Size()))
			if err != nil || string(got) != "X: y\r\n"+tc.want {
				t.Fatalf("Concat(prefix, Cut) = %q, %v", got, err)
			}
		})
	}
}

func TestConcatFlattens(t *testing.T) {
	inner := Concat(String("ab"), String("cd"))
	outer := Concat(String("x"), inner, String("y"))
	c, ok := func() (*concat, bool) { r, _, _ := outer.Outer(); c, ok := r.(*concat); return c, ok }()
	if !ok || len(c.parts) != 4 {
		t.Fatalf("nested Concat not flattened: %#v", c)
	}
	got, _ := io.ReadAll(outer)
	if string(got) != "xabcdy" {
		t.Fatalf("read %q", got)
	}
}
