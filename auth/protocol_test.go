package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpSession is the smallest go-smtp session that offers our SASL servers,
// translating our sentinels the way a protocol edge does.
type smtpSession struct {
	db     *DB
	remote net.Conn
	mu     *sync.Mutex
	users  *[]string
}

func (s *smtpSession) AuthMechanisms() []string { return s.db.Mechanisms() }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	srv, err := s.db.NewSASLServer(context.Background(), mech, netip.MustParseAddrPort(s.remote.RemoteAddr().String()).Addr(), func(u User) {
		s.mu.Lock()
		*s.users = append(*s.users, u.Address)
		s.mu.Unlock()
	})
	if err != nil {
		return nil, &smtp.SMTPError{Code: 504, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Unrecognized authentication type"}
	}
	return translated{srv}, nil
}

type translated struct{ sasl.Server }

func (t translated) Next(r []byte) ([]byte, bool, error) {
	ch, done, err := t.Server.Next(r)
	switch {
	case err == nil:
	case errors.Is(err, ErrBadCredentials):
		err = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
	case errors.Is(err, ErrThrottled):
		err = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failures, try later"}
	default:
		err = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure"}
	}
	return ch, done, err
}

func (s *smtpSession) Reset()                                      {}
func (s *smtpSession) Logout() error                               { return nil }
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error { return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error   { return nil }
func (s *smtpSession) Data(r io.Reader) error                      { _, err := io.Copy(io.Discard, r); return err }

// TestSASLOverSMTP drives both mechanisms through go-smtp on loopback: the
// base64 framing, "=" for an empty initial response, "*" to cancel, and
// undecodable base64, which the protocol layer answers before we see it.
func TestSASLOverSMTP(t *testing.T) {
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	var mu sync.Mutex
	var users []string
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &smtpSession{db: env.db, remote: c.Conn(), mu: &mu, users: &users}, nil
	}))
	srv.Domain = "mx.example.com"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		dialog []string // client line, then the expected reply prefix, …
		user   string
	}{
		{"PLAIN with initial response", []string{"AUTH PLAIN " + b64("\x00bob@example.com\x00pw-bob"), "235 "}, "bob@example.com"},
		{"PLAIN after empty challenge", []string{"AUTH PLAIN", "334 ", b64("\x00BOB@example.com\x00pw-bob"), "235 "}, "bob@example.com"},
		{"PLAIN wrong password", []string{"AUTH PLAIN " + b64("\x00bob@example.com\x00nope"), "535 5.7.8"}, ""},
		{"PLAIN garbage", []string{"AUTH PLAIN " + b64("garbage"), "535 5.7.8"}, ""},
		{"PLAIN bad base64", []string{"AUTH PLAIN %%%", "454 4.7.0"}, ""},
		{"LOGIN", []string{"AUTH LOGIN", "334 VXNlcm5hbWU6", b64("bob@example.com"), "334 UGFzc3dvcmQ6", b64("pw-bob"), "235 "}, "bob@example.com"},
		{"LOGIN empty initial response", []string{"AUTH LOGIN =", "334 VXNlcm5hbWU6", b64("bob@example.com"), "334 UGFzc3dvcmQ6", b64("pw-bob"), "235 "}, "bob@example.com"},
		{"LOGIN with user name (Outlook)", []string{"AUTH LOGIN " + b64("bob@example.com"), "334 UGFzc3dvcmQ6", b64("pw-bob"), "235 "}, "bob@example.com"},
		{"LOGIN wrong password", []string{"AUTH LOGIN " + b64("bob@example.com"), "334 UGFzc3dvcmQ6", b64("nope"), "535 5.7.8"}, ""},
		{"LOGIN cancelled", []string{"AUTH LOGIN", "334 VXNlcm5hbWU6", "*", "501 "}, ""},
		{"LOGIN bad base64", []string{"AUTH LOGIN", "334 VXNlcm5hbWU6", "!!!", "454 4.7.0"}, ""},
		{"unknown mechanism", []string{"AUTH CRAM-MD5", "504 "}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			users = nil
			mu.Unlock()
			c, err := textproto.Dial("tcp", ln.Addr().String())
			must(t, err)
			defer c.Close()
			if _, _, err := c.ReadResponse(220); err != nil {
				t.Fatal(err)
			}
			c.PrintfLine("EHLO client.example")
			_, msg, err := c.ReadResponse(250)
			if err != nil || !strings.Contains(msg, "AUTH PLAIN LOGIN") {
				t.Fatalf("EHLO: %q, %v", msg, err)
			}
			for i := 0; i < len(tc.dialog); i += 2 {
				c.PrintfLine("%s", tc.dialog[i])
				line, err := c.ReadLine()
				if err != nil || !strings.HasPrefix(line, tc.dialog[i+1]) {
					t.Fatalf("after %q: %q, %v; want %q…", tc.dialog[i], line, err, tc.dialog[i+1])
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.user == "" && len(users) != 0 || tc.user != "" && (len(users) != 1 || users[0] != tc.user) {
				t.Fatalf("done reported %v, want %q", users, tc.user)
			}
		})
	}
}
