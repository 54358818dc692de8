package sievefilter

import (
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/sieve"
)

// FuzzResponse: whatever a script gives as subject, :from and reason
// (with or without :mime), the response is a message net/mail reads, with
// CRLF line ends only, To and From as given, and Auto-Submitted.
func FuzzResponse(f *testing.F) {
	f.Add("Auto: hi", "alice@a.test", "I am away.", false)
	f.Add("Grüße\r\nBcc: x@y", "Ä <alice@a.test>", "Content-Type: text/html\n\n<p>x</p>", true)
	f.Add("", "bad", "no header\nhere", true)
	f.Add(strings.Repeat("long ", 100), "alice@a.test", strings.Repeat("x", 2000), false)
	fl := &Filter{opts: Options{Hostname: "mx.a.test"}}
	msg := &message{messageID: "<1@b.test>", references: "<0@b.test>"}
	f.Fuzz(func(t *testing.T, subject, from, reason string, mime bool) {
		vac := &sieve.Vacation{To: "carol@b.test", From: from, Subject: subject, Reason: reason, MIME: mime}
		out := fl.response(vac, msg, time.Unix(0, 0))
		if strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\r") {
			t.Fatalf("bare line break in %q", out)
		}
		m, err := mail.ReadMessage(strings.NewReader(out))
		if err != nil {
			t.Fatalf("unreadable response: %v\n%q", err, out)
		}
		if m.Header.Get("To") != "<carol@b.test>" || m.Header.Get("Auto-Submitted") != "auto-replied (vacation)" || len(m.Header["Bcc"]) > 0 {
			t.Fatalf("header %v", m.Header)
		}
	})
}
