package mailfile

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

type mboxMsg struct {
	body    string
	flags   []imap.Flag
	labels  []string
	deleted bool
}

func readAll(t *testing.T, src string, format MboxFormat) []mboxMsg {
	t.Helper()
	r := NewMboxReader(strings.NewReader(src), format)
	var out []mboxMsg
	for {
		m, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		b, err := io.ReadAll(m)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		out = append(out, mboxMsg{body: string(b), flags: m.Flags, labels: m.Labels, deleted: m.Deleted})
	}
}

func TestMboxReader(t *testing.T) {
	for _, tc := range []struct {
		name   string
		src    string
		format MboxFormat
		want   []mboxMsg
	}{
		{
			name: "two messages, LF to CRLF, separator blank dropped",
			src:  "From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody 1\n\nFrom c@d Tue Jan  2 00:00:00 2024\nSubject: two\n\nbody 2\n\n",
			want: []mboxMsg{{body: "Subject: one\r\n\r\nbody 1\r\n"}, {body: "Subject: two\r\n\r\nbody 2\r\n"}},
		},
		{
			name: "mboxrd unescaping",
			src:  "From x Mon Jan  1 00:00:00 2024\nS: 1\n\n>From here\n>>From there\n>Fromage\n\n",
			want: []mboxMsg{{body: "S: 1\r\n\r\nFrom here\r\n>From there\r\n>Fromage\r\n"}},
		},
		{
			name:   "mboxo unescaping",
			src:    "From x Mon Jan  1 00:00:00 2024\nS: 1\n\n>From here\n>>From there\n\n",
			format: MboxO,
			want:   []mboxMsg{{body: "S: 1\r\n\r\nFrom here\r\n>>From there\r\n"}},
		},
		{
			name: "From inside a paragraph is no separator",
			src:  "From x Mon Jan  1 00:00:00 2024\nS: 1\n\nline\nFrom me to you\n\n",
			want: []mboxMsg{{body: "S: 1\r\n\r\nline\r\nFrom me to you\r\n"}},
		},
		{
			name: "separator without blank line when it has a date",
			src:  "From x Mon Jan  1 00:00:00 2024\nS: 1\n\nline\nFrom y Mon Jan  1 00:00:00 2024\nS: 2\n\nb\n",
			want: []mboxMsg{{body: "S: 1\r\n\r\nline\r\n"}, {body: "S: 2\r\n\r\nb\r\n"}},
		},
		{
			name: "CRLF kept, two blank lines keep one",
			src:  "From x Mon Jan  1 00:00:00 2024\r\nS: 1\r\n\r\nb\r\n\r\n\r\nFrom y Mon Jan  1 00:00:00 2024\r\nS: 2\r\n\r\nc",
			want: []mboxMsg{{body: "S: 1\r\n\r\nb\r\n\r\n"}, {body: "S: 2\r\n\r\nc"}},
		},
		{
			name: "status fields become flags and leave",
			src:  "From x Mon Jan  1 00:00:00 2024\nSubject: s\nStatus: RO\nX-Status: AF\nX-Keywords: $Label1 Work\nX-UID: 5\n\nb\n",
			want: []mboxMsg{{body: "Subject: s\r\n\r\nb\r\n", flags: []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, "$Label1", "Work"}}},
		},
		{
			name: "thunderbird",
			src:  "From - Mon Jan  1 00:00:00 2024\nX-Mozilla-Status: 1007\nX-Mozilla-Status2: 00000000\nX-Mozilla-Keys: $label1                \nSubject: s\n\nb\n\nFrom - Mon Jan  1 00:00:00 2024\nX-Mozilla-Status: 0009\nSubject: gone\n\nb\n",
			want: []mboxMsg{
				{body: "Subject: s\r\n\r\nb\r\n", flags: []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, "$Forwarded", "$label1"}},
				{body: "Subject: gone\r\n\r\nb\r\n", flags: []imap.Flag{imap.FlagSeen}, deleted: true},
			},
		},
		{
			name: "google takeout labels",
			src:  "From 1234567@xxx Thu Jun 13 10:12:43 +0000 2024\nX-GM-THRID: 1\nX-Gmail-Labels: Inbox,Opened,\"Work, old\",Category Updates\nSubject: s\n\nb\n",
			want: []mboxMsg{{body: "X-GM-THRID: 1\r\nX-Gmail-Labels: Inbox,Opened,\"Work, old\",Category Updates\r\nSubject: s\r\n\r\nb\r\n", labels: []string{"Inbox", "Opened", "Work, old", "Category Updates"}}},
		},
		{
			name: "folded header and no body",
			src:  "From x Mon Jan  1 00:00:00 2024\nSubject: a\n b\nStatus: R\n",
			want: []mboxMsg{{body: "Subject: a\r\n b\r\n", flags: []imap.Flag{imap.FlagSeen}}},
		},
		{
			name: "leading blank lines",
			src:  "\n\nFrom x Mon Jan  1 00:00:00 2024\nS: 1\n\nb\n",
			want: []mboxMsg{{body: "S: 1\r\n\r\nb\r\n"}},
		},
		{
			name: "empty input",
			src:  "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readAll(t, tc.src, tc.format)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d messages, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range got {
				if got[i].body != tc.want[i].body {
					t.Errorf("message %d body %q, want %q", i, got[i].body, tc.want[i].body)
				}
				if !slices.Equal(got[i].flags, tc.want[i].flags) {
					t.Errorf("message %d flags %q, want %q", i, got[i].flags, tc.want[i].flags)
				}
				if !slices.Equal(got[i].labels, tc.want[i].labels) {
					t.Errorf("message %d labels %q, want %q", i, got[i].labels, tc.want[i].labels)
				}
				if got[i].deleted != tc.want[i].deleted {
					t.Errorf("message %d deleted %v", i, got[i].deleted)
				}
			}
		})
	}
}

