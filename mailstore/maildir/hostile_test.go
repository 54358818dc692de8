package maildir

import (
	"context"
	"io"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
	"github.com/posthouse/posthouse/mailstore/mimeparse/hostile"
)

// TestDeliverHostile delivers every hostile case into a real store: each
// is stored whole, its cached structure decodes and respects the parser's
// limits, and delivery allocates a bounded amount whatever the message.
func TestDeliverHostile(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	mbox := inboxID(t, acc)
	ctx := context.Background()
	const size = 1 << 20
	for _, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			res, err := acc.Deliver(ctx, c.Gen(size), mailstore.DeliverOptions{})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			want := max(int64(size), int64(len(hostile.Bytes(c, 0))))
			if res.Size != want {
				t.Errorf("stored %d bytes, want %d", res.Size, want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("delivering 1 MiB allocated %.1f MiB", float64(alloc)/(1<<20))
			}
			rows, err := acc.Fetch(ctx, mbox, imap.UIDSetNum(res.UID), mailstore.FetchOptions{Envelope: true, BodyStructure: true})
			if err != nil || len(rows) != 1 {
				t.Fatalf("Fetch: %v, %d rows", err, len(rows))
			}
			if rows[0].Envelope == nil || rows[0].BodyStructure == nil {
				t.Fatal("no envelope or body structure cached")
			}
			depth, parts := 0, 0
			var walk func(bs imap.BodyStructure, d int)
			walk = func(bs imap.BodyStructure, d int) {
				parts++
				depth = max(depth, d)
				switch bs := bs.(type) {
				case *imap.BodyStructureMultiPart:
					if len(bs.Children) == 0 || bs.Extended == nil {
						t.Fatal("multipart go-imap cannot write")
					}
					for _, ch := range bs.Children {
						walk(ch, d+1)
					}
				case *imap.BodyStructureSinglePart:
					if bs.Extended == nil {
						t.Fatal("part without extension data")
					}
					if m := bs.MessageRFC822; m != nil {
						walk(m.BodyStructure, d+1)
					}
				}
			}
			walk(rows[0].BodyStructure, 0)
			if depth > mimeparse.MaxDepth || parts > 2*mimeparse.MaxParts {
				t.Errorf("cached structure %d deep with %d parts", depth, parts)
			}
			f, n, err := acc.OpenMessage(ctx, mbox, res.UID)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if m, _ := io.Copy(io.Discard, f); m != n || n != want {
				t.Errorf("file holds %d bytes of %d", m, n)
			}
		})
	}
}

// BenchmarkDeliverBomb is delivery of the nested message/rfc822 bomb that
// exhausted memory before the streaming parser: b.N deliveries of 1 MiB and
// of 50 MiB (file written and fsync'd, parsed on the way, row committed).
func BenchmarkDeliverBomb(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int64
	}{{"1MiB", 1 << 20}, {"50MiB", 50 << 20}} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			s, err := Open(context.Background(), dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			acc, err := s.Open(context.Background(), testAccount)
			if err != nil {
				b.Fatal(err)
			}
			defer acc.Close()
			gen := hostile.Cases()[0].Gen
			b.SetBytes(tc.size)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := acc.Deliver(context.Background(), gen(tc.size), mailstore.DeliverOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkParseBomb is the parse alone, without the file and the index.
func BenchmarkParseBomb(b *testing.B) {
	for _, c := range hostile.Cases()[:2] {
		for _, size := range []int64{1 << 20, 50 << 20} {
			b.Run(c.Name+"/"+byteSize(size), func(b *testing.B) {
				b.SetBytes(size)
				b.ReportAllocs()
				cpu := cpuTime()
				for i := 0; i < b.N; i++ {
					if _, err := parseMessage(c.Gen(size)); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
}

func byteSize(n int64) string {
	if n >= 1<<20 {
		return strconv.FormatInt(n>>20, 10) + "MiB"
	}
	return strconv.FormatInt(n>>10, 10) + "KiB"
}

// cpuTime is the process's user+system CPU time: on the shared development
// machine wall time (ns/op) says more about the neighbours than about us.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports CPU seconds per operation since start (all goroutines:
// parser, GC, SQLite).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
}
