package managesieve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/server"
	"github.com/posthouse/posthouse/sievestore"
)

// FuzzParseCommand reads commands from arbitrary input until it ends.
// Whatever the input: no panic; what is accepted is well formed (an
// upper-case verb, at most maxArgs arguments within their limits); every
// command read consumes input, and no more is discarded than allowed.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"CAPABILITY\r\n", "noop \"tag\"\r\n", "PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n",
		"PUTSCRIPT {1}\r\na {5}\r\nkeep;\r\nLOGOUT\r\n", "HAVESPACE \"x\" 123\r\n",
		"NOOP \"a\\\"b\\\\c\"\r\n", "NOOP \"abc\r\n", "NOOP {99999999999+}\r\n",
		"\x00\xff\r\n", "NOOP (x) {3}\r\nabc\r\nNOOP\n", "AUTHENTICATE \"PLAIN\" {4+}\r\nAAAA\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		r := &reader{br: bufio.NewReaderSize(bytes.NewReader(input), 1024), maxScript: 300, maxDiscard: 2000}
		consumed := int64(0)
		for i := 0; i < len(input)+1; i++ {
			cmd, err := r.readCommand()
			consumed += r.size
			if r.discarded > r.maxDiscard {
				t.Fatalf("discarded %d > %d", r.discarded, r.maxDiscard)
			}
			var perr *parseError
			switch {
			case err == nil:
				if cmd.name == "" || strings.ToUpper(cmd.name) != cmd.name || len(cmd.name) > maxCommandName {
					t.Fatalf("bad verb %q", cmd.name)
				}
				if len(cmd.args) > maxArgs {
					t.Fatalf("%d args", len(cmd.args))
				}
				for j, a := range cmd.args {
					limit := maxString
					if scriptArg(cmd.name, j) {
						limit = r.maxScript
					}
					if len(a.val) > max(limit, maxLine) {
						t.Fatalf("arg %d of %d octets", j, len(a.val))
					}
				}
			case errors.As(err, &perr):
			default:
				if consumed > int64(len(input)) {
					t.Fatalf("consumed %d of %d", consumed, len(input))
				}
				return // EOF, errFlood: the session ends
			}
			if r.size == 0 {
				t.Fatal("command read nothing")
			}
		}
		t.Fatal("more commands than input octets")
	})
}

// pipeConn is a net.Conn that reads a fixed input and records output; its
// deadlines do nothing. It lets a fuzz iteration run a whole session.
type pipeConn struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *pipeConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *pipeConn) Close() error                { return nil }
func (c *pipeConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4190} }
func (c *pipeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// fastAuth is a SASL PLAIN and LOGIN server for testUser that costs no
// password hash: with auth.DB's argon2id every mutated password would cost
// a hash, and the fuzzer would run a few sessions a second.
type fastAuth struct{}

func (fastAuth) Mechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (fastAuth) NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != testUser || pass != testPass {
			return auth.ErrBadCredentials
		}
		done(auth.User{ID: 1, Address: user})
		return nil
	}
	switch mech {
	case sasl.Plain:
		return fastPlain{sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) })}, nil
	case sasl.Login:
		return &fastLogin{check: check}, nil
	}
	return nil, errors.New("unsupported mechanism")
}

// fastPlain reports a malformed response as bad credentials, as
// auth.DB's PLAIN does.
type fastPlain struct{ sasl.Server }

func (p fastPlain) Next(resp []byte) ([]byte, bool, error) {
	c, done, err := p.Server.Next(resp)
	if err != nil && !errors.Is(err, auth.ErrBadCredentials) {
		err = auth.ErrBadCredentials
	}
	return c, done, err
}

// fastLogin is the LOGIN mechanism: user name, then password.
type fastLogin struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *fastLogin) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch {
	case l.step == 1 && len(resp) == 0:
		l.step = 0
		return []byte("Username:"), false, nil
	case l.step == 1:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	case l.step == 2:
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// FuzzSession runs a whole session on client input against the real
// script store (and a fast stand-in for auth's SASL). Whatever the input: no panic, the output starts
// with the greeting, every response line ends in CRLF, and no internal
// error reaches the wire.
func FuzzSession(f *testing.F) {
	login := "AUTHENTICATE \"PLAIN\" \"" + plainIR(testUser, testPass) + "\"\r\n"
	for _, s := range []string{
		login + "PUTSCRIPT \"a\" {5+}\r\nkeep;\r\nSETACTIVE \"a\"\r\nLISTSCRIPTS\r\nGETSCRIPT \"a\"\r\nDELETESCRIPT \"a\"\r\nLOGOUT\r\n",
		login + "RENAMESCRIPT \"a\" \"b\"\r\nHAVESPACE \"x\" 10\r\nCHECKSCRIPT \"stop;\"\r\nUNAUTHENTICATE\r\nLISTSCRIPTS\r\n",
		"AUTHENTICATE \"LOGIN\"\r\n\"" + b64(testUser) + "\"\r\n\"*\"\r\nCAPABILITY\r\nNOOP \"t\"\r\n",
		"STARTTLS\r\nNOOP\r\n",
		"NOOP {3}\r\nabc\r\nPUTSCRIPT \"x\" {99999}\r\n",
		login + "PUTSCRIPT \"b\" {12+}\r\nif true {}\r\n\r\nSETACTIVE \"\"\r\n",
	} {
		f.Add([]byte(s))
	}
	_, st := openTestDBs(f, f.TempDir(), sievestore.Options{MaxScripts: 3, MaxScriptBytes: 1024})
	serverTLS := certstest.Default().ServerConfig(certstest.Loopback...)
	srv, err := New(Options{Store: st, Auth: fastAuth{}, TLS: serverTLS, LoopbackIsSecure: true, Hostname: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		conn := &pipeConn{in: bytes.NewReader(input)}
		sess := newSession(context.Background(), srv, conn, "fuzz", server.RemoteAddr(conn))
		sess.run()
		out := conn.out.Bytes()
		if !bytes.HasPrefix(out, []byte(`"IMPLEMENTATION" "Posthouse"`)) {
			t.Fatalf("output does not start with the greeting: %q", out)
		}
		if !bytes.HasSuffix(out, []byte("\r\n")) && !bytes.Contains(bytes.ToUpper(input), []byte("STARTTLS")) {
			t.Fatalf("output does not end in CRLF: %q", out)
		}
		if bytes.Contains(out, []byte("internal server error")) {
			t.Fatalf("internal error on input %q:\n%s", input, out)
		}
	})
}
