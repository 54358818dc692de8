package delivery

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
)

// nullStore reads each copy and keeps nothing, so that the benchmark
// measures the pipeline, not a disk.
type nullStore struct{}

func (nullStore) Open(_ context.Context, name string) (Account, error) {
	return nullAccount{}, nil
}

// nullAccount is an Account that keeps nothing.
type nullAccount struct{}

func (nullAccount) Close() error { return nil }
func (nullAccount) Deliver(_ context.Context, r io.Reader, _ mailstore.DeliverOptions) (mailstore.AppendResult, error) {
	n, err := io.Copy(io.Discard, r)
	return mailstore.AppendResult{UID: 1, Size: n}, err
}

// BenchmarkDeliver compares the pipeline with what smtpd did before it (open
// the account, store Return-Path and the message) for a 10 KB message to 1
// and 5 accounts, with no filter and with one that reads the header. The
// difference is what the pipeline adds to each message at SMTP intake.
// Run: go test -run '^$' -bench Deliver -benchmem ./delivery
func BenchmarkDeliver(b *testing.B) {
	line := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,", 1) + "\r\n"
	msg := "From: bench@remote.test\r\nSubject: benchmark\r\n\r\n" + strings.Repeat(line, 10240/len(line))
	body := readerat.Concat(readerat.String("Received: from client.test\r\n"), readerat.String(msg))
	for _, n := range []int{1, 5} {
		dir := &fakeDirectory{routes: map[string]auth.Resolution{}}
		var rcpts []string
		for i := range n {
			a := fmt.Sprintf("user%d@a.test", i)
			dir.routes[a] = auth.Resolution{Local: []string{a}}
			rcpts = append(rcpts, a)
		}
		b.Run(fmt.Sprintf("path=direct/accounts=%d", n), func(b *testing.B) {
			ctx := context.Background()
			var st nullStore
			b.SetBytes(body.Size())
			for b.Loop() {
				for _, acct := range rcpts {
					a, _ := st.Open(ctx, acct)
					r := io.MultiReader(strings.NewReader("Return-Path: <bench@remote.test>\r\n"), io.NewSectionReader(body, 0, body.Size()))
					if _, err := a.Deliver(ctx, r, mailstore.DeliverOptions{}); err != nil {
						b.Fatal(err)
					}
					a.Close()
				}
			}
		})
		for _, filters := range []string{"none", "header"} {
			b.Run(fmt.Sprintf("path=pipeline/filters=%s/accounts=%d", filters, n), func(b *testing.B) {
				opts := Options{Directory: dir, Store: nullStore{}}
				if filters == "header" {
					opts.Filters = []Filter{&funcFilter{name: "header", fn: func(_ context.Context, m *Message) (Decision, error) {
						if m.Header().Get("Subject") == "" {
							return Decision{}, fmt.Errorf("no subject")
						}
						return Decision{}, nil
					}}}
				}
				p, err := New(opts)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(body.Size())
				for b.Loop() {
					out := p.Deliver(context.Background(), &Request{Envelope: Envelope{From: "bench@remote.test"}, Rcpts: rcpts, Body: body})
					for _, r := range out.Results {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
				}
			})
		}
	}
}
