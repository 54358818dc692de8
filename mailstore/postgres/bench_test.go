package postgres

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// The benchmarks compare this backend with maildir in one run, on a
// PostgreSQL of their own with fsync and synchronous_commit on (the
// defaults), since maildir fsyncs every delivery. They report the
// statements each operation sends: every statement, BEGIN and COMMIT
// included, is one round trip (nothing is pipelined), counted by a pgx
// tracer on the pool.

var (
	benchOnce sync.Once
	benchSrv  *pgtest.Server
	benchErr  error
)

// stopBenchServer is called by TestMain.
func stopBenchServer() {
	if benchSrv != nil {
		benchSrv.Stop()
	}
}

// benchDSN returns a new database on the durable benchmark server.
func benchDSN(b *testing.B) string {
	benchOnce.Do(func() { benchSrv, benchErr = pgtest.StartWith(pgtest.StartOptions{Durable: true}) })
	if benchErr == pgtest.ErrNotInstalled {
		b.Skip(benchErr.Error())
	}
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	name, err := benchSrv.CreateDatabase(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return benchSrv.DSN(name)
}

// stmtCounter counts the statements sent through a pool.
type stmtCounter struct{ n atomic.Int64 }

func (c *stmtCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *stmtCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// benchBackend is one backend under benchmark.
type benchBackend struct {
	name  string
	open  func(b *testing.B) mailstore.Store
	stmts *stmtCounter // nil for maildir
}

func benchBackends() []*benchBackend {
	pg := &benchBackend{name: "postgres", stmts: &stmtCounter{}}
	pg.open = func(b *testing.B) mailstore.Store {
		cfg, err := pgxpool.ParseConfig(benchDSN(b))
		if err != nil {
			b.Fatal(err)
		}
		cfg.ConnConfig.Tracer = pg.stmts
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		s, err := Open(context.Background(), Options{Pool: pool})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close(); pool.Close() })
		return s
	}
	md := &benchBackend{name: "maildir"}
	md.open = func(b *testing.B) mailstore.Store {
		s, err := maildir.Open(context.Background(), b.TempDir(), maildir.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	return []*benchBackend{md, pg}
}

// message10K is a 10 KB message with a realistic header.
var message10K = func() string {
	h := "Return-Path: <bob@example.net>\r\nReceived: from mx.example.net by mail.example.org; Sat, 21 Nov 2026 10:00:00 +0000\r\n" +
		"From: Bob <bob@example.net>\r\nTo: Alice <alice@example.org>\r\nSubject: benchmark message\r\n" +
		"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.net>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n"
	line := strings.Repeat("0123456789", 7) + "\r\n"
	var b strings.Builder
	b.WriteString(h)
	for b.Len()+len(line) <= 10*1024 {
		b.WriteString(line)
	}
	return b.String()
}()

func benchAccount(b *testing.B, s mailstore.Store) mailstore.Account {
	acc, err := s.Open(context.Background(), "alice@example.org")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { acc.Close() })
	return acc
}

// reportStmts reports the statements (round trips) per operation since
// the counter was reset.
func (bb *benchBackend) reportStmts(b *testing.B, since int64) {
	if bb.stmts != nil {
		b.ReportMetric(float64(bb.stmts.n.Load()-since)/float64(b.N), "stmts/op")
	}
}

// BenchmarkDeliver: durable deliveries of 10 KB messages into one
// account, one after the other.
func BenchmarkDeliver(b *testing.B) {
	ctx := context.Background()
	for _, bb := range benchBackends() {
		b.Run("backend="+bb.name, func(b *testing.B) {
			acc := benchAccount(b, bb.open(b))
			b.SetBytes(int64(len(message10K)))
			var since int64
			if bb.stmts != nil {
				since = bb.stmts.n.Load()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := acc.Deliver(ctx, strings.NewReader(message10K), mailstore.DeliverOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			bb.reportStmts(b, since)
		})
	}
}

// BenchmarkFetchFlags10k: FETCH 1:* FLAGS of a mailbox of 10,000
// messages (Fetch with SummaryOnly, as imapd asks for it), filled by
// deliveries before the timer starts.
func BenchmarkFetchFlags10k(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	for _, bb := range benchBackends() {
		b.Run("backend="+bb.name, func(b *testing.B) {
			acc := benchAccount(b, bb.open(b))
			var (
				wg   sync.WaitGroup
				next atomic.Int64
				mbID atomic.Int64
			)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= n {
						res, err := acc.Deliver(ctx, strings.NewReader(message10K), mailstore.DeliverOptions{})
						if err != nil {
							b.Error(err)
							return
						}
						mbID.Store(res.MailboxID)
					}
				}()
			}
			wg.Wait()
			if b.Failed() {
				return
			}
			all := imap.UIDSet{{Start: 1, Stop: 0}}
			opts := mailstore.FetchOptions{SummaryOnly: true}
			var since int64
			if bb.stmts != nil {
				since = bb.stmts.n.Load()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				infos, err := acc.Fetch(ctx, mbID.Load(), all, opts)
				if err != nil || len(infos) != n {
					b.Fatalf("Fetch: %d rows, %v", len(infos), err)
				}
			}
			b.StopTimer()
			bb.reportStmts(b, since)
		})
	}
}

// BenchmarkFetchFlagsOne: FETCH n FLAGS of one message in a mailbox of
// 1,000 (a client's flag refresh after an EXPUNGE or a STORE).
func BenchmarkFetchFlagsOne(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	for _, bb := range benchBackends() {
		b.Run("backend="+bb.name, func(b *testing.B) {
			acc := benchAccount(b, bb.open(b))
			var res mailstore.AppendResult
			for range n {
				var err error
				if res, err = acc.Deliver(ctx, strings.NewReader(message10K), mailstore.DeliverOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			opts := mailstore.FetchOptions{SummaryOnly: true}
			var since int64
			if bb.stmts != nil {
				since = bb.stmts.n.Load()
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				uid := imap.UID(1 + i%n)
				infos, err := acc.Fetch(ctx, res.MailboxID, imap.UIDSetNum(uid), opts)
				if err != nil || len(infos) != 1 {
					b.Fatalf("Fetch: %d rows, %v", len(infos), err)
				}
			}
			b.StopTimer()
			bb.reportStmts(b, since)
		})
	}
}
