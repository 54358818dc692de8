package sieve

import (
	"context"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
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

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// benchScript is a typical user script of 20 rules: lists, senders,
// subjects, a flag, a vacation.
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

// BenchmarkRun is one delivery: the header read and the script run (the
// script is compiled once, as a caller caches it).
func BenchmarkRun(b *testing.B) {
	s, err := Compile([]byte(benchScript), Options{})
	if err != nil {
		b.Fatal(err)
	}
	msg := benchMessage()
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	start := cpuTime()
	defer reportCPU(b, start)
	for b.Loop() {
		h, err := ReadHeader(strings.NewReader(msg))
		if err != nil {
			b.Fatal(err)
		}
		env := Env{
			Header:   h,
			Content:  io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))),
			Envelope: Envelope{From: "alice@example.org", To: "me@example.net"},
			Now:      testNow,
		}
		res, err := s.Run(ctx, env)
		if err != nil || res.Vacation == nil {
			b.Fatal(err, res)
		}
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	start := cpuTime()
	defer reportCPU(b, start)
	for b.Loop() {
		if _, err := Compile([]byte(benchScript), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
