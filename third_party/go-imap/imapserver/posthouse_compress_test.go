package imapserver_test

import (
	"bufio"
	"compress/flate"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// TestCompressDeflate: after COMPRESS DEFLATE both directions are raw
// deflate; commands written a few bytes per sync flush are answered, a
// large literal goes up and comes back whole, and a second COMPRESS gets
// NO [COMPRESSIONACTIVE] (RFC 4978; Posthouse patch).
func TestCompressDeflate(t *testing.T) {
	user := imapmemserver.NewUser("user", "pass")
	user.Create("INBOX", nil)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return imapmemserver.NewUserSession(user), &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imapserver.CapCompressDeflate: {}},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	conn.Write([]byte("C1 COMPRESS DEFLATE\r\n"))
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "C1 OK") {
		t.Fatalf("COMPRESS: %q %v", l, err)
	}
	if r.Buffered() != 0 {
		t.Fatalf("%d bytes after the OK", r.Buffered())
	}
	zw, _ := flate.NewWriter(conn, flate.DefaultCompression)
	zr := bufio.NewReader(flate.NewReader(conn))
	// send writes s a few bytes at a time, each piece sync-flushed.
	send := func(s string) {
		t.Helper()
		for len(s) > 0 {
			n := 3
			if len(s) < n {
				n = len(s)
			}
			if _, err := zw.Write([]byte(s[:n])); err != nil {
				t.Fatal(err)
			}
			if err := zw.Flush(); err != nil {
				t.Fatal(err)
			}
			s = s[n:]
		}
	}
	until := func(tag string) []string {
		t.Helper()
		var lines []string
		for {
			l, err := zr.ReadString('\n')
			if err != nil {
				t.Fatalf("reading %s: %v after %q", tag, err, lines)
			}
			lines = append(lines, l)
			if strings.HasPrefix(l, tag+" ") {
				return lines
			}
		}
	}
	send("C2 NOOP\r\n")
	if got := until("C2"); !strings.HasPrefix(got[len(got)-1], "C2 OK") {
		t.Fatalf("NOOP: %q", got)
	}
	// "C9 NOOP\r\n" compressed by zlib and ended by Z_PARTIAL_FLUSH (an
	// empty fixed-Huffman block, as mbsync sends), on a connection of its
	// own: the server must answer without waiting for more.
	partial := []byte{0x72, 0xb6, 0x54, 0xf0, 0xf3, 0xf7, 0x0f, 0xe0, 0xe5, 0x02, 0x08}
	conn2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(20 * time.Second))
	r2 := bufio.NewReader(conn2)
	r2.ReadString('\n')
	conn2.Write([]byte("C1 COMPRESS DEFLATE\r\n"))
	if l, err := r2.ReadString('\n'); err != nil || !strings.HasPrefix(l, "C1 OK") {
		t.Fatalf("COMPRESS: %q %v", l, err)
	}
	conn2.Write(partial)
	if l, err := bufio.NewReader(flate.NewReader(r2)).ReadString('\n'); err != nil || !strings.HasPrefix(l, "C9 OK") {
		t.Fatalf("NOOP ended by a partial flush: %q %v", l, err)
	}
	send("C3 COMPRESS DEFLATE\r\n")
	if got := until("C3"); !strings.HasPrefix(got[len(got)-1], "C3 NO [COMPRESSIONACTIVE]") {
		t.Errorf("second COMPRESS: %q", got)
	}
	body := "Subject: big\r\n\r\n" + strings.Repeat("line of text that repeats itself\r\n", 30000)
	send(fmt.Sprintf("C4 APPEND INBOX {%d}\r\n", len(body)))
	if l, err := zr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation: %q %v", l, err)
	}
	if _, err := zw.Write([]byte(body + "\r\n")); err != nil {
		t.Fatal(err)
	}
	zw.Flush()
	if got := until("C4"); !strings.HasPrefix(got[len(got)-1], "C4 OK") {
		t.Fatalf("APPEND: %q", got)
	}
	send("C5 SELECT INBOX\r\n")
	until("C5")
	send("C6 FETCH 1 BODY.PEEK[]\r\n")
	l, err := zr.ReadString('\n')
	if err != nil || !strings.HasSuffix(l, fmt.Sprintf("{%d}\r\n", len(body))) {
		t.Fatalf("FETCH: %q %v", l, err)
	}
	got := make([]byte, len(body))
	if _, err := io.ReadFull(zr, got); err != nil || string(got) != body {
		t.Fatalf("FETCH literal differs (%v)", err)
	}
	if rest := until("C6"); !strings.HasPrefix(rest[len(rest)-1], "C6 OK") {
		t.Errorf("FETCH end: %q", rest)
	}
}
