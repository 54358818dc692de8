package postgres

import (
	"bytes"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
)

// patternReader yields n bytes of a message with a small header and a
// body of pseudo-random text lines, without holding them in memory.
type patternReader struct {
	hdr  string
	n    int64
	off  int64
	line []byte
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{hdr: "From: bob@example.net\r\nSubject: big\r\n\r\n", n: n, line: []byte(strings.Repeat("abcdefghij", 7) + "\r\n")}
}

func (p *patternReader) byteAt(i int64) byte {
	if i < int64(len(p.hdr)) {
		return p.hdr[i]
	}
	return p.line[(i-int64(len(p.hdr)))%int64(len(p.line))]
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	n := min(int64(len(b)), p.n-p.off)
	for i := range n {
		b[i] = p.byteAt(p.off + i)
	}
	p.off += n
	return int(n), nil
}

// TestBigBody: a message of several chunks is stored and read back byte
// for byte, also after seeks across chunk boundaries, and storing it does
// not hold it in memory (the heap in use after the delivery, with its
// garbage collected, stays far below the message's size).
func TestBigBody(t *testing.T) {
	s := openTestStore(t, Options{DSN: pgtest.NewDatabase(t)})
	t.Cleanup(func() { s.Close() })
	acc := openAccount(t, s, "alice@example.org")
	const size = 32*bodyChunk + 12345

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res, err := acc.Deliver(t.Context(), newPatternReader(size), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if res.Size != size {
		t.Fatalf("size %d, want %d", res.Size, size)
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > size/4 {
		t.Errorf("heap in use grew by %d bytes over a delivery of %d", grew, size)
	}
	var chunks int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM mail_body_chunks`).Scan(&chunks); err != nil || chunks != 33 {
		t.Errorf("%d chunk rows (%v), want 33", chunks, err)
	}

	rc, n, err := acc.OpenMessage(t.Context(), res.MailboxID, res.UID)
	if err != nil || n != size {
		t.Fatalf("OpenMessage: %d bytes, %v", n, err)
	}
	defer rc.Close()
	want := newPatternReader(size)
	got, err := io.ReadAll(rc)
	if err != nil || int64(len(got)) != size {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	for i := range int64(size) {
		if got[i] != want.byteAt(i) {
			t.Fatalf("byte %d differs", i)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 3000)
	for range 50 {
		off := rng.Int64N(size)
		if _, err := rc.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		k, err := io.ReadFull(rc, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(buf[:k], got[off:off+int64(k)]) {
			t.Fatalf("read at %d differs", off)
		}
	}
	if end, err := rc.Seek(0, io.SeekEnd); err != nil || end != size {
		t.Fatalf("seek to the end: %d, %v", end, err)
	}
	if k, err := rc.Read(buf); k != 0 || err != io.EOF {
		t.Fatalf("read at the end: %d, %v", k, err)
	}

	// A copy shares the body; the body goes with the last row.
	cr, err := acc.Copy(t.Context(), res.MailboxID, imapUID(res.UID), "Archive")
	if err != nil {
		t.Fatal(err)
	}
	expungeAll := func(mb int64) {
		if _, err := acc.StoreFlags(t.Context(), mb, allUIDs, mailstore.FlagsAdd, deletedFlag, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := acc.Expunge(t.Context(), mb, nil); err != nil {
			t.Fatal(err)
		}
	}
	expungeAll(res.MailboxID)
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM mail_body_chunks`).Scan(&chunks); err != nil || chunks != 33 {
		t.Errorf("%d chunk rows (%v) while a copy remains, want 33", chunks, err)
	}
	expungeAll(cr.DestMailboxID)
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM mail_body_chunks`).Scan(&chunks); err != nil || chunks != 0 {
		t.Errorf("%d chunk rows (%v) after the last copy went, want 0", chunks, err)
	}
}
