package pop3d

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/mailstore"
)

// benchMessage is a 50 KB message of 76-octet lines, a few starting with
// a dot.
func benchMessage(i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: bench@example.org\r\nTo: %s\r\nSubject: bench %d\r\nMessage-ID: <%d@bench.example>\r\n\r\n", testUser, i, i)
	line := strings.Repeat("x", 74) + "\r\n"
	for n := 0; b.Len()+len(line) <= 50<<10; n++ {
		if n%100 == 0 {
			b.WriteString("." + line[1:])
		} else {
			b.WriteString(line)
		}
	}
	return b.Bytes()
}

// BenchmarkRetrDele1000 times one POP3 session on the real maildir store
// over loopback: log in, RETR and DELE each of 1,000 messages of 50 KB
// (waiting for each reply, as fetchmail and most clients do), then QUIT,
// which expunges all 1,000. Filling the maildrop is not timed. Metrics:
// ms per session, and the split between RETR+DELE and QUIT (UPDATE).
func BenchmarkRetrDele1000(b *testing.B) {
	const n = 1000
	ts := newTestServer(b)
	msgs := make([][]byte, n)
	var total int64
	for i := range msgs {
		msgs[i] = benchMessage(i)
		total += int64(len(msgs[i]))
	}
	b.SetBytes(total)
	var retrDur, quitDur time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		acct, err := ts.disk.Open(context.Background(), testUser)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if _, err := acct.Deliver(context.Background(), bytes.NewReader(m), mailstore.DeliverOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		acct.Close()
		b.StartTimer()

		start := time.Now()
		c := ts.login(b)
		for j := 1; j <= n; j++ {
			c.cmdOK("RETR " + strconv.Itoa(j))
			if got := c.multiRaw(); len(got) != len(msgs[j-1]) {
				b.Fatalf("RETR %d: %d octets, want %d", j, len(got), len(msgs[j-1]))
			}
			c.cmdOK("DELE " + strconv.Itoa(j))
		}
		mid := time.Now()
		c.cmdOK("QUIT")
		end := time.Now()
		retrDur += mid.Sub(start)
		quitDur += end.Sub(mid)

		b.StopTimer()
		c.c.Close()
		if left := len(ts.inbox(b, testUser).Messages); left != 0 {
			b.Fatalf("%d messages left after QUIT", left)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64((retrDur+quitDur).Milliseconds())/float64(b.N), "ms/session")
	b.ReportMetric(float64(retrDur.Milliseconds())/float64(b.N), "ms-retr+dele")
	b.ReportMetric(float64(quitDur.Milliseconds())/float64(b.N), "ms-quit")
}