func TestMboxNotMbox(t *testing.T) {
	_, err := NewMboxReader(strings.NewReader("Subject: x\n\nb\n"), MboxRD).Next()
	if !errors.Is(err, ErrNotMbox) {
		t.Fatalf("got %v, want ErrNotMbox", err)
	}
}

func TestMboxDates(t *testing.T) {
	src := "From x Mon Jan  1 10:00:00 2024\nDate: Tue, 2 Jan 2024 11:00:00 +0100\n\nb\n\nFrom y Thu Jun 13 10:12:43 +0200 2024\n\nb\n"
	r := NewMboxReader(strings.NewReader(src), MboxRD)
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC); !m.Received.Equal(want) {
		t.Errorf("Received %v, want %v", m.Received, want)
	}
	if want := time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC); !m.Date.Equal(want) {
		t.Errorf("Date %v, want %v", m.Date, want)
	}
	m, err = r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, off := m.Received.Zone(); off != 2*3600 || m.Received.Hour() != 10 {
		t.Errorf("Received %v, want 10:12:43 +0200", m.Received)
	}
}

// TestMboxLongLines passes lines longer than the chunk size: they come out
// whole, and a "From " inside one is no separator.
func TestMboxLongLines(t *testing.T) {
	long := strings.Repeat("x", 3*maxChunk+17)
	crSplit := strings.Repeat("y", maxChunk-1) + "\r\n" // the CR ends a chunk
	src := "From x Mon Jan  1 00:00:00 2024\nS: 1\n\n" + long + "\n" + crSplit + "\nFrom " + long + "\nend\n"
	got := readAll(t, src, MboxRD)
	if len(got) != 1 {
		t.Fatalf("got %d messages", len(got))
	}
	want := "S: 1\r\n\r\n" + long + "\r\n" + crSplit + "\r\nFrom " + long + "\r\nend\r\n"
	if got[0].body != want {
		t.Errorf("body differs (len %d, want %d)", len(got[0].body), len(want))
	}
}

func TestMboxHugeHeaderPassesThrough(t *testing.T) {
	field := "X-Long: " + strings.Repeat("z", 1000) + "\n"
	hdr := strings.Repeat(field, MaxHeaderBytes/len(field)+2)
	src := "From x Mon Jan  1 00:00:00 2024\nStatus: R\n" + hdr + "\nb\n"
	got := readAll(t, src, MboxRD)
	if len(got) != 1 || len(got[0].flags) != 0 || !strings.HasPrefix(got[0].body, "Status: R\r\n") {
		t.Fatalf("huge header was parsed or lost: %d messages", len(got))
	}
}

