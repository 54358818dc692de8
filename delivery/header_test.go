package delivery

import (
	"context"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/internal/readerat"
)

func TestParseHeader(t *testing.T) {
	big := strings.Repeat("a", 1<<20)
	tests := []struct {
		name     string
		msg      string
		complete bool
		subject  string
		fields   int // at least
	}{
		{name: "plain", msg: testMsg, complete: true, subject: "hello", fields: 4},
		{name: "no body", msg: "Subject: hi\r\n", complete: true, subject: "hi", fields: 1},
		{name: "folded", msg: "Subject: one\r\n two\r\n\r\nx\r\n", complete: true, subject: "one two", fields: 1},
		{name: "1 MiB field", msg: "Subject: s\r\nX-Big: " + big + "\r\n\r\nbody\r\n", subject: "s", fields: 1},
		{name: "1 MiB of short fields", msg: strings.Repeat("X: y\r\n", (1<<20)/6) + "Subject: late\r\n\r\n", fields: 1000},
		{name: "1 MiB of folds", msg: "Subject: s\r\nX-Fold: a" + strings.Repeat("\r\n b", (1<<20)/4) + "\r\n\r\n", subject: "s", fields: 1},
		{name: "NUL in a value", msg: "Subject: a\x00b\r\n\r\n", complete: true, subject: "a\x00b", fields: 1},
		{name: "NUL in a name", msg: "Subject: s\r\nX\x00Y: 1\r\n\r\n", subject: "s", fields: 1},
		{name: "no colon", msg: "Subject: s\r\nnot a header\r\n\r\n", subject: "s", fields: 1},
		{name: "starts with a space", msg: " Subject: s\r\n\r\n"},
		{name: "empty", msg: "", complete: true},
		{name: "body only", msg: "\r\nbody\r\n", complete: true},
		{name: "exactly the bound", msg: "X: " + strings.Repeat("a", MaxHeaderBytes-7) + "\r\n\r\n", complete: true, fields: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			h := parseHeader(readerat.String(tc.msg))
			runtime.ReadMemStats(&after)
			if h.Complete != tc.complete {
				t.Errorf("Complete = %v, want %v", h.Complete, tc.complete)
			}
			if got := h.Get("Subject"); got != tc.subject {
				t.Errorf("Subject = %q, want %q", got, tc.subject)
			}
			if h.Len() < tc.fields {
				t.Errorf("%d fields, want at least %d", h.Len(), tc.fields)
			}
			// Whatever the input, parsing allocates a small multiple of
			// the bound, not of the input (which is up to 4× the bound
			// here). The margin is generous: 12× the bound.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 12*MaxHeaderBytes {
				t.Errorf("parsing allocated %d bytes (bound %d)", alloc, MaxHeaderBytes)
			}
		})
	}
}

// TestHeaderOnlyWhenAsked: without a filter that asks, the header is never
// parsed (SMTP intake pays nothing for it).
func TestHeaderOnlyWhenAsked(t *testing.T) {
	e := newTestEnv(t)
	var parsed bool
	f := &funcFilter{name: "blind", fn: func(_ context.Context, m *Message) (Decision, error) {
		parsed = m.header.Header.Len() > 0 || m.header.Complete
		return Decision{}, nil
	}}
	if err := errOf(t, e.pipeline(f).Deliver(context.Background(), request(testMsg, alice)), alice); err != nil {
		t.Fatal(err)
	}
	if parsed {
		t.Error("header parsed although no filter asked for it")
	}
}

// FuzzParseHeader: any input parses without panic, within the bound, and a
// header called complete was read up to its end.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{testMsg, "", "\r\n", "Subject: a\r\n b\r\n\r\n", " x\r\n", "a\x00: b\r\n", "X: " + strings.Repeat("y", 5000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		r := readerat.String(msg)
		h := parseHeader(r)
		n := 0
		for fs := h.Fields(); fs.Next(); {
			n += len(fs.Key()) + len(fs.Value())
		}
		if n > MaxHeaderBytes {
			t.Fatalf("%d bytes of fields from a bound of %d", n, MaxHeaderBytes)
		}
		if h.Complete && len(msg) > MaxHeaderBytes && !strings.Contains(msg[:MaxHeaderBytes], "\n\r\n") && !strings.Contains(msg[:MaxHeaderBytes], "\n\n") {
			t.Fatal("a header longer than the bound called complete")
		}
		if _, err := io.Copy(io.Discard, io.NewSectionReader(r, 0, r.Size())); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzValidateField: a field a filter hands back is either refused or
// renders as exactly one header field that parses back to its name, with
// no line over 998 octets: a filter cannot inject a field or end the
// header.
func FuzzValidateField(f *testing.F) {
	for _, s := range [][2]string{
		{"X-Spam-Status", "No"}, {"Authentication-Results", "mx;\r\n\tdkim=pass"}, {"X", "a\r\nB: c"},
		{"X", "a\nb"}, {"X:", "y"}, {"", "y"}, {"X", "\r\n\r\n"}, {"X", "a\r\n \r\n"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		fd := Field{Name: name, Value: value}
		if fd.validate() != nil {
			return
		}
		pl := plan{fields: []block{{fields: []Field{fd}, all: -1}}}
		raw := pl.header()
		for _, line := range strings.Split(strings.TrimSuffix(raw, "\r\n"), "\r\n") {
			if len(line) > maxFieldLine {
				t.Fatalf("line of %d octets", len(line))
			}
		}
		h := parseHeader(readerat.String(raw + "\r\nbody\r\n"))
		if !h.Complete || h.Len() != 1 || !h.Has(name) {
			t.Fatalf("%q parsed as %d fields (complete %v)", raw, h.Len(), h.Complete)
		}
	})
}
