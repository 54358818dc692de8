package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/internal/readerat"
)

// spamMsg has two forged spam fields (one folded), an indented name and a
// field that ends the header.
const spamMsg = "From: sender@remote.test\r\n" +
	"X-Spam-Status: Yes, forged one\r\n" +
	"Subject: hello\r\n" +
	"x-spam-status: No, forged two\r\n\tfolded\r\n  twice\r\n" +
	"X-Spamd-Result : default: False [0.00 / 15.00]\r\n" +
	"To: alice@a.test\r\n" +
	"X-Last: end\r\n" +
	"\r\n" +
	"X-Spam-Status: in the body\r\n"

// without returns spamMsg without the given fields (the lines that start
// with them and their folds).
func without(msg string, fields ...string) string {
	for _, f := range fields {
		i := strings.Index(msg, f)
		if i < 0 {
			panic(f)
		}
		end := i + len(f)
		for end < len(msg) && (msg[end] == ' ' || msg[end] == '\t') {
			end += strings.Index(msg[end:], "\r\n") + 2
		}
		msg = msg[:i] + msg[end:]
	}
	return msg
}

const (
	forged1 = "X-Spam-Status: Yes, forged one\r\n"
	forged2 = "x-spam-status: No, forged two\r\n"
	spamd   = "X-Spamd-Result : default: False [0.00 / 15.00]\r\n"
	last    = "X-Last: end\r\n"
	trace   = "Received: from client.test\r\n"
)

// TestRemoveFields: verdicts remove the message's own fields, counted as
// a milter counts them, and fields earlier filters added.
func TestRemoveFields(t *testing.T) {
	ours := Field{Name: "X-Spam-Status", Value: "No, score=-1"}
	tests := []struct {
		name     string
		verdicts []Verdict
		header   string // added fields, on top
		msg      string // the rest of the stored copy
	}{
		{name: "first occurrence", verdicts: []Verdict{{Remove: []FieldRef{{"X-Spam-Status", 1}}}},
			msg: trace + without(spamMsg, forged1)},
		{name: "second, folded, any case", verdicts: []Verdict{{Remove: []FieldRef{{"X-SPAM-STATUS", 2}}}},
			msg: trace + without(spamMsg, forged2)},
		{name: "every occurrence", verdicts: []Verdict{{Remove: []FieldRef{{"x-spam-status", 0}}}},
			msg: trace + without(spamMsg, forged1, forged2)},
		{name: "white space before the colon", verdicts: []Verdict{{Remove: []FieldRef{{"X-Spamd-Result", 1}}}},
			msg: trace + without(spamMsg, spamd)},
		{name: "the header's last field", verdicts: []Verdict{{Remove: []FieldRef{{"X-Last", 1}}}},
			msg: trace + without(spamMsg, last)},
		{name: "the caller's trace field", verdicts: []Verdict{{Remove: []FieldRef{{"Received", 1}}}},
			msg: spamMsg},
		{name: "a missing occurrence", verdicts: []Verdict{{Remove: []FieldRef{{"X-Spam-Status", 3}, {"X-Nope", 0}}}},
			msg: trace + spamMsg},
		{name: "changed: removed, and the new value on top",
			verdicts: []Verdict{{Remove: []FieldRef{{"X-Spam-Status", 2}}, Headers: []Field{{"X-Spam-Status", "Yes"}}}},
			header:   "X-Spam-Status: Yes\r\n", msg: trace + without(spamMsg, forged2)},
		{name: "removals add up, each counted over the message as it came",
			verdicts: []Verdict{{Remove: []FieldRef{{"X-Spam-Status", 1}}}, {Remove: []FieldRef{{"X-Spam-Status", 2}, {"X-Last", 1}}}},
			msg:      trace + without(spamMsg, forged1, forged2, last)},
		{name: "an added field counts first",
			verdicts: []Verdict{{Headers: []Field{ours}}, {Remove: []FieldRef{{"X-Spam-Status", 1}}}},
			msg:      trace + spamMsg},
		{name: "then the message's own",
			verdicts: []Verdict{{Headers: []Field{ours}}, {Remove: []FieldRef{{"X-Spam-Status", 2}}}},
			header:   "X-Spam-Status: No, score=-1\r\n", msg: trace + without(spamMsg, forged1)},
		{name: "every occurrence, added ones too",
			verdicts: []Verdict{{Headers: []Field{ours, {"X-Other", "1"}}}, {Remove: []FieldRef{{"X-Spam-Status", 0}}}},
			header:   "X-Other: 1\r\n", msg: trace + without(spamMsg, forged1, forged2)},
		{name: "a filter's own fields are not in its count",
			verdicts: []Verdict{{Headers: []Field{ours}, Remove: []FieldRef{{"X-Spam-Status", 1}}}},
			header:   "X-Spam-Status: No, score=-1\r\n", msg: trace + without(spamMsg, forged1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			var fs []Filter
			for i, v := range tc.verdicts {
				fs = append(fs, verdictFilter(string(rune('a'+i)), v))
			}
			if err := errOf(t, e.pipeline(fs...).Deliver(context.Background(), request(spamMsg, alice)), alice); err != nil {
				t.Fatal(err)
			}
			m := e.mail(alice)
			want := "Return-Path: <sender@remote.test>\r\n" + tc.header + tc.msg
			if len(m) != 1 || m[0].Body != want {
				t.Fatalf("stored %+v\nwant %q", m, want)
			}
		})
	}
}

