package sieve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCompileLimits(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		opts         Options
		want         string
	}{
		{name: "script size", script: strings.Repeat("keep;\n", 100), opts: Options{MaxScriptBytes: 100}, want: "larger than 100 bytes"},
		{name: "nesting of blocks", script: strings.Repeat("if true {", 40) + strings.Repeat("}", 40), want: "nesting deeper than 32"},
		{name: "nesting of tests", script: "if " + strings.Repeat("not ", 40) + "true { keep; }", want: "nesting deeper than 32"},
		{name: "regex size", script: `require "regex"; if header :regex "a" "` + strings.Repeat("a", 2000) + `" { keep; }`, want: "longer than 1024 bytes"},
		{name: "regex complexity", script: `require "regex"; if header :regex "a" "(a{1,100}){1,100}" { keep; }`, want: "bad regular expression"},
		{name: "regex program", script: `require "regex"; if header :regex "a" "[a-z]{50}[0-9]{50}x{100}" { keep; }`, opts: Options{MaxRegexProg: 100}, want: "too complex"},
		{name: "number overflow", script: `if size :over 99999999999999999999 { keep; }`, want: "number too large"},
		{name: "number overflow with unit", script: `if size :over 9999999999999G { keep; }`, want: "number too large"},
		{name: "disabled extension", script: `require "vacation";`, opts: Options{Disabled: []string{"vacation"}}, want: "unsupported extension"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]byte(tc.script), tc.opts)
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a *Error with %q", err, tc.want)
			}
		})
	}
}

func TestRunLimits(t *testing.T) {
	var fileintos strings.Builder
	fileintos.WriteString(`require "fileinto";`)
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&fileintos, "fileinto \"box%d\";\n", i)
	}
	deep := fakeScripts{}
	for i := 0; i < 10; i++ {
		deep[fmt.Sprintf("personal/s%d", i)] = fmt.Sprintf(`require "include"; include "s%d";`, i+1)
	}
	deep["personal/s10"] = `keep;`
	for _, tc := range []struct {
		name, script string
		opts         Options
		env          Env
		want         error
	}{
		{name: "actions", script: fileintos.String(), want: ErrTooManyActions},
		{name: "redirects", script: `redirect "a@x.example"; redirect "b@x.example"; redirect "c@x.example"; redirect "d@x.example"; redirect "e@x.example";`, want: ErrTooManyRedirects},
		{name: "include depth", script: `require "include"; include "s0";`, env: Env{Scripts: deep}, want: ErrIncludeDepth},
		{name: "steps", script: strings.Repeat(`if header :contains ["subject", "from", "to"] ["x", "y", "z"] { keep; }`+"\n", 200), opts: Options{MaxSteps: 500}, want: ErrSteps},
		{name: "wildcard backtracking", script: `require "body"; if body :raw :matches "*` + strings.Repeat("a", 2000) + `b" { keep; }`, env: Env{}, want: ErrSteps},
		{name: "regex from a variable", script: `require ["regex", "variables"]; set "r" "` + strings.Repeat("a", 2000) + `"; if header :regex "subject" "${r}" { keep; }`, want: regexErr("")},
		{name: "bad redirect address at run time", script: `require "variables"; set "a" "not an address"; redirect "${a}";`, want: ErrInvalid},
		{name: "context", script: strings.Repeat("keep;\n", 5000), want: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile([]byte(tc.script), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.want == context.Canceled {
				cancel()
			}
			defer cancel()
			msg := msgPlain
			if strings.Contains(tc.name, "backtracking") {
				msg = "Subject: x\r\n\r\n" + strings.Repeat("a", 100000)
			}
			res, err := s.Run(ctx, testEnv(t, msg, tc.env))
			var re regexErr
			switch {
			case errors.As(tc.want, &re):
				if !errors.As(err, &re) {
					t.Fatalf("err = %v, want a regex error", err)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !res.Failed || !res.ImplicitKeep || len(res.Actions) != 0 {
				t.Fatalf("result %+v, want the failed result", res)
			}
		})
	}
}

// The work budget counts steps, not time: the same run always spends
// the same.
func TestStepsDeterministic(t *testing.T) {
	s, err := Compile([]byte(strings.Repeat(`if header :matches "subject" "*present*" { keep; }`+"\n", 50)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	steps := func() int64 {
		r := &run{ctx: context.Background(), env: &Env{}, opts: &s.opts, implicitKeep: true, globals: map[string]string{}}
		e := testEnv(t, msgPlain, Env{})
		r.env = &e
		r.loadHeader()
		if err := r.exec(s, ""); err != nil {
			t.Fatal(err)
		}
		return r.steps
	}
	a, b := steps(), steps()
	if a != b || a == 0 {
		t.Fatalf("steps %d then %d", a, b)
	}
}

func TestVariableTruncated(t *testing.T) {
	s, err := Compile([]byte(`require ["variables", "fileinto"]; set "v" "`+strings.Repeat("é", 3000)+`"; set :length "n" "${v}"; fileinto "${n}";`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background(), testEnv(t, msgPlain, Env{}))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Actions[0].Mailbox; got != "2048" {
		t.Fatalf("length of the truncated variable = %s, want 2048 characters (4096 bytes)", got)
	}
}

func TestDuplicateMarks(t *testing.T) {
	s, err := Compile([]byte(`require "duplicate"; if duplicate :seconds 99999999 :last { keep; } if duplicate { discard; }`), Options{DuplicateMaxPeriod: 3600e9})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Run(context.Background(), testEnv(t, msgPlain, Env{Duplicates: fakeDups{}}))
	if err != nil {
		t.Fatal(err)
	}
	// One id (same handle, same Message-ID): the last test's arguments.
	if len(res.Duplicates) != 1 || res.Duplicates[0].Last || res.Duplicates[0].Period != DefaultDuplicatePeriod {
		t.Fatalf("marks %+v", res.Duplicates)
	}
	if !res.ImplicitKeep {
		t.Fatal("a first delivery is not a duplicate")
	}
}
