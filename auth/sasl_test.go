package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/emersion/go-sasl"
)

// exchange is one step: the client response (nil: none) and what the server
// must answer.
type exchange struct {
	resp      []byte
	challenge string
	done      bool
	err       error
}

func runSASL(t *testing.T, db *DB, mech string, steps []exchange) (doneCalls int, user User) {
	t.Helper()
	s, err := db.NewSASLServer(context.Background(), mech, ipA, func(u User) {
		doneCalls++
		user = u
	})
	if err != nil {
		t.Fatalf("NewSASLServer(%s): %v", mech, err)
	}
	for i, st := range steps {
		ch, done, err := s.Next(st.resp)
		if !errors.Is(err, st.err) || done != st.done || string(ch) != st.challenge {
			t.Fatalf("step %d: Next(%q) = %q, %v, %v; want %q, %v, %v", i, st.resp, ch, done, err, st.challenge, st.done, st.err)
		}
	}
	return doneCalls, user
}

func TestSASLPlain(t *testing.T) {
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	tests := []struct {
		name  string
		steps []exchange
		user  string
	}{
		{"initial response", []exchange{{resp: []byte("\x00bob@example.com\x00pw-bob"), done: true}}, "bob@example.com"},
		{"empty challenge first", []exchange{{resp: nil, challenge: ""}, {resp: []byte("\x00bob@example.com\x00pw-bob"), done: true}}, "bob@example.com"},
		{"authzid equal to authcid", []exchange{{resp: []byte("bob@example.com\x00bob@example.com\x00pw-bob"), done: true}}, "bob@example.com"},
		{"authzid equal in other case", []exchange{{resp: []byte("Bob@Example.com\x00bob@example.com\x00pw-bob"), done: true}}, "bob@example.com"},
		{"authzid differs", []exchange{{resp: []byte("carol@example.com\x00bob@example.com\x00pw-bob"), done: true, err: ErrBadCredentials}}, ""},
		{"wrong password", []exchange{{resp: []byte("\x00bob@example.com\x00nope"), done: true, err: ErrBadCredentials}}, ""},
		{"unknown user", []exchange{{resp: []byte("\x00eve@example.com\x00pw-bob"), done: true, err: ErrBadCredentials}}, ""},
		{"too few fields", []exchange{{resp: []byte("bob@example.com\x00pw-bob"), err: ErrBadCredentials}}, ""},
		{"too many fields", []exchange{{resp: []byte("\x00bob@example.com\x00pw-bob\x00x"), err: ErrBadCredentials}}, ""},
		{"empty response", []exchange{{resp: []byte{}, err: ErrBadCredentials}}, ""},
		{"garbage", []exchange{{resp: []byte("\xff\xfe\x00\x01"), err: ErrBadCredentials}}, ""},
		{"response after done", []exchange{{resp: []byte("\x00bob@example.com\x00pw-bob"), done: true}, {resp: []byte("x"), err: sasl.ErrUnexpectedClientResponse}}, "bob@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls, u := runSASL(t, env.db, "PLAIN", tc.steps)
			want := 0
			if tc.user != "" {
				want = 1
			}
			if calls != want || u.Address != tc.user {
				t.Fatalf("done called %d times with %+v; want %d with %q", calls, u, want, tc.user)
			}
		})
	}
}

func TestSASLLogin(t *testing.T) {
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	tests := []struct {
		name  string
		steps []exchange
		user  string
	}{
		{"challenges", []exchange{
			{resp: nil, challenge: "Username:"},
			{resp: []byte("bob@example.com"), challenge: "Password:"},
			{resp: []byte("pw-bob"), done: true},
		}, "bob@example.com"},
		{"empty initial response", []exchange{
			{resp: []byte{}, challenge: "Username:"},
			{resp: []byte("BOB@example.com"), challenge: "Password:"},
			{resp: []byte("pw-bob"), done: true},
		}, "bob@example.com"},
		{"initial response with user name (Outlook)", []exchange{
			{resp: []byte("bob@example.com"), challenge: "Password:"},
			{resp: []byte("pw-bob"), done: true},
		}, "bob@example.com"},
		{"wrong password", []exchange{
			{resp: []byte("bob@example.com"), challenge: "Password:"},
			{resp: []byte("nope"), done: true, err: ErrBadCredentials},
		}, ""},
		{"empty password", []exchange{
			{resp: []byte("bob@example.com"), challenge: "Password:"},
			{resp: []byte{}, done: true, err: ErrBadCredentials},
		}, ""},
		{"empty user name", []exchange{
			{resp: nil, challenge: "Username:"},
			{resp: []byte{}, done: true, err: ErrBadCredentials},
		}, ""},
		{"garbage user name", []exchange{
			{resp: []byte("\x00\xff\r\n"), challenge: "Password:"},
			{resp: []byte("pw-bob"), done: true, err: ErrBadCredentials},
		}, ""},
		{"over-long user name", []exchange{
			{resp: make([]byte, maxAddress+1), done: true, err: ErrBadCredentials},
		}, ""},
		{"response after done", []exchange{
			{resp: []byte("bob@example.com"), challenge: "Password:"},
			{resp: []byte("pw-bob"), done: true},
			{resp: []byte("more"), err: sasl.ErrUnexpectedClientResponse},
		}, "bob@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls, u := runSASL(t, env.db, "login", tc.steps)
			want := 0
			if tc.user != "" {
				want = 1
			}
			if calls != want || u.Address != tc.user {
				t.Fatalf("done called %d times with %+v; want %d with %q", calls, u, want, tc.user)
			}
		})
	}
}

// TestSASLWithGoSASLClients drives our servers with go-sasl's own clients.
func TestSASLWithGoSASLClients(t *testing.T) {
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	for _, c := range []sasl.Client{
		sasl.NewPlainClient("", "bob@example.com", "pw-bob"),
		sasl.NewLoginClient("bob@example.com", "pw-bob"),
	} {
		mech, ir, err := c.Start()
		must(t, err)
		var user User
		s, err := env.db.NewSASLServer(context.Background(), mech, ipA, func(u User) { user = u })
		must(t, err)
		resp := ir
		for i := 0; ; i++ {
			ch, done, err := s.Next(resp)
			if err != nil {
				t.Fatalf("%s: server: %v", mech, err)
			}
			if done {
				break
			}
			if i > 3 {
				t.Fatalf("%s: no end", mech)
			}
			if resp, err = c.Next(ch); err != nil {
				t.Fatalf("%s: client: %v", mech, err)
			}
		}
		if user.Address != "bob@example.com" {
			t.Fatalf("%s: done got %+v", mech, user)
		}
	}
}

func TestSASLMechanisms(t *testing.T) {
	env := newTestDB(t, Options{})
	if m := env.db.Mechanisms(); len(m) != 2 || m[0] != "PLAIN" || m[1] != "LOGIN" {
		t.Fatalf("Mechanisms = %v", m)
	}
	for _, mech := range []string{"CRAM-MD5", "SCRAM-SHA-256", "", "XOAUTH2"} {
		if _, err := env.db.NewSASLServer(context.Background(), mech, ipA, nil); err == nil {
			t.Errorf("NewSASLServer(%q) succeeded", mech)
		}
	}
	// A nil done is allowed.
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	s, err := env.db.NewSASLServer(context.Background(), "PLAIN", ipA, nil)
	must(t, err)
	if _, done, err := s.Next([]byte("\x00bob@example.com\x00pw-bob")); !done || err != nil {
		t.Fatalf("nil done: %v %v", done, err)
	}
}
