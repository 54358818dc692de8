package imapd

import (
	"bufio"
	"compress/flate"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/certs/certstest"
)

// zclient is a line-level client that speaks COMPRESS=DEFLATE: it writes
// commands a few bytes per sync flush, as a client with small writes would.
type zclient struct {
	t    testing.TB
	conn net.Conn
	zw   *flate.Writer
	zr   *bufio.Reader
	tag  int
}

// compress sends COMPRESS DEFLATE in clear on conn (r holds what was read
// so far) and switches to deflate both ways.
func compress(t testing.TB, conn net.Conn, r *bufio.Reader) *zclient {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte("Z COMPRESS DEFLATE\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "Z OK") {
		t.Fatalf("COMPRESS DEFLATE: %q %v", l, err)
	}
	zw, _ := flate.NewWriter(conn, flate.BestSpeed)
	return &zclient{t: t, conn: conn, zw: zw, zr: bufio.NewReader(flate.NewReader(r))}
}

// send writes s in pieces of 2 bytes, each sync-flushed (a partial flush:
// the server must take what arrives and wait for more).
func (z *zclient) send(s string) {
	z.t.Helper()
	for len(s) > 0 {
		n := min(2, len(s))
		if _, err := z.zw.Write([]byte(s[:n])); err != nil {
			z.t.Fatal(err)
		}
		if err := z.zw.Flush(); err != nil {
			z.t.Fatal(err)
		}
		s = s[n:]
	}
}

