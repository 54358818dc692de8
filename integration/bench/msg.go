package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"time"
)

// needle is the word SEARCH TEXT looks for; message i carries it when
// i%needleEvery == 0, so both servers must return the same count.
const (
	needle      = "zebracornflux"
	needleEvery = 100
)

// words is the vocabulary of the generated bodies: plain ASCII prose, so
// neither server spends time on charsets or MIME structure.
var words = []string{
	"mail", "server", "queue", "delivery", "message", "header", "body", "folder",
	"index", "sqlite", "maildir", "protocol", "client", "benchmark", "latency",
	"throughput", "memory", "disk", "network", "loopback", "retry", "bounce",
	"invoice", "meeting", "project", "report", "budget", "schedule", "weekly",
	"the", "and", "of", "to", "in", "for", "with", "on", "at", "by", "from",
	"please", "review", "attached", "thanks", "regards", "update", "status",
}

// makeMessage returns a deterministic RFC 5322 message of about size bytes
// (CRLF line endings, lines under 78 octets). tag makes the Message-ID and
// the Subject unique across the whole benchmark run.
func makeMessage(tag string, i, size int, to string) []byte {
	r := rand.New(rand.NewPCG(uint64(i), uint64(len(tag))))
	var b bytes.Buffer
	b.Grow(size + 128)
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	fmt.Fprintf(&b, "From: Bench Sender <sender@bench.example>\r\n")
	fmt.Fprintf(&b, "To: <%s>\r\n", to)
	fmt.Fprintf(&b, "Subject: bench %s message %d\r\n", tag, i)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%d@bench.example>\r\n", tag, i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	line := 0
	if i%needleEvery == 0 {
		b.WriteString(needle)
		b.WriteByte(' ')
		line = len(needle) + 1
	}
	for b.Len() < size-2 {
		w := words[r.IntN(len(words))]
		if line+len(w)+1 > 72 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(w)
		b.WriteByte(' ')
		line += len(w) + 1
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
