package junk

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/readerat"

	"github.com/posthouse/posthouse/mailstore"
)

// vocabulary is a made-up language of n words, for realistic numbers of
// distinct features.
func vocabulary(r *rand.Rand, n int) []string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	words := make([]string, n)
	for i := range words {
		var b strings.Builder
		for range 3 + r.IntN(7) {
			b.WriteByte(letters[r.IntN(len(letters))])
		}
		words[i] = b.String()
	}
	return words
}

// message10K is a 10 KB multipart/alternative message (text and HTML) of
// words from vocab.
func message10K(r *rand.Rand, vocab []string) string {
	var text strings.Builder
	for text.Len() < 4800 {
		text.WriteString(vocab[r.IntN(len(vocab))])
		text.WriteByte(' ')
		if r.IntN(12) == 0 {
			text.WriteString("\r\n")
		}
	}
	t := text.String()
	return "From: \"Sender Name\" <sender@remote.example>\r\nTo: alice@example.org\r\n" +
		"Subject: quarterly numbers and the offer\r\nMessage-ID: <x1@remote.example>\r\n" +
		"Date: Mon, 2 Jan 2026 15:04:05 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + t + "\r\n" +
		"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>" + t +
		`</p><a href="https://www.remote.example/x">link</a></body></html>` + "\r\n--b1--\r\n"
}