// TestRemovePerRecipient: a per-account verdict removes from that
// account's copy only; a redirected copy has the removals too.
func TestRemovePerRecipient(t *testing.T) {
	e := newTestEnv(t)
	f := rcptFilter("f", Verdict{Remove: []FieldRef{{"X-Last", 1}}}, map[string]Verdict{
		alice: {Remove: []FieldRef{{"X-Spam-Status", 0}}},
		bob:   {Redirect: []string{"x@c.test"}, Remove: []FieldRef{{"X-Spamd-Result", 1}}},
	})
	out := e.pipeline(f).Deliver(context.Background(), request(spamMsg, "team@a.test"))
	for _, a := range []string{alice, bob} {
		if err := errOf(t, out, a); err != nil {
			t.Fatal(err)
		}
	}
	if m := e.mail(alice); len(m) != 1 || m[0].Body != wantPrefix+without(spamMsg, forged1, forged2, last) {
		t.Errorf("alice's copy %+v", m)
	}
	bobs := wantPrefix + without(spamMsg, spamd, last)
	if m := e.mail(bob); len(m) != 1 || m[0].Body != bobs {
		t.Errorf("bob's copy %+v", m)
	}
	if q := e.queue.all(); len(q) != 1 || q[0].body != strings.TrimPrefix(bobs, "Return-Path: <sender@remote.test>\r\n") {
		t.Errorf("redirected %+v", q)
	}
}

// TestRemoveInvalid: bad refs are a failed filter, like any bad verdict.
func TestRemoveInvalid(t *testing.T) {
	many := make([]FieldRef, 60)
	for i := range many {
		many[i] = FieldRef{"X-A", i + 1}
	}
	tests := []struct {
		name    string
		filters []Filter
	}{
		{name: "bad name", filters: []Filter{verdictFilter("f", Verdict{Remove: []FieldRef{{"X Spam", 1}}})}},
		{name: "colon in name", filters: []Filter{verdictFilter("f", Verdict{Remove: []FieldRef{{"X:", 1}}})}},
		{name: "empty name", filters: []Filter{verdictFilter("f", Verdict{Remove: []FieldRef{{"", 0}}})}},
		{name: "negative index", filters: []Filter{verdictFilter("f", Verdict{Remove: []FieldRef{{"X-A", -1}}})}},
		{name: "bad per-account ref", filters: []Filter{rcptFilter("f", Verdict{}, map[string]Verdict{alice: {Remove: []FieldRef{{"X\r\nY", 1}}}})}},
		{name: "too many in one verdict", filters: []Filter{verdictFilter("f", Verdict{Remove: append(many, many...)})}},
		{name: "too many in all", filters: []Filter{verdictFilter("f", Verdict{Remove: many}), verdictFilter("g", Verdict{Remove: many})}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			err := errOf(t, e.pipeline(tc.filters...).Deliver(context.Background(), request(spamMsg, alice)), alice)
			if !errors.Is(err, ErrFilter) {
				t.Fatalf("got %v, want ErrFilter", err)
			}
			if len(e.mail(alice)) != 0 {
				t.Error("stored a copy")
			}
		})
	}
}

