package auth

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
)

// SASL is what a protocol needs to run an AUTH exchange; *DB implements
// it.
type SASL interface {
	// Mechanisms lists the mechanisms NewSASLServer accepts.
	Mechanisms() []string
	// NewSASLServer starts an exchange; done is called once, on success,
	// before the server reports completion.
	NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(User)) (sasl.Server, error)
}

// Authenticator is SASL plus the plain logins of IMAP LOGIN and POP3
// USER/PASS; *DB implements it. Authenticate returns ErrBadCredentials or
// ErrThrottled for a refused login.
type Authenticator interface {
	SASL
	Authenticate(ctx context.Context, username, password string, remote netip.Addr) (User, error)
}

// Mechanisms lists the SASL mechanisms NewSASLServer offers, in order of
// preference. Both send the password in the clear: offer them only over TLS
// (or on loopback where a protocol treats that as secure).
func (db *DB) Mechanisms() []string {
	return []string{sasl.Plain, sasl.Login}
}

// maxSASLField bounds a user name or password inside a SASL response.
const maxSASLField = maxPassword

// NewSASLServer returns a server for mech ("PLAIN" or "LOGIN", any case)
// whose final step calls Authenticate with remote, and done(user) once on
// success. Failures are ErrBadCredentials (also for a malformed response),
// ErrThrottled, or an internal error the protocol must not show the client.
// The protocol layer does the base64 framing of challenges and responses.
func (db *DB) NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(User)) (sasl.Server, error) {
	var once sync.Once
	finish := func(username, password string) error {
		u, err := db.Authenticate(ctx, username, password, remote)
		if err != nil {
			return err
		}
		if done != nil {
			once.Do(func() { done(u) })
		}
		return nil
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &plainServer{s: sasl.NewPlainServer(func(identity, username, password string) error {
			// RFC 4616 §2: an authorization identity other than the
			// authentication identity would mean acting as someone else,
			// which we do not offer.
			if identity != "" && identity != username {
				i, err1 := NormalizeAddress(identity)
				u, err2 := NormalizeAddress(username)
				if err1 != nil || err2 != nil || i != u {
					return fmt.Errorf("%w: authorization identity differs from authentication identity", ErrBadCredentials)
				}
			}
			if len(username) > maxSASLField || len(password) > maxSASLField {
				return fmt.Errorf("%w: over-long PLAIN response", ErrBadCredentials)
			}
			return finish(username, password)
		})}, nil
	case sasl.Login:
		return &loginServer{finish: finish}, nil
	}
	return nil, fmt.Errorf("auth: unsupported SASL mechanism %q", mech)
}

// plainServer turns go-sasl's format errors into ErrBadCredentials, so the
// protocol edge has only our sentinels to translate, and refuses anything
// after the one response PLAIN takes.
type plainServer struct {
	s        sasl.Server
	finished bool
}

func (p *plainServer) Next(response []byte) ([]byte, bool, error) {
	if p.finished {
		return nil, false, sasl.ErrUnexpectedClientResponse
	}
	if response != nil {
		p.finished = true
	}
	if len(response) > 2*maxSASLField+maxAddress+2 {
		return nil, true, fmt.Errorf("%w: over-long PLAIN response", ErrBadCredentials)
	}
	ch, done, err := p.s.Next(response)
	if err != nil && err.Error() == "sasl: invalid response" {
		err = fmt.Errorf("%w: malformed PLAIN response", ErrBadCredentials)
	}
	return ch, done, err
}

// loginServer implements the LOGIN mechanism (draft-murchison-sasl-login),
// which go-sasl offers only as a client. Challenges are "Username:" and
// "Password:"; an initial response is taken as the user name, as Outlook
// sends it ("AUTH LOGIN <base64 user>").
type loginServer struct {
	finish   func(username, password string) error
	state    int // 0 start, 1 user name asked, 2 password asked, 3 done
	username string
}

var (
	loginUsername = []byte("Username:")
	loginPassword = []byte("Password:")
)

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.state {
	case 0:
		if len(response) == 0 {
			l.state = 1
			return loginUsername, false, nil
		}
		return l.gotUsername(response)
	case 1:
		return l.gotUsername(response)
	case 2:
		l.state = 3
		if len(response) > maxSASLField {
			return nil, true, fmt.Errorf("%w: over-long LOGIN password", ErrBadCredentials)
		}
		return nil, true, l.finish(l.username, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

func (l *loginServer) gotUsername(response []byte) ([]byte, bool, error) {
	if len(response) == 0 || len(response) > maxAddress {
		l.state = 3
		return nil, true, fmt.Errorf("%w: empty or over-long LOGIN user name", ErrBadCredentials)
	}
	l.username = string(response)
	l.state = 2
	return loginPassword, false, nil
}
