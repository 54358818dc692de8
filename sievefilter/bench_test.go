package sievefilter

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/sievestore"
)

// cpuTime is the process's user and system CPU time: on the shared
// development machine wall time per operation says more about the load
// than about the code.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nullStore reads each copy and keeps nothing, so that the benchmark
// measures the pipeline and the filter, not a disk.
type nullStore struct{}

func (nullStore) Open(context.Context, string) (delivery.Account, error) { return nullAccount{}, nil }

type nullAccount struct{}

func (nullAccount) Close() error { return nil }
func (nullAccount) Deliver(_ context.Context, r io.Reader, _ mailstore.DeliverOptions) (mailstore.AppendResult, error) {
	n, err := io.Copy(io.Discard, r)
	return mailstore.AppendResult{UID: 1, Size: n}, err
}

// benchDirectory resolves everything to the one account.
type benchDirectory struct{}

func (benchDirectory) Resolve(context.Context, string) (auth.Resolution, error) {
	return auth.Resolution{Local: []string{"me@example.net"}}, nil
}

// BenchmarkPipeline is one delivery of a 10 KB message to one account
// through the pipeline, without the Sieve filter and with it running a
// typical 20-rule script (the one of package sieve's benchmark, with a
// vacation action whose sender was already answered: the common case).
// The difference is the filter's cost per delivery: two indexed queries
// (active script, out-of-office), the run, the verdict, the claim check.
// Run: go test -run '^$' -bench Pipeline -benchmem ./sievefilter
func BenchmarkPipeline(b *testing.B) {
	ctx := context.Background()
	st, err := sievestore.Open(ctx, filepath.Join(b.TempDir(), "sieve.sqlite"), sievestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(ctx, "me@example.net", "main", []byte(benchScript)); err != nil {
		b.Fatal(err)
	}
	if err := st.SetActive(ctx, "me@example.net", "main"); err != nil {
		b.Fatal(err)
	}
	q := &recordingQueue{}
	f, err := New(Options{Store: st, Queue: q, Hostname: "mail.example.net"})
	if err != nil {
		b.Fatal(err)
	}
	msg := readerat.String(benchMessage())
	for _, tc := range []struct {
		name    string
		filters []delivery.Filter
	}{
		{"filter=none", nil},
		{"filter=sieve", []delivery.Filter{f}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := delivery.New(delivery.Options{Directory: benchDirectory{}, Store: nullStore{}, Queue: q, Filters: tc.filters})
			if err != nil {
				b.Fatal(err)
			}
			req := &delivery.Request{Envelope: delivery.Envelope{Source: delivery.SourceSMTP, From: "alice@example.org"}, Rcpts: []string{"me@example.net"}, Body: msg}
			b.SetBytes(msg.Size())
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				out := p.Deliver(ctx, req)
				if err := out.Results[0].Err; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
			q.take()
		})
	}
	if n, _, _ := st.Tracked(ctx, "me@example.net"); n != 0 {
		b.Fatal("duplicates recorded")
	}
	if _, n, _ := st.Tracked(ctx, "me@example.net"); n != 1 {
		b.Fatalf("%d vacation responses tracked, want 1", n)
	}
}

const benchScript = `require ["fileinto", "imap4flags", "vacation", "envelope", "subaddress", "variables", "copy"];
if header :contains "list-id" "sieve.lists.example.org" { fileinto "Lists/sieve"; stop; }
if header :contains "list-id" "golang-nuts" { fileinto "Lists/go"; stop; }
if header :matches "list-id" "*<*.lists.example.org>*" { fileinto "Lists/${2}"; stop; }
if address :is "from" ["boss@example.com", "ceo@example.com"] { addflag "\\Flagged"; }
if address :domain :is "from" "bank.example" { fileinto "Finance"; }
if address :detail "to" "shop" { fileinto "Shopping"; }
if header :contains "subject" ["invoice", "receipt", "order confirmation"] { fileinto :copy "Receipts"; }
if header :contains "subject" "[JIRA]" { fileinto "Work/Jira"; }
if address :is "from" "noreply@github.com" { fileinto "Work/GitHub"; }
if header :is "x-mailer" "BulkMailer 3" { discard; stop; }
if exists "x-spam-flag" { fileinto "Junk"; stop; }
if header :contains "received" "relay.bad.example" { fileinto "Junk"; stop; }
if envelope :domain :is "from" "newsletter.example" { fileinto "News"; }
if header :matches "subject" "*weekly digest*" { fileinto "News"; }
if address :all :contains ["to", "cc"] "team@example.com" { fileinto "Team"; }
if size :over 5M { fileinto "Large"; }
if header :contains "subject" "urgent" { addflag "\\Flagged"; }
if anyof (header :contains "from" "mum", header :contains "from" "dad") { fileinto "Family"; }
if header :is "precedence" "bulk" { fileinto "Bulk"; }
vacation :days 7 :subject "Away" :addresses ["me@example.net"] "I am away until Monday.";
`

// benchMessage is a typical 10 KB message: a 20-field header, a text
// and an HTML part.
func benchMessage() string {
	var b strings.Builder
	b.WriteString("Return-Path: <alice@example.org>\r\n")
	for i := 0; i < 4; i++ {
		b.WriteString("Received: from mx" + string(rune('a'+i)) + ".example.org (mx.example.org [192.0.2.1]) by mail.example.net with ESMTPS; Fri, 15 Mar 2024 09:00:00 +0000\r\n")
	}
	b.WriteString("DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; h=from:to:subject; bh=abcdefghijklmnopqrstuvwxyz0123456789=; b=" + strings.Repeat("x", 300) + "\r\n")
	b.WriteString("Authentication-Results: mail.example.net; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org\r\n")
	b.WriteString("From: Alice Example <alice@example.org>\r\nTo: Me <me@example.net>\r\nCc: bob@example.org, carol@example.org\r\n")
	b.WriteString("Subject: Re: the plan for next week\r\nDate: Fri, 15 Mar 2024 09:59:00 +0100\r\nMessage-ID: <abc123@example.org>\r\n")
	b.WriteString("In-Reply-To: <xyz@example.net>\r\nReferences: <xyz@example.net>\r\nMIME-Version: 1.0\r\nX-Mailer: Thunderbird\r\n")
	b.WriteString("Content-Type: multipart/alternative; boundary=\"bb\"\r\n\r\n--bb\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < 6000 {
		b.WriteString("Let us meet on Tuesday to go through the plan, and bring the numbers.\r\n")
	}
	b.WriteString("--bb\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>")
	for b.Len() < 10200 {
		b.WriteString("<p>Let us meet on Tuesday to go through the plan.</p>\r\n")
	}
	b.WriteString("</body></html>\r\n--bb--\r\n")
	return b.String()
}
