package imapd

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// Benchmarks of Posthouse's IMAP server alone, over the real store. The
// side-by-side comparison with other servers lives in integration/bench.
//
//	go test -run '^$' -bench . -benchtime 5x ./imapd/

const benchUser = "alice@example.org"

var fixtures struct {
	mu   sync.Mutex
	dirs map[string]string
}

// TestMain removes the benchmark fixtures (100,000 messages are slow to
// build, so benchmarks share them within one run).
func TestMain(m *testing.M) {
	code := m.Run()
	fixtures.mu.Lock()
	for _, d := range fixtures.dirs {
		os.RemoveAll(d)
	}
	fixtures.mu.Unlock()
	os.Exit(code)
}

// benchFixture returns a store directory holding n messages of body in
// alice's INBOX. Up to 1,000 go in through durable deliveries. Beyond that
// (building 100,000 messages with an fsync each would take many minutes),
// the first delivered message's index row is cloned in one transaction and
// its file hard-linked under new names: the rows are exactly what delivery
// writes, and FETCH FLAGS, SELECT and SEARCH never open the files.
func benchFixture(b *testing.B, key string, n int, body func(i int) string) string {
	b.Helper()
	fixtures.mu.Lock()
	defer fixtures.mu.Unlock()
	if d, ok := fixtures.dirs[key]; ok {
		return d
	}
	dir, err := os.MkdirTemp("", "imapd-bench-")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	s, err := maildir.Open(ctx, dir, maildir.Options{})
	if err != nil {
		b.Fatal(err)
	}
	acct, err := s.Open(ctx, benchUser)
	if err != nil {
		b.Fatal(err)
	}
	delivered := min(n, 1000)
	for i := 0; i < delivered; i++ {
		if _, err := acct.Deliver(ctx, strings.NewReader(body(i)), mailstore.DeliverOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	mb, err := acct.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		b.Fatal(err)
	}
	acct.Close()
	s.Close()
	if n > delivered {
		cloneRows(b, filepath.Join(dir, benchUser), mb.ID, delivered, n)
	}
	b.Logf("fixture %s: %d messages in %v", key, n, time.Since(start).Round(time.Millisecond))
	if fixtures.dirs == nil {
		fixtures.dirs = make(map[string]string)
	}
	fixtures.dirs[key] = dir
	return dir
}

// cloneRows adds messages have+1..n to the mailbox by copying the row of
// UID 1 (see benchFixture).
func cloneRows(b *testing.B, acctDir string, mailboxID int64, have, n int) {
	b.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(acctDir, "index.sqlite")+"?_busy_timeout=5000")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	// Link from every delivered file in turn: one inode has at most 65,000
	// links on ext4.
	rows, err := db.Query(`SELECT file FROM messages WHERE mailbox = ? ORDER BY uid`, mailboxID)
	files, err := sqlitedb.Collect(rows, err, sqlitedb.Value[string])
	if err != nil {
		b.Fatalf("fixture: the store's index layout changed? %v", err)
	}
	if len(files) != have {
		b.Fatalf("fixture: %d files for %d messages", len(files), have)
	}
	mbDir := filepath.Join(acctDir, "maildir", strconv.FormatInt(mailboxID, 10))
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Prepare(`INSERT INTO messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone, sentdate, file, messageid, envelope, bodystructure)
		SELECT mailbox, ?, modseq, ?, keywords, size, internaldate, internalzone, sentdate, ?, messageid, envelope, bodystructure
		FROM messages WHERE mailbox = ? AND uid = 1`)
	if err != nil {
		b.Fatal(err)
	}
	for uid := have + 1; uid <= n; uid++ {
		clone := fmt.Sprintf("cur/%d.M%dP1Q%d.bench,S=0:2,", 1700000000+uid, uid, uid)
		if err := os.Link(filepath.Join(mbDir, files[uid%have]), filepath.Join(mbDir, clone)); err != nil {
			b.Fatal(err)
		}
		flags := 0
		if uid%10 < 7 {
			flags = 1 // \Seen for 70%, as a real mailbox
		}
		if _, err := stmt.Exec(uid, flags, clone, mailboxID); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := tx.Exec(`UPDATE mailboxes SET uidnext = ? WHERE id = ?`, n+1, mailboxID); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

func benchServer(b *testing.B, dir string) *testServer {
	b.Helper()
	s, err := maildir.Open(context.Background(), dir, maildir.Options{})
	if err != nil {
		b.Fatal(err)
	}
	old := storeFactory
	storeFactory = func(testing.TB) mailstore.Store { return s }
	defer func() { storeFactory = old }()
	return newTestServer(b, func(o *Options) {
		o.Logger = slog.New(slog.DiscardHandler)
		o.MaxAppendSize = 50 << 20
	})
}

// benchConn is a raw client that reads responses without keeping them.
type benchConn struct {
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dialBench(b *testing.B, addr string) *benchConn {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	bc := &benchConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	if _, err := bc.r.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	bc.do(b, "LOGIN "+benchUser+" alicepw")
	return bc
}

// do runs one command and returns the number of untagged responses,
// skipping literals.
func (bc *benchConn) do(b *testing.B, cmd string) int {
	bc.n++
	tag := "B" + strconv.Itoa(bc.n)
	if _, err := io.WriteString(bc.conn, tag+" "+cmd+"\r\n"); err != nil {
		b.Fatal(err)
	}
	lines := 0
	for {
		l, err := bc.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			b.Fatal(err)
		}
		if strings.HasPrefix(string(l), tag+" ") {
			if !strings.HasPrefix(string(l), tag+" OK") {
				b.Fatalf("%s: %s", cmd, l)
			}
			return lines
		}
		if len(l) > 0 && l[0] == '*' {
			lines++
		}
		if m := literalRE.FindSubmatch([]byte(strings.TrimRight(string(l), "\r\n"))); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			if _, err := bc.r.Discard(n); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func bigMessage(i int) string {
	return fmt.Sprintf("From: s%d@example.net\r\nTo: alice@example.org\r\nSubject: m %d\r\nMessage-ID: <%d@x>\r\n\r\nbody %d\r\n", i, i, i, i)
}

// BenchmarkSelect100k: SELECT (and UNSELECT) of a 100,000-message mailbox
// that no other session has selected, so the mailbox state is loaded from
// the index each time.
func BenchmarkSelect100k(b *testing.B) {
	dir := benchFixture(b, "100k", 100000, bigMessage)
	ts := benchServer(b, dir)
	bc := dialBench(b, ts.addr)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.do(b, "SELECT INBOX")
		bc.do(b, "UNSELECT")
	}
}

// BenchmarkSelect100kShared: the same while another session holds the
// mailbox selected, so SELECT joins the shared state.
func BenchmarkSelect100kShared(b *testing.B) {
	dir := benchFixture(b, "100k", 100000, bigMessage)
	ts := benchServer(b, dir)
	other := dialBench(b, ts.addr)
	other.do(b, "SELECT INBOX")
	bc := dialBench(b, ts.addr)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.do(b, "SELECT INBOX")
		bc.do(b, "UNSELECT")
	}
}

// BenchmarkUIDFetchFlags100k: UID FETCH 1:* (FLAGS) on 100,000 messages,
// the first thing a syncing client does.
func BenchmarkUIDFetchFlags100k(b *testing.B) {
	dir := benchFixture(b, "100k", 100000, bigMessage)
	ts := benchServer(b, dir)
	bc := dialBench(b, ts.addr)
	bc.do(b, "SELECT INBOX")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := bc.do(b, "UID FETCH 1:* (FLAGS)"); n != 100000 {
			b.Fatalf("%d FETCH responses", n)
		}
	}
	b.ReportMetric(float64(b.N*100000)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkFetch1000x50KB: FETCH 1:1000 BODY.PEEK[] of 50 KB messages.
func BenchmarkFetch1000x50KB(b *testing.B) {
	body := strings.Repeat(strings.Repeat("0123456789", 7)+"\r\n", 50000/72)
	dir := benchFixture(b, "1000x50KB", 1000, func(i int) string {
		return fmt.Sprintf("From: s%d@example.net\r\nSubject: m %d\r\n\r\n%s", i, i, body)
	})
	ts := benchServer(b, dir)
	bc := dialBench(b, ts.addr)
	bc.do(b, "SELECT INBOX")
	b.SetBytes(int64(1000 * (len(body) + 40)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := bc.do(b, "FETCH 1:1000 BODY.PEEK[]"); n != 1000 {
			b.Fatalf("%d FETCH responses", n)
		}
	}
}

// BenchmarkIdleConnections1000 opens 1,000 authenticated connections (half
// with INBOX selected) and reports the heap and goroutines each one costs.
// Client sockets live in the same process; their share is small (a net.Conn
// each, readers dropped after login).
func BenchmarkIdleConnections1000(b *testing.B) {
	const conns = 1000
	dir := benchFixture(b, "small", 10, bigMessage)
	for i := 0; i < b.N; i++ {
		func() {
			ts := benchServer(b, dir)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			g0 := runtime.NumGoroutine()
			open := make([]net.Conn, 0, conns)
			for j := 0; j < conns; j++ {
				bc := dialBench(b, ts.addr)
				if j%2 == 0 {
					bc.do(b, "SELECT INBOX")
				}
				open = append(open, bc.conn)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			g1 := runtime.NumGoroutine()
			b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/conns, "heap-B/conn")
			b.ReportMetric(float64(after.StackInuse-before.StackInuse)/conns, "stack-B/conn")
			b.ReportMetric(float64(g1-g0)/conns, "goroutines/conn")
			for _, c := range open {
				c.Close()
			}
		}()
	}
}

var qresyncFixture struct {
	sync.Once
	validity, modseq uint64
}

// BenchmarkSelectQResync100k: SELECT INBOX (QRESYNC (uidvalidity modseq))
// (and UNSELECT) of a 100,000-message mailbox after 10 changes since the
// client's modseq (5 flag changes, 5 expunges): what Thunderbird and iOS
// Mail do on reconnecting instead of UID FETCH 1:* (FLAGS). No other
// session holds the mailbox, so its state is loaded each time.
func BenchmarkSelectQResync100k(b *testing.B) {
	dir := benchFixture(b, "100k-qresync", 100000, bigMessage)
	ts := benchServer(b, dir)
	bc := dialBench(b, ts.addr)
	bc.do(b, "ENABLE QRESYNC")
	// The fixture is shared by the benchmark's runs: change it once.
	qresyncFixture.Do(func() {
		qresyncFixture.validity, qresyncFixture.modseq = qresyncState(b, bc)
		for i := 0; i < 5; i++ {
			bc.do(b, fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Flagged)`, 1000+i*7000))
			uid := 2000 + i*7000
			bc.do(b, fmt.Sprintf(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uid))
			bc.do(b, fmt.Sprintf(`UID EXPUNGE %d`, uid))
		}
		bc.do(b, "UNSELECT")
	})
	cmd := fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", qresyncFixture.validity, qresyncFixture.modseq)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// EXISTS, RECENT, UIDVALIDITY, UIDNEXT, FLAGS, PERMANENTFLAGS,
		// HIGHESTMODSEQ, VANISHED (EARLIER), 5 FETCH; no UNSEEN
		// (the first message is unseen: 1 more).
		if n := bc.do(b, cmd); n < 13 || n > 14 {
			b.Fatalf("%d untagged responses to %s", n, cmd)
		}
		bc.do(b, "UNSELECT")
	}
}

// qresyncState selects INBOX and returns its UIDVALIDITY and HIGHESTMODSEQ.
func qresyncState(b *testing.B, bc *benchConn) (validity, modseq uint64) {
	b.Helper()
	bc.n++
	tag := "B" + strconv.Itoa(bc.n)
	if _, err := io.WriteString(bc.conn, tag+" SELECT INBOX\r\n"); err != nil {
		b.Fatal(err)
	}
	for {
		l, err := bc.r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if m := uidValidityRE.FindStringSubmatch(l); m != nil {
			validity, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if m := highestModSeqRE.FindStringSubmatch(l); m != nil {
			modseq, _ = strconv.ParseUint(m[1], 10, 64)
		}
		if strings.HasPrefix(l, tag+" ") {
			if validity == 0 || modseq == 0 {
				b.Fatalf("SELECT gave UIDVALIDITY %d HIGHESTMODSEQ %d", validity, modseq)
			}
			return validity, modseq
		}
	}
}

// threadedMessage is message i of threads of ten: each answers the one
// before it (References to all earlier ones), with "Re:" subjects.
func threadedMessage(i int) string {
	first := i - i%10
	var refs []string
	for j := first; j < i; j++ {
		refs = append(refs, fmt.Sprintf("<t%d@example.net>", j))
	}
	subject := fmt.Sprintf("topic %d", first)
	hdr := ""
	if len(refs) > 0 {
		subject = "Re: " + subject
		hdr = "In-Reply-To: " + refs[len(refs)-1] + "\r\nReferences: " + strings.Join(refs, " ") + "\r\n"
	}
	return fmt.Sprintf("From: Sender %d <s%d@example.net>\r\nTo: alice@example.org\r\nSubject: %s\r\n"+
		"Date: Sat, 21 Nov 2026 10:%02d:%02d +0000\r\nMessage-ID: <t%d@example.net>\r\n%s\r\nbody %d\r\n",
		i%97, i%97, subject, i/60%60, i%60, i, hdr, i)
}

// BenchmarkSortSubject100k: SORT (SUBJECT) over 100,000 messages (keys
// from the cached envelopes, read 1,000 rows at a time). The fixture's
// rows beyond the first 1,000 are clones of UID 1's (see benchFixture).
func BenchmarkSortSubject100k(b *testing.B) {
	dir := benchFixture(b, "100k-threads", 100000, threadedMessage)
	ts := benchServer(b, dir)
	bc := dialBench(b, ts.addr)
	bc.do(b, "SELECT INBOX")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.do(b, "UID SORT (SUBJECT) UTF-8 ALL")
	}
}

// BenchmarkThreadReferences100k: THREAD REFERENCES over 100,000 messages,
// whose Message-ID/References headers are read from the files (linked
// from the 1,000 delivered ones, so the IDs repeat every 1,000 messages
// and later copies count as messages without an ID).
func BenchmarkThreadReferences100k(b *testing.B) {
	dir := benchFixture(b, "100k-threads", 100000, threadedMessage)
	ts := benchServer(b, dir)
	bc := dialBench(b, ts.addr)
	bc.do(b, "SELECT INBOX")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bc.do(b, "UID THREAD REFERENCES UTF-8 ALL")
	}
}
