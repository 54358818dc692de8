package sieve

import (
	"context"
	"io"
	"strings"
	"testing"
)

// FuzzCompile compiles any text; what compiles is run over a message.
// Seeds: testdata/fuzz/FuzzCompile (the conformance scripts).
func FuzzCompile(f *testing.F) {
	f.Add([]byte(rfc5228Example))
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Compile(src, Options{MaxSteps: 20000})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("compile error of type %T: %v", err, err)
			}
			return
		}
		env := fuzzEnv(t, msgMIME)
		res, err := s.Run(context.Background(), env)
		if err != nil && (!res.Failed || !res.ImplicitKeep || len(res.Actions) != 0) {
			t.Fatalf("failed run with result %+v", res)
		}
		if len(res.Actions) > DefaultMaxActions {
			t.Fatalf("%d actions", len(res.Actions))
		}
	})
}

// fuzzScripts exercise every test over a fuzzed message.
var fuzzScripts = []string{
	rfc5228Example,
	`require ["body", "fileinto", "variables", "regex", "relational", "comparator-i;ascii-numeric"];
if body :text :matches "*a*b*" { fileinto "${1}"; }
if body :raw :regex "([a-z]+)@([a-z.]+)" { fileinto "${2}"; }
if body :content ["text", "application/octet-stream", ""] :contains "x" { discard; }
if body :content "multipart" :count "gt" :comparator "i;ascii-numeric" "3" { keep; }`,
	`require ["envelope", "subaddress", "date", "index", "relational", "variables", "fileinto", "editheader", "vacation", "duplicate", "spamtestplus", "imap4flags"];
if address :detail :matches ["from", "to", "cc", "bcc", "sender", "reply-to"] "*" { fileinto "${1}"; }
if address :user :count "ge" ["to", "cc"] "2" { addflag "\\Seen"; }
if date :originalzone :matches "date" "iso8601" "*" { addheader "X-D" "${1}"; }
if date :index 2 :last :zone "-1200" :value "gt" "received" "julian" "1" { deleteheader :index 1 "x-d"; }
if header :matches "subject" "*?*" { set :upperfirst "s" "${2}"; }
if duplicate :header "message-id" { discard; }
if spamtest :percent :value "ge" "50" { fileinto "Junk"; }
deleteheader :matches "subject" "*";
vacation :addresses ["me@example.net"] :handle "h" "${s}";`,
}

// FuzzRun runs fixed scripts over any message.
func FuzzRun(f *testing.F) {
	f.Add([]byte(msgPlain), uint8(0))
	f.Add([]byte(msgMIME), uint8(1))
	f.Add([]byte(msgList), uint8(2))
	scripts := make([]*Script, len(fuzzScripts))
	for i, src := range fuzzScripts {
		s, err := Compile([]byte(src), Options{})
		if err != nil {
			f.Fatalf("script %d: %v", i, err)
		}
		scripts[i] = s
	}
	f.Fuzz(func(t *testing.T, msg []byte, which uint8) {
		s := scripts[int(which)%len(scripts)]
		res, err := s.Run(context.Background(), fuzzEnv(t, string(msg)))
		if err != nil && !res.Failed {
			t.Fatal("error without the failed result")
		}
	})
}

func fuzzEnv(t *testing.T, msg string) Env {
	h, _ := ReadHeader(strings.NewReader(msg))
	return Env{
		Header:     h,
		Content:    io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))),
		Envelope:   Envelope{From: "a+b@example.com", To: "me+x@example.net"},
		Now:        testNow,
		Spam:       Spam{Tested: true, Score: 0.5},
		Duplicates: fakeDups{},
	}
}
