package queue

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
)

// BenchmarkRelay measures relay throughput to a loopback receiver (go-smtp,
// body discarded), in two phases reported separately:
//
//   - enqueues/s: durable Enqueue (fsync'd spool file, directory fsync,
//     SQLite commit) from 8 concurrent senders, deliveries stopped;
//   - msgs/s: draining that backlog: MX lookup through the loopback DNS
//     server, SMTP delivery (connections reused for one domain's backlog)
//     and the per-recipient commits, until every message left the queue.
//
// Messages go round-robin to 1 or 20 destination domains; MaxPerDomain (5)
// and MaxConcurrent (50) apply. With starttls=true the receiver offers
// STARTTLS (ECDSA P-256 certificate) and every connection upgrades. ns/op
// covers both phases.
func BenchmarkRelay(b *testing.B) {
	for _, tls := range []bool{false, true} {
		for _, domains := range []int{1, 20} {
			b.Run(fmt.Sprintf("starttls=%v/domains=%d", tls, domains), func(b *testing.B) { benchRelay(b, domains, tls) })
		}
	}
}

func benchRelay(b *testing.B, domains int, starttls bool) {
	var delivered atomic.Int64
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &countingSession{n: &delivered}, nil
	}))
	srv.Domain = "sink.test"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	srv.ErrorLog = nopLogger{}
	if starttls {
		srv.TLSConfig = certstest.Default().ServerConfig("mx.b.test")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	ns := dnstest.NewServer(b)
	for i := range domains {
		ns.Add(fmt.Sprintf("d%d.test. MX 10 mx.d%d.test.", i, i), fmt.Sprintf("mx.d%d.test. A 127.0.0.1", i))
	}
	res, err := dns.New(dns.Options{Server: ns.Addr})
	if err != nil {
		b.Fatal(err)
	}
	q, err := Open(context.Background(), Options{
		DataDir:      b.TempDir(),
		Hostname:     "bench.a.test",
		Resolver:     res,
		RemotePort:   ln.Addr().(*net.TCPAddr).Port,
		DisableTLS:   !starttls,
		PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	body := testBody + strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 60) // ~3.7 KiB
	b.SetBytes(int64(len(body)))
	defer q.Shutdown(context.Background())

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	const senders = 8 // concurrent SMTP sessions handing mail to the queue
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				rcpt := fmt.Sprintf("user%d@d%d.test", i, i%int64(domains))
				if _, err := q.Enqueue(context.Background(), "alice@a.test", []string{rcpt}, strings.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	enqueued := time.Since(start)
	drainStart := time.Now()
	q.Start()
	for delivered.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	drained := time.Since(drainStart)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/drained.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/enqueued.Seconds(), "enqueues/s")
}

type countingSession struct{ n *atomic.Int64 }

func (s *countingSession) Reset()                               {}
func (s *countingSession) Logout() error                        { return nil }
func (s *countingSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *countingSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *countingSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.n.Add(1)
	return nil
}