// line reads one response line. A server that kept bytes in its
// compressor would leave this waiting until the deadline.
func (z *zclient) line() string {
	z.t.Helper()
	z.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := z.zr.ReadString('\n')
	if err != nil {
		z.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

func (z *zclient) cmd(format string, args ...any) (untagged []string, done string) {
	z.t.Helper()
	z.tag++
	tag := fmt.Sprintf("Z%d", z.tag)
	z.send(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	for {
		l := z.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		if m := literalRE.FindStringSubmatch(l); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			buf := make([]byte, n)
			if _, err := io.ReadFull(z.zr, buf); err != nil {
				z.t.Fatalf("literal: %v", err)
			}
			l += "\r\n" + string(buf) + z.line()
		}
		untagged = append(untagged, l)
	}
}

func (z *zclient) mustOK(format string, args ...any) []string {
	z.t.Helper()
	u, d := z.cmd(format, args...)
	if !strings.HasPrefix(d, "OK") {
		z.t.Fatalf("%s: %s", fmt.Sprintf(format, args...), d)
	}
	return u
}

// rawLogin reads the greeting and logs in, in clear, on conn.
func rawLogin(t *testing.T, conn net.Conn) *bufio.Reader {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	fmt.Fprintf(conn, "L LOGIN alice@example.org alicepw\r\n")
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if strings.HasPrefix(l, "L ") {
			if !strings.HasPrefix(l, "L OK") {
				t.Fatalf("login: %q", l)
			}
			return r
		}
	}
}

// TestCompress: COMPRESS=DEFLATE (RFC 4978) does not stall on partial
// flushes either way: commands in 2-byte sync-flushed writes are answered,
// a large FETCH arrives whole, and each IDLE update reaches the client
// while the server has nothing more to send. A second COMPRESS gets
// NO [COMPRESSIONACTIVE].
func TestCompress(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	if u, _ := rc.cmd("CAPABILITY"); hasLine(u, "COMPRESS=DEFLATE") {
		t.Errorf("COMPRESS=DEFLATE advertised before login: %q", u)
	}
	if _, d := rc.cmd("COMPRESS DEFLATE"); !strings.HasPrefix(d, "BAD") {
		t.Errorf("COMPRESS before login: %q", d)
	}
	rc.login("alice@example.org", "alicepw")
	if u := rc.mustOK("CAPABILITY"); !hasLine(u, " COMPRESS=DEFLATE") {
		t.Errorf("COMPRESS=DEFLATE not advertised after login: %q", u)
	}
	if _, d := rc.cmd("COMPRESS LZW"); !strings.HasPrefix(d, "NO") {
		t.Errorf("COMPRESS LZW: %q", d)
	}

	big := "From: a@example.net\r\nSubject: big\r\n\r\n" + strings.Repeat("0123456789 the quick brown fox jumps over it\r\n", 60000)
	ts.deliver(t, "alice@example.org", "INBOX", big)
	z := compress(t, rc.conn, rc.r)
	if _, d := z.cmd("COMPRESS DEFLATE"); !strings.HasPrefix(d, "NO [COMPRESSIONACTIVE]") {
		t.Errorf("second COMPRESS: %q", d)
	}
	z.mustOK("SELECT INBOX")
	u := z.mustOK("FETCH 1 (RFC822.SIZE BODY.PEEK[])")
	if len(u) != 1 || !strings.Contains(u[0], fmt.Sprintf("{%d}\r\n%s)", len(big), big)) {
		t.Fatalf("large FETCH did not come back whole (%d responses)", len(u))
	}
	// IDLE: each delivery's EXISTS arrives on its own; the test waits for
	// it before the next delivery, so a held-back update would time out.
	z.tag++
	z.send(fmt.Sprintf("Z%d IDLE\r\n", z.tag))
	if l := z.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	for i := 2; i <= 4; i++ {
		ts.deliver(t, "alice@example.org", "INBOX", testMessage(i))
		l := z.line()
		for strings.HasSuffix(l, " RECENT") { // IMAP4rev1: after the previous EXISTS
			l = z.line()
		}
		if l != fmt.Sprintf("* %d EXISTS", i) {
			t.Fatalf("IDLE update %d: %q", i, l)
		}
	}
	z.send("DONE\r\n")
	for l := z.line(); !strings.HasPrefix(l, fmt.Sprintf("Z%d ", z.tag)); l = z.line() {
		if !strings.HasSuffix(l, " RECENT") {
			t.Fatalf("IDLE end: %q", l)
		}
	}
	// A command split across many tiny writes, with a literal.
	msg := testMessage(9)
	z.tag++
	z.send(fmt.Sprintf("Z%d APPEND INBOX {%d+}\r\n%s\r\n", z.tag, len(msg), msg))
	for {
		l := z.line()
		if strings.HasPrefix(l, fmt.Sprintf("Z%d ", z.tag)) {
			if !strings.Contains(l, "OK") {
				t.Fatalf("APPEND: %q", l)
			}
			break
		}
	}
	z.mustOK("LOGOUT")
}

// TestCompressTLS: COMPRESS after STARTTLS and on implicit TLS (993).
func TestCompressTLS(t *testing.T) {
	cfg := certstest.Default().ClientConfig("127.0.0.1")
	t.Run("starttls", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.LoopbackIsSecure = false })
		rc := ts.raw(t)
		rc.mustOK("STARTTLS")
		tc := tls.Client(rc.conn, cfg)
		z := compress(t, tc, rawLoginTLS(t, tc))
		z.mustOK("SELECT INBOX")
		z.mustOK("NOOP")
	})
	t.Run("implicit", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) { o.ImplicitTLS = true })
		tc, err := tls.Dial("tcp", ts.addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		z := compress(t, tc, rawLogin(t, tc))
		z.mustOK("SELECT INBOX")
		z.mustOK("NOOP")
	})
}

// rawLoginTLS logs in on a connection that had its greeting in clear.
func rawLoginTLS(t *testing.T, conn net.Conn) *bufio.Reader {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	fmt.Fprintf(conn, "L LOGIN alice@example.org alicepw\r\n")
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if strings.HasPrefix(l, "L ") {
			if !strings.HasPrefix(l, "L OK") {
				t.Fatalf("login: %q", l)
			}
			return r
		}
	}
}

