package imapd

import (
	"bufio"
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/posthouse/posthouse/internal/logbuf"

	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
)

// recordingAuth remembers the remote address each login was checked with.
type recordingAuth struct {
	auth.Authenticator
	mu      sync.Mutex
	remotes []netip.Addr
}

func (r *recordingAuth) record(a netip.Addr) {
	r.mu.Lock()
	r.remotes = append(r.remotes, a)
	r.mu.Unlock()
}

func (r *recordingAuth) last() netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.remotes) == 0 {
		return netip.Addr{}
	}
	return r.remotes[len(r.remotes)-1]
}

func (r *recordingAuth) Authenticate(ctx context.Context, username, password string, remote netip.Addr) (auth.User, error) {
	r.record(remote)
	return r.Authenticator.Authenticate(ctx, username, password, remote)
}

func (r *recordingAuth) NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error) {
	r.record(remote)
	return r.Authenticator.NewSASLServer(ctx, mech, remote, done)
}

// rawFrom dials the server from a chosen loopback source address.
func (ts *testServer) rawFrom(t *testing.T, src string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := rc.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting: %q", g)
	}
	return rc
}

// TestIDOriginatingIP: a webmail's ID field x-originating-ip becomes the
// address auth throttles and the logs show, when it comes from a trusted
// network before login; otherwise it changes nothing.
func TestIDOriginatingIP(t *testing.T) {
	const trusted, untrusted = "127.0.0.2", "127.0.0.3"
	rec := &recordingAuth{}
	logs := &logbuf.Buffer{}
	ts := newTestServer(t, func(o *Options) {
		o.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix(trusted + "/32")}
		rec.Authenticator = o.Auth
		o.Auth = rec
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00alicepw"))
	tests := []struct {
		name, from string
		script     []string // commands before the login, or after it with login first
		loginFirst bool
		sasl       bool
		want       string
	}{
		{name: "trusted", from: trusted, script: []string{`ID ("name" "webmail" "x-originating-ip" "192.0.2.55")`}, want: "192.0.2.55"},
		{name: "trusted, AUTHENTICATE", from: trusted, script: []string{`ID ("X-Originating-IP" "192.0.2.56")`}, sasl: true, want: "192.0.2.56"},
		{name: "trusted, IPv6 in brackets", from: trusted, script: []string{`ID ("x-originating-ip" "[2001:db8::7]")`}, want: "2001:db8::7"},
		{name: "trusted, the last ID counts", from: trusted, script: []string{`ID ("x-originating-ip" "192.0.2.1")`, `ID ("x-originating-ip" "192.0.2.2")`}, want: "192.0.2.2"},
		{name: "trusted, not an address", from: trusted, script: []string{`ID ("x-originating-ip" "unknown")`}, want: trusted},
		{name: "untrusted", from: untrusted, script: []string{`ID ("name" "webmail" "x-originating-ip" "192.0.2.55")`}, want: untrusted},
		{name: "untrusted, AUTHENTICATE", from: untrusted, script: []string{`ID ("x-originating-ip" "192.0.2.55")`}, sasl: true, want: untrusted},
		{name: "trusted, no ID", from: trusted, want: trusted},
		{name: "trusted, after login", from: trusted, loginFirst: true, script: []string{`ID ("x-originating-ip" "192.0.2.99")`}, want: trusted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := ts.rawFrom(t, tc.from)
			login := func() {
				if tc.sasl {
					rc.mustOK("AUTHENTICATE PLAIN %s", plain)
				} else {
					rc.login("alice@example.org", "alicepw")
				}
			}
			if tc.loginFirst {
				login()
			}
			for _, c := range tc.script {
				if u := rc.mustOK("%s", c); !hasLine(u, `* ID ("name" "Posthouse")`) {
					t.Fatalf("%s: %q", c, u)
				}
			}
			if !tc.loginFirst {
				login()
			}
			if got := rec.last(); got != netip.MustParseAddr(tc.want) {
				t.Fatalf("auth saw %v, want %v", got, tc.want)
			}
			if tc.loginFirst {
				if !strings.Contains(logs.String(), "x-originating-ip ignored: already authenticated") {
					t.Fatalf("ID after login not reported:\n%s", logs.String())
				}
				return
			}
			rc.mustOK("LOGOUT")
		})
	}
	// The session's lines name the reported address, and the proxy.
	if !strings.Contains(logs.String(), `remote=192.0.2.55 proxy=127.0.0.2 user=alice@example.org mech=LOGIN`) {
		t.Errorf("login through the proxy not logged with both addresses:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "x-originating-ip ignored: connection not from a trusted network") {
		t.Errorf("untrusted x-originating-ip not reported:\n%s", logs.String())
	}
}
