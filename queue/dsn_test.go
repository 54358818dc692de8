package queue

import (
	"bytes"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file; got:\n%s", name, got)
	}
}

func sampleReport() *report {
	arrival := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	return &report{
		hostname: "mail.a.test",
		queueID:  "0123456789abcdef",
		sender:   "alice@a.test",
		arrival:  arrival,
		date:     arrival.Add(10 * time.Minute),
		action:   actionFailed,
		rcpts: []reportRcpt{
			{addr: "nobody@b.test", reply: "550 5.1.1 no such user\nhere", remote: "mx.b.test", lastAttempt: arrival.Add(5 * time.Minute)},
			{addr: "x@n.test", reply: replyNullMX.String(), lastAttempt: arrival.Add(5 * time.Minute)},
			{addr: "slow@c.test", reply: "421 4.3.2 busy (giving up after 120h0m0s)", remote: "mx.c.test", lastAttempt: arrival.Add(5 * time.Minute), expired: true},
		},
		header: []byte("From: Alice <alice@a.test>\r\nTo: nobody@b.test\r\nSubject: hello\r\n"),
	}
}

func TestDSNGolden(t *testing.T) {
	r := sampleReport()
	golden(t, "dsn-failed", r.build())
	r.action = actionDelayed
	r.retryUntil = r.arrival.Add(DefaultExpiry)
	r.rcpts = r.rcpts[:1]
	r.rcpts[0].reply = "451 4.7.1 greylisted"
	golden(t, "dsn-delayed", r.build())
}

// TestDSNParses checks the DSN is well-formed MIME with the parts RFC 3464
// and RFC 6522 call for.
func TestDSNParses(t *testing.T) {
	msg, err := mail.ReadMessage(bytes.NewReader(sampleReport().build()))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("content type %q %v %v", mt, params, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, p.Header.Get("Content-Type"))
		body, _ := io.ReadAll(p)
		if strings.HasPrefix(p.Header.Get("Content-Type"), "message/delivery-status") {
			// Per-recipient groups are header blocks separated by blank lines.
			if n := strings.Count(string(body), "Final-Recipient:"); n != 3 {
				t.Errorf("%d recipient groups", n)
			}
		}
	}
	want := []string{"text/plain; charset=utf-8", "message/delivery-status", "text/rfc822-headers"}
	if strings.Join(types, ",") != strings.Join(want, ",") {
		t.Errorf("parts %v, want %v", types, want)
	}
}

func TestDSNGlobalForUTF8(t *testing.T) {
	r := sampleReport()
	r.rcpts[0].addr = "bø@b.test"
	out := string(r.build())
	for _, want := range []string{"message/global-delivery-status", "Final-Recipient: utf-8; bø@b.test", "message/global-headers"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q", want)
		}
	}
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name, in, want string
		limit          int
	}{
		{name: "stops at blank line", in: "A: 1\r\nB: 2\r\n\r\nbody\r\n", want: "A: 1\r\nB: 2\r\n", limit: 1000},
		{name: "bare LF", in: "A: 1\nB: 2\n\nbody", want: "A: 1\r\nB: 2\r\n", limit: 1000},
		{name: "limit cuts at a line", in: "A: 1\r\nB: 22222\r\n\r\n", want: "A: 1\r\n", limit: 10},
		{name: "no body", in: "A: 1\r\n", want: "A: 1\r\n", limit: 1000},
		{name: "long line", in: "A: " + strings.Repeat("x", 5000) + "\r\n\r\n", want: "A: " + strings.Repeat("x", 5000) + "\r\n", limit: 10000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(ReadHeader(strings.NewReader(tc.in), tc.limit)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody"))
	f.Add([]byte("X: y\n\n"))
	f.Add([]byte("\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := ReadHeader(bytes.NewReader(data), 4096)
		if len(h) > 4096+len(bytes.Split(data, []byte("\n"))) {
			t.Fatalf("header of %d bytes from a 4096 limit", len(h))
		}
		// Every line ends in CRLF and none is empty.
		for _, line := range strings.SplitAfter(string(h), "\r\n") {
			if line == "" {
				continue
			}
			if !strings.HasSuffix(line, "\r\n") || line == "\r\n" {
				t.Fatalf("bad line %q", line)
			}
		}
		// A DSN quoting it still parses as a message with our three parts.
		r := sampleReport()
		r.header = h
		if _, err := mail.ReadMessage(bytes.NewReader(r.build())); err != nil {
			t.Fatalf("DSN does not parse: %v", err)
		}
	})
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\r\nb\x00c\td"); got != "a  bc d" {
		t.Errorf("got %q", got)
	}
}