func TestMboxWriterRoundTrip(t *testing.T) {
	date := time.Date(2023, 5, 6, 7, 8, 9, 0, time.FixedZone("", -4*3600))
	msgs := []struct {
		body  string
		flags []imap.Flag
	}{
		{"Subject: a\r\n\r\nFrom the start\r\n>From quoted\r\n\r\n", []imap.Flag{imap.FlagSeen, imap.FlagFlagged, "Work"}},
		{"Subject: b\r\n\r\nno flags\r\n", nil},
		{"Subject: c\r\n\r\n" + strings.Repeat("long ", maxChunk) + "\r\n", []imap.Flag{imap.FlagAnswered, imap.FlagDraft, imap.FlagDeleted}},
	}
	var buf bytes.Buffer
	w := NewMboxWriter(&buf)
	for _, m := range msgs {
		if err := w.Write(strings.NewReader(m.body), m.flags, date); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewMboxReader(&buf, MboxRD)
	for i, want := range msgs {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		b, _ := io.ReadAll(m)
		if string(b) != want.body {
			t.Errorf("message %d: %q, want %q", i, b, want.body)
		}
		if !sameFlags(m.Flags, want.flags) {
			t.Errorf("message %d flags %q, want %q", i, m.Flags, want.flags)
		}
		if !m.Received.Equal(date) {
			t.Errorf("message %d date %v, want %v", i, m.Received, date)
		}
		if _, off := m.Received.Zone(); off != -4*3600 {
			t.Errorf("message %d zone offset %d", i, off)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last: %v", err)
	}
}

func sameFlags(a, b []imap.Flag) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !slices.ContainsFunc(b, func(g imap.Flag) bool { return strings.EqualFold(string(f), string(g)) }) {
			return false
		}
	}
	return true
}

// FuzzParseMbox checks the splitter never fails on any input, that what it
// reads is bounded by its input, and that writing what it read and reading
// that again gives the same messages.
func FuzzParseMbox(f *testing.F) {
	f.Add([]byte("From x Mon Jan  1 00:00:00 2024\nS: 1\n\n>From b\n\nFrom y Mon Jan  1 00:00:00 2024\n\nc"))
	f.Add([]byte("From - Mon Jan  1 00:00:00 2024\r\nX-Mozilla-Status: 0009\r\nStatus: RO\r\n\r\n"))
	f.Add([]byte("\n\nFrom a\n\nFrom b\nFrom c Mon Jan  1 00:00:00 2024\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewMboxReader(bytes.NewReader(data), MboxRD)
		var bodies [][]byte
		for {
			m, err := r.Next()
			if err != nil {
				break
			}
			b, err := io.ReadAll(m)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			// At most one CR added per input byte, plus nothing else.
			if len(b) > 2*len(data) {
				t.Fatalf("message of %d bytes from %d", len(b), len(data))
			}
			bodies = append(bodies, b)
		}
		if r.Offset() > int64(len(data)) {
			t.Fatalf("offset %d past the input", r.Offset())
		}
		// Round trip: what we write, we read back the same (messages
		// with a header end and ending in a line end, as stored messages
		// are; a message without the empty line after its header gains
		// one).
		var buf bytes.Buffer
		w := NewMboxWriter(&buf)
		var want [][]byte
		for _, b := range bodies {
			if !bytes.Contains(b, []byte("\r\n\r\n")) && !bytes.HasPrefix(b, []byte("\r\n")) || !bytes.HasSuffix(b, []byte("\r\n")) || bytes.Contains(b, []byte("\r\r")) || bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\r")) || bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n")) {
				continue
			}
			want = append(want, b)
			w.Write(bytes.NewReader(b), nil, time.Unix(0, 0))
		}
		w.Flush()
		r2 := NewMboxReader(&buf, MboxRD)
		for i, b := range want {
			m, err := r2.Next()
			if err != nil {
				t.Fatalf("round trip message %d: %v", i, err)
			}
			got, _ := io.ReadAll(m)
			if !bytes.Equal(stripFlagFields(got), stripFlagFields(b)) {
				t.Fatalf("round trip message %d:\n got %q\nwant %q", i, got, b)
			}
		}
	})
}

// stripFlagFields drops what the reader would take out of a header anyway.
func stripFlagFields(b []byte) []byte {
	var m MboxMessage
	hdr, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return m.parseHeader(b)
	}
	return append(append(m.parseHeader(append(hdr, '\r', '\n')), "\r\n"...), body...)
}
