package pop3d

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestGoldenDialog runs a fixed script against the fake store (fixed
// UIDVALIDITY, so UIDL is stable) and compares the whole transcript with
// testdata/dialog.golden: exact shapes of CAPA, STAT, LIST, UIDL, TOP,
// stuffed RETR and the UPDATE reply.
func TestGoldenDialog(t *testing.T) {
	fs := newFakeStore()
	ts := newTestServerWithStore(t, fs)
	ts.deliver(t, testUser, []byte("Subject: one\r\n\r\n.dot\r\nplain\r\n"))
	ts.deliver(t, testUser, []byte("Subject: two\r\n\r\nb1\r\nb2\r\nb3\r\n"))
	script := []string{
		"CAPA", "USER " + testUser, "PASS " + testPass, "STAT", "LIST", "UIDL",
		"TOP 2 1", "RETR 1", "DELE 1", "LIST", "LIST 1", "RSET", "DELE 2", "QUIT",
	}
	c := ts.dial(t)
	var tr strings.Builder
	for _, line := range script {
		shown := line
		if strings.HasPrefix(line, "PASS ") {
			shown = "PASS ***"
		}
		tr.WriteString("C: " + shown + "\n")
		c.send(line)
		reply := c.line()
		tr.WriteString("S: " + reply + "\n")
		multi := strings.HasPrefix(reply, "+OK") && (line == "CAPA" || line == "LIST" || line == "UIDL" ||
			strings.HasPrefix(line, "TOP ") || strings.HasPrefix(line, "RETR "))
		for multi {
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			l := c.line()
			tr.WriteString("S: " + l + "\n")
			multi = l != "."
		}
	}
	c.expectClosed()

	path := filepath.Join("testdata", "dialog.golden")
	if *update {
		if err := os.WriteFile(path, []byte(tr.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal([]byte(tr.String()), want) {
		t.Fatalf("transcript differs from %s:\n%s", path, tr.String())
	}
}
