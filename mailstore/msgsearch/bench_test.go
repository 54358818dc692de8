package msgsearch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// BenchmarkTextSearch is SEARCH TEXT of a rare word over 10,000 plain-text
// messages of 5 KB held in memory: the evaluator's own cost, without the
// file system.
func BenchmarkTextSearch(b *testing.B) {
	words := []string{"mail", "server", "queue", "delivery", "message", "header", "body", "folder",
		"index", "report", "budget", "the", "and", "of", "to", "in", "please", "review", "thanks"}
	const n = 10000
	msgs := make([][]byte, n)
	rows := make([]Row, n)
	for i := range msgs {
		r := rand.New(rand.NewPCG(uint64(i), 1))
		var m bytes.Buffer
		fmt.Fprintf(&m, "From: Bench Sender <sender@bench.example>\r\nTo: <u@example.org>\r\nSubject: bench message %d\r\n"+
			"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <%d@bench.example>\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: text/plain; charset=us-ascii\r\n\r\n", i, i)
		if i%100 == 0 {
			m.WriteString("zebracornflux ")
		}
		line := 0
		for m.Len() < 5<<10 {
			w := words[r.IntN(len(words))]
			if line+len(w) > 72 {
				m.WriteString("\r\n")
				line = 0
			}
			m.WriteString(w + " ")
			line += len(w) + 1
		}
		msgs[i] = m.Bytes()
		rows[i] = Row{UID: imap.UID(i + 1), Size: int64(m.Len())}
	}
	open := func(i int) (io.ReadSeekCloser, error) { return nopCloser{bytes.NewReader(msgs[i])}, nil }
	c := &imap.SearchCriteria{Text: []string{"ZebraCornFlux"}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		got, err := Run(context.Background(), rows, c, shared(open))
		if err != nil || len(got) != n/100 {
			b.Fatalf("%d hits, %v", len(got), err)
		}
	}
}
