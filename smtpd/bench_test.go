package smtpd

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
)

// BenchmarkAccept measures messages per second accepted and durable (the
// 250 comes after fsync and index commit in the real maildir store): 10 KB
// messages over 1 and 20 concurrent connections, each message to one of 20
// local accounts. store=memory replaces the delivery pipeline with one
// that reads each message and keeps nothing, to show what the protocol
// side costs alone (the quota check at RCPT still reads the maildir index).
// Run: go test -run '^$' -bench Accept -benchtime 2000x ./smtpd
func BenchmarkAccept(b *testing.B) {
	for _, store := range []string{"maildir", "memory"} {
		for _, conns := range []int{1, 20} {
			b.Run(fmt.Sprintf("store=%s/conns=%d", store, conns), func(b *testing.B) { benchAccept(b, store, conns) })
		}
	}
}

func benchAccept(b *testing.B, store string, conns int) {
	opts := []func(*Options){func(o *Options) { o.Logger = slog.New(slog.DiscardHandler) }}
	if store == "memory" {
		opts = append(opts, withDelivery(&scriptedDelivery{}))
	}
	ts := newTestServer(b, opts...)
	const accounts = 20
	for i := range accounts {
		ts.dir.passwords[fmt.Sprintf("user%d@example.org", i)] = "x"
	}
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,", 1) + "\r\n" // 66 octets
	body := "From: bench@remote.test\r\nSubject: benchmark\r\n\r\n" + strings.Repeat(line, 10240/len(line))
	b.SetBytes(int64(len(body)))

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	b.ResetTimer()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(ts.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				rcpt := fmt.Sprintf("user%d@example.org", n%accounts)
				if err := sendBench(c, rcpt, body); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func sendBench(c *smtp.Client, rcpt, body string) error {
	if err := c.Mail("bench@remote.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	return w.Close()
}