// TestCompressMemory measures what an idle logged-in connection with
// COMPRESS active keeps on the heap, against one without, and bounds it:
// the compressor is borrowed per write, so what stays is the decompressor.
func TestCompressMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens many connections")
	}
	ts := newTestServer(t)
	const n = 100
	// Live heap objects and goroutine stacks (each connection has two
	// goroutines on the server and none on this client).
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc + ms.StackInuse
	}
	open := func(z bool) []net.Conn {
		var conns []net.Conn
		for range n {
			conn, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			r := rawLogin(t, conn)
			if z {
				zc := compress(t, conn, r)
				zc.mustOK("SELECT INBOX")
				zc.mustOK("NOOP")
			} else {
				fmt.Fprintf(conn, "S SELECT INBOX\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(l, "S ") {
						break
					}
				}
			}
			conns = append(conns, conn)
		}
		return conns
	}
	// Warm up the shared state (mailbox state, pools, prepared statements).
	open(true)
	base := heap()
	plain := open(false)
	afterPlain := heap()
	open(true)
	afterZ := heap()
	perPlain := (int64(afterPlain) - int64(base)) / n
	perZ := (int64(afterZ) - int64(afterPlain)) / n
	t.Logf("memory per idle connection (heap and stacks, both ends in this process): %d bytes without COMPRESS, %d with (+%d)", perPlain, perZ, perZ-perPlain)
	if perZ-perPlain > 128<<10 {
		t.Errorf("COMPRESS keeps %d bytes per idle connection, want under 128 KiB", perZ-perPlain)
	}
	runtime.KeepAlive(plain)
}

// TestCompressPythonImaplib: Python's imaplib (no COMPRESS of its own)
// with its socket wrapped in zlib raw deflate (wbits=-15), each 3 bytes of
// a command flushed with Z_PARTIAL_FLUSH, reads a FETCH.
func TestCompressPythonImaplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ts := newTestServer(t)
	body := "Subject: py\r\n\r\n" + strings.Repeat("python reads this line\r\n", 5000)
	ts.deliver(t, "alice@example.org", "INBOX", body)
	host, port, _ := strings.Cut(ts.addr, ":")
	script := `
import imaplib, sys, zlib
imaplib.Commands['COMPRESS'] = ('AUTH', 'SELECTED')

class Z(imaplib.IMAP4):
    def start_compress(self):
        typ, data = self._simple_command('COMPRESS', 'DEFLATE')
        assert typ == 'OK', (typ, data)
        self._z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._z_in = zlib.decompressobj(-15)
        self._z_buf = b''
    def send(self, data):
        if getattr(self, '_z_out', None) is None:
            return super().send(data)
        for i in range(0, len(data), 3):
            # Z_PARTIAL_FLUSH, as mbsync flushes: an empty fixed-Huffman
            # block, not the stored block of a sync flush.
            self.sock.sendall(self._z_out.compress(data[i:i+3]) + self._z_out.flush(zlib.Z_PARTIAL_FLUSH))
    def _fill(self):
        chunk = self.sock.recv(4096)
        if not chunk:
            raise EOFError
        self._z_buf += self._z_in.decompress(chunk)
    def read(self, size):
        if getattr(self, '_z_out', None) is None:
            return super().read(size)
        while len(self._z_buf) < size:
            self._fill()
        out, self._z_buf = self._z_buf[:size], self._z_buf[size:]
        return out
    def readline(self):
        if getattr(self, '_z_out', None) is None:
            return super().readline()
        while b'\n' not in self._z_buf:
            self._fill()
        i = self._z_buf.index(b'\n') + 1
        out, self._z_buf = self._z_buf[:i], self._z_buf[i:]
        return out

c = Z(sys.argv[1], int(sys.argv[2]))
c.login('alice@example.org', 'alicepw')
c.start_compress()
c.select('INBOX')
typ, data = c.fetch('1', '(BODY.PEEK[])')
print('fetch', typ, len(data[0][1]))
typ, data = c._simple_command('COMPRESS', 'DEFLATE')
print('second', typ)
print('noop', c.noop()[0])
c.logout()
`
	out, err := exec.Command(python, "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, want := range []string{fmt.Sprintf("fetch OK %d", len(body)), "second NO", "noop OK"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib output lacks %q:\n%s", want, out)
		}
	}
}
