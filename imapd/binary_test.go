package imapd

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// TestAppendBinary: a literal8 APPEND of a message with binary parts
// (NUL among their bytes) stores them base64-encoded, so BODY[n] is a
// plain literal, while BINARY[n] and BINARY.SIZE[n] give the bytes sent
// (RFC 3516). A plain literal8 message without binary parts is stored as
// is.
func TestAppendBinary(t *testing.T) {
	ts := newTestServer(t)
	c := ts.raw(t)
	c.login("alice@example.org", "alicepw")
	payload := "\x00-\xe4\r\n\x00\xff" + strings.Repeat("\x01", 100)
	msgs := []string{
		"From: a@example.org\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + payload,
		"From: a@example.org\r\nMime-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=xx\r\n\r\n--xx\r\nContent-Type: text/plain\r\n\r\nhello\r\n--xx\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n" + payload + "\r\n--xx--\r\n",
		"From: a@example.org\r\nSubject: plain\r\n\r\nno binary here\r\n",
	}
	for i, m := range msgs {
		c.send(fmt.Sprintf("A%d APPEND INBOX ~{%d+}\r\n%s\r\n", i, len(m), m))
		if _, done := c.until(fmt.Sprintf("A%d", i)); !strings.HasPrefix(done, "OK") {
			t.Fatalf("APPEND %d: %q", i, done)
		}
	}
	c.mustOK("SELECT INBOX")
	b64 := base64.StdEncoding.EncodeToString([]byte(payload))
	for _, tc := range []struct {
		seq  int
		part string
	}{{1, "1"}, {2, "2"}} {
		u := c.mustOK("FETCH %d (BODY.PEEK[%s] BINARY.PEEK[%s] BINARY.SIZE[%s])", tc.seq, tc.part, tc.part, tc.part)
		if len(u) != 1 {
			t.Fatalf("FETCH %d: %q", tc.seq, u)
		}
		got := u[0]
		body := strings.ReplaceAll(got[strings.Index(got, "}\r\n")+3:strings.Index(got, " BINARY[")], "\r\n", "")
		if body != b64 {
			t.Errorf("FETCH %d BODY[%s]: %q, want base64 %q", tc.seq, tc.part, body, b64)
		}
		if !strings.Contains(got, fmt.Sprintf("BINARY[%s] ~{%d}\r\n%s", tc.part, len(payload), payload)) {
			t.Errorf("FETCH %d BINARY[%s]: %q", tc.seq, tc.part, got)
		}
		if !strings.Contains(got, fmt.Sprintf("BINARY.SIZE[%s] %d", tc.part, len(payload))) {
			t.Errorf("FETCH %d BINARY.SIZE: %q", tc.seq, got)
		}
		if strings.Contains(got, "binary\r\n") {
			t.Errorf("FETCH %d: header still says binary", tc.seq)
		}
	}
	if u := c.mustOK("FETCH 2 BODY.PEEK[1]"); len(u) != 1 || !strings.Contains(u[0], "{5}\r\nhello") {
		t.Errorf("FETCH 2 BODY[1]: %q", u)
	}
	if u := c.mustOK("FETCH 3 BODY.PEEK[]"); len(u) != 1 || !strings.Contains(u[0], msgs[2]) {
		t.Errorf("plain message changed: %q", u)
	}
}

// FuzzRewriteCTE: any header comes back with no Content-Transfer-Encoding
// but one saying base64, and the other lines kept.
func FuzzRewriteCTE(f *testing.F) {
	f.Add([]byte("Content-Type: a/b\r\nContent-Transfer-Encoding: binary\r\n\r\n"))
	f.Add([]byte("content-transfer-encoding:\r\n\tbinary\r\nX: y\r\n"))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		out := string(rewriteCTE(hdr))
		for _, line := range strings.SplitAfter(out, "\n") {
			k, _, ok := strings.Cut(line, ":")
			if ok && strings.EqualFold(strings.TrimSpace(k), "Content-Transfer-Encoding") && line != "Content-Transfer-Encoding: base64\r\n" {
				t.Fatalf("%q -> %q: field left: %q", hdr, out, line)
			}
		}
		if len(out) > len(hdr)+len("Content-Transfer-Encoding: base64\r\n")*(strings.Count(string(hdr), "\n")+1) {
			t.Fatalf("grew: %q -> %q", hdr, out)
		}
	})
}