// trainedDB is a database where alice learned n spam and n ham messages
// of 200 words each from vocab (about 20,000 features for n = 500).
func trainedDB(b testing.TB, r *rand.Rand, vocab []string, n int) *DB {
	ctx := context.Background()
	db := openTestDB(b, "", DBOptions{})
	tok := &Tokenizer{}
	for i := range 2 * n {
		msg := "Subject: x\r\n\r\n"
		for range 200 {
			msg += vocab[r.IntN(len(vocab))] + " "
		}
		f := tokenize(b, tok, []byte(msg))
		if _, err := db.Learn(ctx, "alice@example.org", key(i), Class(1+i%2), f.Hashes()); err != nil {
			b.Fatal(err)
		}
		f.release()
	}
	return db
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCheck is the filter on a 10 KB message for a trained account:
// the header parse, the tokenizer, the lookup and the score. cpu-ns/op is
// the process's CPU time (getrusage) per message.
// Run: go test -run '^$' -bench Check -benchmem ./junk
func BenchmarkCheck(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := vocabulary(r, 5000)
	db := trainedDB(b, r, vocab, 500)
	st, _ := db.Stats(context.Background(), "alice@example.org")
	msg := message10K(r, vocab)
	body := readerat.String(msg)
	f, err := NewFilter(FilterOptions{DB: db, Hostname: "mx.example.org"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	rcpts := []delivery.Recipient{{Account: "alice@example.org"}}
	feats := tokenize(b, &Tokenizer{}, []byte(msg))
	b.Logf("account: %d features; message: %d bytes, %d features", st.Tokens, len(msg), feats.Len())
	feats.release()
	b.Run("whole", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		c0 := cpuTime()
		for b.Loop() {
			h := parseHeader(b, []byte(msg[:400]))
			d, err := f.check(ctx, "id", rcpts, h, io.NewSectionReader(body, 0, body.Size()))
			if err != nil || len(d.Rcpt) != 1 {
				b.Fatal(d, err)
			}
		}
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
	})
	b.Run("tokenize", func(b *testing.B) {
		b.ReportAllocs()
		h := parseHeader(b, []byte(msg))
		tok := &Tokenizer{}
		for b.Loop() {
			f, err := tok.Tokenize(h, io.NewSectionReader(body, 0, body.Size()), body.Size())
			if err != nil {
				b.Fatal(err)
			}
			f.release()
		}
	})
	b.Run("lookup", func(b *testing.B) {
		b.ReportAllocs()
		f := tokenize(b, &Tokenizer{}, []byte(msg))
		defer f.release()
		for b.Loop() {
			if _, _, err := db.Counts(ctx, "alice@example.org", f.Hashes()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// nullStore keeps nothing, so that BenchmarkDeliver measures the pipeline
// and the filter, not a disk.
type nullStore struct{}

func (nullStore) Open(_ context.Context, name string) (delivery.Account, error) {
	return nullAccount{}, nil
}

// nullAccount is a delivery.Account that keeps nothing.
type nullAccount struct{}

func (nullAccount) Close() error { return nil }
func (nullAccount) Deliver(_ context.Context, r io.Reader, _ mailstore.DeliverOptions) (mailstore.AppendResult, error) {
	n, err := io.Copy(io.Discard, r)
	return mailstore.AppendResult{UID: 1, Size: n}, err
}

type oneDirectory struct{}

func (oneDirectory) Resolve(_ context.Context, addr string) (auth.Resolution, error) {
	return auth.Resolution{Local: []string{addr}}, nil
}

// BenchmarkDeliver is the delivery pipeline for a 10 KB message from port
// 25 to one trained account, without and with the junk filter: the
// difference is what the filter adds to each message.
func BenchmarkDeliver(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := vocabulary(r, 5000)
	db := trainedDB(b, r, vocab, 500)
	msg := message10K(r, vocab)
	body := readerat.String(msg)
	f, err := NewFilter(FilterOptions{DB: db, Hostname: "mx.example.org"})
	if err != nil {
		b.Fatal(err)
	}
	for _, filters := range [][]delivery.Filter{nil, {f}} {
		p, err := delivery.New(delivery.Options{Directory: oneDirectory{}, Store: nullStore{}, Filters: filters})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("filters=%d", len(filters)), func(b *testing.B) {
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				out := p.Deliver(context.Background(), &delivery.Request{
					Envelope: delivery.Envelope{Source: delivery.SourceSMTP, ID: "x"},
					Rcpts:    []string{"alice@example.org"},
					Body:     io.NewSectionReader(body, 0, body.Size()),
				})
				if out.Results[0].Err != nil {
					b.Fatal(out.Results[0].Err)
				}
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkIMAPLearning is what the learner costs IMAP commands: MOVE
// between INBOX and Junk and STORE ±$Junk through imapd and go-imap's
// client, with imapd on the plain store and on the learner's. Every MOVE
// with the learner re-classifies a message (unlearn, learn). cpu-ns/op
// includes the learner's background work: the loop waits until it is idle.
// Run: go test -run '^$' -bench IMAPLearning -benchmem ./junk
func BenchmarkIMAPLearning(b *testing.B) {
	spam, _ := corpus(3, 1)
	for _, learn := range []bool{false, true} {
		for _, cmd := range []string{"move", "store"} {
			b.Run(fmt.Sprintf("learner=%v/%s", learn, cmd), func(b *testing.B) {
				e := newEnv(b, learn)
				ctx := context.Background()
				a, err := e.store.Open(ctx, alice)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := a.Deliver(ctx, strings.NewReader(string(spam[0])), mailstore.DeliverOptions{}); err != nil {
					b.Fatal(err)
				}
				a.Close()
				c := e.client()
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					b.Fatal(err)
				}
				where, other := "INBOX", "Junk"
				c0 := cpuTime()
				i := 0
				for b.Loop() {
					switch cmd {
					case "move":
						if _, err := c.Move(imap.SeqSetNum(1), other).Wait(); err != nil {
							b.Fatal(err)
						}
						where, other = other, where
						if _, err := c.Select(where, nil).Wait(); err != nil {
							b.Fatal(err)
						}
					case "store":
						op := imap.StoreFlagsAdd
						if i%2 == 1 {
							op = imap.StoreFlagsDel
						}
						if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: op, Flags: []imap.Flag{JunkKeyword}}, nil).Close(); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
				if learn {
					e.idle()
				}
				b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
				if learn {
					b.ReportMetric(float64(e.learner.Learned()), "learned")
				}
			})
		}
	}
}