// locate runs locateFields over s.
func locate(s string, refs ...FieldRef) [][2]int64 {
	r, _ := locateFields(readerat.String(s), refs)
	return r
}

// TestLocateFields: the scan's edges.
func TestLocateFields(t *testing.T) {
	x := FieldRef{"X", 0}
	tests := []struct {
		name string
		msg  string
		refs []FieldRef
		want [][2]int64
	}{
		{name: "adjacent joined", msg: "X: 1\r\nx: 2\r\nY: 3\r\n\r\n", refs: []FieldRef{x}, want: [][2]int64{{0, 12}}},
		{name: "separate", msg: "X: 1\r\nY: 3\r\nX: 2\r\n", refs: []FieldRef{x}, want: [][2]int64{{0, 6}, {12, 18}}},
		{name: "last line without line end", msg: "Y: 3\r\nX: 2", refs: []FieldRef{x}, want: [][2]int64{{6, 10}}},
		{name: "fold at the end of input", msg: "X: 2\r\n f", refs: []FieldRef{x}, want: [][2]int64{{0, 8}}},
		{name: "bare LF lines", msg: "X: 1\n y\nY: 2\n", refs: []FieldRef{x}, want: [][2]int64{{0, 8}}},
		{name: "header ends at a line that is no field", msg: "Y: 1\r\nnot a field\r\nX: 2\r\n", refs: []FieldRef{x}},
		{name: "header ends at a fold with no field", msg: " X: 1\r\nX: 2\r\n", refs: []FieldRef{x}},
		{name: "name with a space", msg: "X Y: 1\r\nX: 2\r\n", refs: []FieldRef{{"X Y", 0}, x}},
		{name: "empty line ends it", msg: "Y: 1\r\n\r\nX: 2\r\n", refs: []FieldRef{x}},
		{name: "the line ending a field ends the header", msg: "X: 1\r\n\r\n", refs: []FieldRef{x}, want: [][2]int64{{0, 6}}},
		{name: "long name never matches but is a field", msg: strings.Repeat("a", 5000) + ": 1\r\nX: 2\r\n", refs: []FieldRef{x}, want: [][2]int64{{5005, 5011}}},
		{name: "index counts per name", msg: "X: 1\r\nY: 1\r\nY: 2\r\nX: 2\r\nX: 3\r\n", refs: []FieldRef{{"x", 2}, {"Y", 1}}, want: [][2]int64{{6, 12}, {18, 24}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := locate(tc.msg, tc.refs...); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLocateBound: fields that end within MaxHeaderBytes are found; one
// that does not, and any after it, are not; the hostile header of 10,000
// tiny fields costs a few buffers.
func TestLocateBound(t *testing.T) {
	pad := func(n int) string { // fields of n octets in all
		var b strings.Builder
		for n-b.Len() >= 16 {
			b.WriteString("A: 1234567\r\n")
		}
		if rest := n - b.Len(); rest > 0 {
			b.WriteString("B:" + strings.Repeat("b", rest-4) + "\r\n")
		}
		return b.String()
	}
	x := "X: 1\r\n"
	tests := []struct {
		name string
		msg  string
		want int // ranges found
	}{
		{name: "ends at the bound", msg: pad(MaxHeaderBytes-len(x)) + x + "\r\nbody", want: 1},
		{name: "ends at the bound, end of input", msg: pad(MaxHeaderBytes-len(x)) + x, want: 1},
		{name: "ends at the bound, fold after", msg: pad(MaxHeaderBytes-len(x)) + x + " more\r\n\r\n"},
		{name: "ends one past the bound", msg: pad(MaxHeaderBytes-len(x)+1) + x + "\r\n"},
		{name: "starts past the bound", msg: pad(MaxHeaderBytes+10) + x + "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := locate(tc.msg, FieldRef{"X", 1}); len(got) != tc.want {
				t.Errorf("found %v, want %d", got, tc.want)
			}
		})
	}

	// 10,000 tiny fields, a removal near the bound, then a 20 MiB body:
	// the scan and the copy hold buffers, never the message.
	var b strings.Builder
	for range 10000 {
		b.WriteString("A: 1\r\n")
	}
	head := b.String() + pad(MaxHeaderBytes-b.Len()-len(x)-12) + x
	msg := readerat.Concat(readerat.String(head+"A: 12345\r\n\r\n"), io.NewSectionReader(zeros{}, 0, 20<<20))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ranges, _ := locateFields(msg, []FieldRef{{"X", 1}, {"A", 10000}})
	cut := readerat.Cut(msg, ranges)
	n, err := io.Copy(io.Discard, cut)
	runtime.ReadMemStats(&after)
	if err != nil || len(ranges) != 2 || n != msg.Size()-int64(len(x))-6 {
		t.Fatalf("ranges %v, copied %d of %d, %v", ranges, n, msg.Size(), err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
		t.Errorf("allocated %d bytes to cut two fields from a 20 MiB message", alloc)
	}
}

// zeros reads as endless zero octets.
type zeros struct{}

func (zeros) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

// TestLocateManyRanges: Index 0 over thousands of alternating fields stops
// at maxCutRanges and says so.
func TestLocateManyRanges(t *testing.T) {
	msg := strings.Repeat("X: 1\r\nY: 2\r\n", maxCutRanges+5) + "\r\n"
	ranges, more := locateFields(readerat.String(msg), []FieldRef{{"X", 0}})
	if len(ranges) != maxCutRanges || !more {
		t.Errorf("%d ranges, more %v", len(ranges), more)
	}
}

// refLocate is the scan's rules written plainly, over the whole input in
// memory: the oracle for FuzzLocateFields.
func refLocate(msg []byte, refs []FieldRef) [][2]int64 {
	var out [][2]int64
	seen := map[string]int{}
	off := 0
	for off < len(msg) && off < MaxHeaderBytes {
		line := msg[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			break
		}
		name := bytes.TrimRight(line[:colon], " \t")
		if len(name) == 0 || bytes.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			break
		}
		end := off + len(line)
		for end < len(msg) && line[len(line)-1] == '\n' && (msg[end] == ' ' || msg[end] == '\t') {
			line = msg[end:]
			if i := bytes.IndexByte(line, '\n'); i >= 0 {
				line = line[:i+1]
			}
			end += len(line)
		}
		if end > MaxHeaderBytes {
			break
		}
		k := strings.ToLower(string(name))
		seen[k]++
		for _, r := range refs {
			if strings.EqualFold(r.Name, k) && (r.Index == 0 || r.Index == seen[k]) {
				if n := len(out); n > 0 && out[n-1][1] == int64(off) {
					out[n-1][1] = int64(end)
				} else {
					out = append(out, [2]int64{int64(off), int64(end)})
				}
				break
			}
		}
		off = end
	}
	return out
}

// FuzzLocateFields: the streaming scan finds what the plain rules find,
// and cutting its ranges leaves a message whose header has no field the
// refs name once they are all removed.
func FuzzLocateFields(f *testing.F) {
	f.Add([]byte(spamMsg), "X-Spam-Status", 2)
	f.Add([]byte(spamMsg), "x-spamd-result", 0)
	f.Add([]byte("X: 1\r\n y\r\nX : 2\n\tz\nX: 3"), "X", 0)
	f.Add([]byte("X: 1\r\n\r\nX: 2\r\n"), "X", 1)
	f.Add([]byte(" X: 1\r\n"), "X", 1)
	f.Add([]byte("X\x00: 1\r\nX: 2\r\n"), "X", 1)
	f.Fuzz(func(t *testing.T, msg []byte, name string, index int) {
		ref := FieldRef{Name: name, Index: index}
		if ref.validate() != nil {
			return
		}
		got, more := locateFields(readerat.String(string(msg)), []FieldRef{ref})
		want := refLocate(msg, []FieldRef{ref})
		if len(want) > maxCutRanges {
			want = want[:maxCutRanges]
		}
		if more != (len(refLocate(msg, []FieldRef{ref})) > maxCutRanges) || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("located %v (more %v), want %v", got, more, want)
		}
		if index != 0 || more {
			return
		}
		cut := readerat.Cut(readerat.String(string(msg)), got)
		rest, err := io.ReadAll(cut)
		if err != nil {
			t.Fatal(err)
		}
		if left := locate(string(rest), FieldRef{Name: name}); len(left) != 0 && len(msg) < MaxHeaderBytes/2 {
			t.Fatalf("after the cut %q still has %v", rest, left)
		}
	})
}
