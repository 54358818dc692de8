package dsn

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

func sampleReport() *Report {
	arrival := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	return &Report{
		Hostname: "mail.a.test",
		QueueID:  "0123456789abcdef",
		Sender:   "alice@a.test",
		Arrival:  arrival,
		Date:     arrival.Add(10 * time.Minute),
		Action:   ActionFailed,
		Recipients: []Recipient{
			{Addr: "nobody@b.test", Reply: "550 5.1.1 no such user\nhere", Remote: "mx.b.test", LastAttempt: arrival.Add(5 * time.Minute)},
			{Addr: "x@n.test", Reply: "556 5.1.10 recipient domain does not accept mail (null MX, RFC 7505)", LastAttempt: arrival.Add(5 * time.Minute)},
			{Addr: "slow@c.test", Reply: "421 4.3.2 busy (giving up after 120h0m0s)", Remote: "mx.c.test", LastAttempt: arrival.Add(5 * time.Minute), Expired: true},
		},
		Header: []byte("From: Alice <alice@a.test>\r\nTo: nobody@b.test\r\nSubject: hello\r\n"),
	}
}

func TestDSNGolden(t *testing.T) {
	r := sampleReport()
	golden(t, "dsn-failed", r.Build())
	r.Action = ActionDelayed
	r.RetryUntil = r.Arrival.Add(5 * 24 * time.Hour) // the queue's default expiry
	r.Recipients = r.Recipients[:1]
	r.Recipients[0].Reply = "451 4.7.1 greylisted"
	golden(t, "dsn-delayed", r.Build())
}

// TestDSNParses checks the DSN is well-formed MIME with the parts RFC 3464
// and RFC 6522 call for.
func TestDSNParses(t *testing.T) {
	msg, err := mail.ReadMessage(bytes.NewReader(sampleReport().Build()))
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
	r.Recipients[0].Addr = "bø@b.test"
	out := string(r.Build())
	for _, want := range []string{"message/global-delivery-status", "Final-Recipient: utf-8; bø@b.test", "message/global-headers"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q", want)
		}
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("a\r\nb\x00c\td"); got != "a  bc d" {
		t.Errorf("got %q", got)
	}
}
