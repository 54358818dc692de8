package auth

import (
	"bytes"
	"context"
	"log/slog"
	"net/mail"
	"strings"
	"testing"
)

// FuzzParseAddress checks NormalizeAddress: no panic, and anything accepted
// is canonical (idempotent, lower case, printable ASCII, within the length
// limits) and a valid RFC 5322 addr-spec for net/mail.
func FuzzParseAddress(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		a, err := NormalizeAddress(s)
		if err != nil {
			if a != "" {
				t.Fatalf("error %v with result %q", err, a)
			}
			return
		}
		if len(a) > maxAddress || strings.Count(a, "@") != 1 || a[0] == '@' || a[len(a)-1] == '@' {
			t.Fatalf("accepted %q as %q", s, a)
		}
		for i := 0; i < len(a); i++ {
			if c := a[i]; c <= ' ' || c >= 0x7f || c >= 'A' && c <= 'Z' || c == '"' || c == '\\' {
				t.Fatalf("result %q has byte %q", a, c)
			}
		}
		if !strings.EqualFold(a, s) {
			t.Fatalf("result %q is not %q up to case", a, s)
		}
		if b, err := NormalizeAddress(a); err != nil || b != a {
			t.Fatalf("not idempotent: %q → %q → %q, %v", s, a, b, err)
		}
		if m, err := mail.ParseAddress("<" + a + ">"); err != nil || m.Address != a {
			t.Fatalf("net/mail disagrees on %q: %v, %v", a, m, err)
		}
	})
}

// fuzzDB is a database with bob@example.com (password "pw-bob") and no
// throttling, so that every input reaches the password check.
func fuzzDB(f *testing.F) *DB {
	env := newTestDB(f, Options{IPMaxFailures: -1, AccountMaxFailures: -1, Logger: slog.New(slog.DiscardHandler)})
	seed(f, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	return env.db
}

// FuzzSASLPlain feeds one PLAIN response: no panic, and success only for
// bob's exact credentials, reported once through done.
func FuzzSASLPlain(f *testing.F) {
	db := fuzzDB(f)
	f.Fuzz(func(t *testing.T, resp []byte) {
		calls := 0
		var user User
		s, err := db.NewSASLServer(context.Background(), "PLAIN", ipA, func(u User) { calls++; user = u })
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := s.Next(resp)
		if err == nil && done {
			parts := bytes.Split(resp, []byte{0})
			if calls != 1 || user.Address != "bob@example.com" || len(parts) != 3 || string(parts[2]) != "pw-bob" {
				t.Fatalf("accepted %q: calls %d user %+v", resp, calls, user)
			}
			return
		}
		if calls != 0 {
			t.Fatalf("done called for failed %q (%v)", resp, err)
		}
		if _, _, err := s.Next([]byte("\x00bob@example.com\x00pw-bob")); err == nil && len(resp) > 0 {
			t.Fatalf("a second response was accepted after %q", resp)
		}
	})
}

// FuzzSASLLogin feeds a LOGIN exchange of up to three responses (the first
// as an initial response when ir is set) and compares the server with a
// model of the mechanism: the same challenges, the end at the same step,
// success only for bob's credentials with done called once, nothing
// accepted after the end.
func FuzzSASLLogin(f *testing.F) {
	db := fuzzDB(f)
	f.Fuzz(func(t *testing.T, ir bool, r1, r2, r3 []byte) {
		calls := 0
		s, err := db.NewSASLServer(context.Background(), "LOGIN", ipA, func(User) { calls++ })
		if err != nil {
			t.Fatal(err)
		}
		first := r1
		if !ir {
			first = nil
		}
		var username []byte
		state := 0 // model: 0 start, 1 user name asked, 2 password asked
		for i, r := range [][]byte{first, r2, r3} {
			var wantCh string
			wantEnd, wantOK := false, false
			switch {
			case state == 0 && len(r) == 0:
				wantCh, state = "Username:", 1
			case state < 2 && len(r) > maxAddress, state == 1 && len(r) == 0:
				wantEnd = true
			case state < 2:
				wantCh, state, username = "Password:", 2, r
			default:
				wantEnd = true
				n, err := NormalizeAddress(string(username))
				wantOK = err == nil && n == "bob@example.com" && string(r) == "pw-bob"
			}
			ch, done, err := s.Next(r)
			if done != wantEnd || (err == nil) != (!wantEnd || wantOK) || !wantEnd && string(ch) != wantCh {
				t.Fatalf("step %d Next(%q) = %q, %v, %v; model: challenge %q end %v ok %v", i, r, ch, done, err, wantCh, wantEnd, wantOK)
			}
			if wantEnd {
				if want := map[bool]int{true: 1, false: 0}[wantOK]; calls != want {
					t.Fatalf("done called %d times, want %d", calls, want)
				}
				if _, _, err := s.Next([]byte("x")); err == nil {
					t.Fatal("a response after the end was accepted")
				}
				return
			}
		}
		if calls != 0 {
			t.Fatal("done called before the exchange ended")
		}
	})
}

// FuzzParseSecret checks the app password and recovery code parser:
// no panic, and what it accepts is canonical (the alphabet only, the full
// length, idempotent) and equal to the input without separators, up to
// case.
func FuzzParseSecret(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		for _, format := range []secretFormat{appPasswordFormat, recoveryCodeFormat} {
			canon, ok := format.parse(s)
			if !ok {
				if canon != "" {
					t.Fatalf("refused %q with result %q", s, canon)
				}
				continue
			}
			if len(canon) != format.length() {
				t.Fatalf("%q → %q: length %d", s, canon, len(canon))
			}
			for i := 0; i < len(canon); i++ {
				if !strings.ContainsRune(format.alphabet, rune(canon[i])) {
					t.Fatalf("%q → %q: byte %q not in the alphabet", s, canon, canon[i])
				}
			}
			if again, ok := format.parse(canon); !ok || again != canon {
				t.Fatalf("not idempotent: %q → %q → %q", s, canon, again)
			}
			if !strings.EqualFold(strings.NewReplacer("-", "", " ", "").Replace(s), canon) {
				t.Fatalf("%q → %q is not the input without separators", s, canon)
			}
		}
	})
}

// FuzzParseTOTP checks the TOTP secret and code parsers: no panic, a
// secret accepted decodes to a bounded key that round-trips through base32,
// and a code accepted is six digits.
func FuzzParseTOTP(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if key, err := parseTOTPSecret(s); err == nil {
			if len(key) < minTOTPSecret || len(key) > maxTOTPSecret {
				t.Fatalf("%q: key of %d bytes", s, len(key))
			}
			if k2, err := parseTOTPSecret(totpBase32.EncodeToString(key)); err != nil || !bytes.Equal(k2, key) {
				t.Fatalf("%q: key does not round-trip: %v", s, err)
			}
		}
		if c, ok := parseTOTPCode(s); ok {
			if len(c) != totpDigits || strings.Trim(c, "0123456789") != "" {
				t.Fatalf("%q → code %q", s, c)
			}
		}
	})
}
