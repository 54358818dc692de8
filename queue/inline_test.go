package queue

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSmallMessageKeptInRow: a message of up to inlineMax bytes (counted
// after bare LFs become CRLF) lives in its row, a larger one in a spool
// file; both survive a restart byte for byte, and a backup's file list
// names only the spool file.
func TestSmallMessageKeptInRow(t *testing.T) {
	remote := newFakeRemote(t)
	e, q := acceptOnly(t, remote)
	body := func(n int, eol string) string {
		head := "Subject: size\r\n\r\n"
		line := strings.Repeat("x", 70) + eol
		var b strings.Builder
		b.WriteString(head)
		for b.Len()+len(line)+len(eol)+1 <= n {
			b.WriteString(line)
		}
		b.WriteString(strings.Repeat("y", n-b.Len()-len(eol)) + eol)
		return b.String()
	}
	cases := []struct {
		name, body, want string
		inline           bool
	}{
		{"at the limit", body(inlineMax, "\r\n"), "", true},
		{"one byte over", body(inlineMax+1, "\r\n"), "", false},
		// Under the limit as given, over it once every LF is CRLF.
		{"over once CRLF", body(inlineMax-100, "\n"), "", false},
		{"small", testBody, "", true},
	}
	ids := map[string]string{}
	for i, c := range cases {
		// As stored and delivered: every line ending CRLF.
		cases[i].want = strings.ReplaceAll(strings.ReplaceAll(c.body, "\r\n", "\n"), "\n", "\r\n")
		rcpt := strings.ReplaceAll(c.name, " ", "-") + "@b.test"
		id, err := q.Enqueue(context.Background(), "alice@a.test", []string{rcpt}, strings.NewReader(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ids[c.name] = id
		_, ferr := os.Stat(q.spoolPath(id))
		if c.inline != os.IsNotExist(ferr) {
			t.Errorf("%s (%d bytes): spool file present %v, want %v", c.name, len(cases[i].want), ferr == nil, !c.inline)
		}
		m, err := q.Get(context.Background(), id)
		if err != nil || m.Size != int64(len(cases[i].want)) {
			t.Errorf("%s: size %d (%v), want %d", c.name, m.Size, err, len(cases[i].want))
		}
	}
	q.Close()

	files, err := SnapshotFiles(context.Background(), filepath.Join(e.dir, "queue.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range cases {
		if !c.inline {
			want = append(want, "queue/"+ids[c.name])
		}
	}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Errorf("SnapshotFiles = %v, want %v", files, want)
	}

	e.open()
	for _, c := range cases {
		rcpt := strings.ReplaceAll(c.name, " ", "-") + "@b.test"
		waitFor(t, c.name+" delivered", func() bool { return remote.count(rcpt) == 1 })
		waitFor(t, c.name+" leaves the queue", func() bool { return e.gone(ids[c.name]) })
		for _, m := range remote.messages() {
			if m.rcpts[0] == rcpt && !bytes.Equal(m.body, []byte(c.want)) {
				t.Errorf("%s: delivered %d bytes, want the %d enqueued", c.name, len(m.body), len(c.want))
			}
		}
	}
}

// TestDrainedBacklogGivesSpaceBack: once the messages kept in their rows
// are gone, housekeeping gives queue.sqlite's free pages back.
func TestDrainedBacklogGivesSpaceBack(t *testing.T) {
	old := reclaimMin
	reclaimMin = 1 << 20
	t.Cleanup(func() { reclaimMin = old })
	remote := newFakeRemote(t)
	_, q := acceptOnly(t, remote)
	ctx := context.Background()
	pages := func() (n, free int64) {
		t.Helper()
		if err := q.db.Read.QueryRowContext(ctx, `SELECT (SELECT page_count FROM pragma_page_count()), (SELECT freelist_count FROM pragma_freelist_count())`).Scan(&n, &free); err != nil {
			t.Fatal(err)
		}
		return n, free
	}
	body := "Subject: backlog\r\n\r\n" + strings.Repeat(strings.Repeat("z", 78)+"\r\n", 600)
	var ids []string
	for range 100 {
		id, err := q.Enqueue(ctx, "alice@a.test", []string{"bob@b.test"}, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	full, _ := pages()
	q.reclaimSpace(ctx)
	if n, _ := pages(); n != full {
		t.Fatalf("a full queue was vacuumed: %d pages, then %d", full, n)
	}
	for _, id := range ids[:10] {
		if err := q.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	q.reclaimSpace(ctx)
	if n, _ := pages(); n != full {
		t.Errorf("vacuumed with a tenth free: %d pages, then %d", full, n)
	}
	for _, id := range ids[10:] {
		if err := q.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, free := pages(); free*2 < full {
		t.Fatalf("only %d of %d pages free after the backlog went", free, full)
	}
	q.reclaimSpace(ctx)
	if n, free := pages(); n*4 > full || free != 0 {
		t.Errorf("after the backlog drained: %d pages (%d free), from %d", n, free, full)
	}
}

// TestHostileBodiesAroundInlineLimit: binary bodies (NUL, bare CR and LF,
// 8-bit, dot lines) whose stored size lands just under, at and over
// inlineMax come back byte for byte as the CRLF writer makes them, from
// the row or the spool file; one over MaxMessageSize is refused and
// leaves neither a row nor a file.
func TestHostileBodiesAroundInlineLimit(t *testing.T) {
	remote := newFakeRemote(t)
	e, q := acceptOnly(t, remote, func(o *Options) { o.MaxMessageSize = 3 * inlineMax })
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\x00\r\n\n.\xffa \t\r\n")
	hostile := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return b
	}
	for _, n := range []int{1, inlineMax / 2, inlineMax - 3000, inlineMax - 1, inlineMax, inlineMax + 1, 2 * inlineMax} {
		for range 3 {
			in := hostile(n)
			want, _, _, _ := crlfReference([][]byte{in}, 0)
			id, err := q.Enqueue(ctx, "alice@a.test", []string{"bob@b.test"}, bytes.NewReader(in))
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			b, err := q.st.body(ctx, id)
			if err != nil {
				t.Fatalf("%d bytes: body: %v", n, err)
			}
			got := make([]byte, b.Size())
			_, err = b.ReadAt(got, 0)
			b.Close()
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%d bytes in: stored %d bytes, want the CRLF writer's %d", n, len(got), len(want))
			}
			_, ferr := os.Stat(q.spoolPath(id))
			if inRow := os.IsNotExist(ferr); inRow != (len(want) <= inlineMax) {
				t.Errorf("%d bytes stored: kept in the row %v", len(want), inRow)
			}
		}
	}
	before, _ := q.List(ctx)
	if _, err := q.Enqueue(ctx, "alice@a.test", []string{"bob@b.test"}, bytes.NewReader(hostile(3*inlineMax+1))); !errors.Is(err, ErrTooBig) {
		t.Fatalf("over the size limit: %v", err)
	}
	if after, _ := q.List(ctx); len(after) != len(before) {
		t.Errorf("a refused message left a row: %d entries, then %d", len(before), len(after))
	}
	if tmps, _ := os.ReadDir(filepath.Join(e.dir, "queue", "tmp")); len(tmps) != 0 {
		t.Errorf("a refused message left %d files in tmp/", len(tmps))
	}
}
