package imapd

import (
	"strings"
	"testing"

	"github.com/posthouse/posthouse/internal/forkcheck"
)

// goIMAPFork is the go-imap fork in third_party/go-imap: upstream plus the
// patch series in third_party/go-imap/patches (see its POSTHOUSE-README.md).
var goIMAPFork = forkcheck.Fork{Dir: "../third_party/go-imap", GoMod: "../go.mod"}

// TestGoIMAPPatchSeries: the fork is upstream plus its series, byte for
// byte, each patch with its reason and test (forkcheck.CheckSeries).
func TestGoIMAPPatchSeries(t *testing.T) {
	forkcheck.CheckSeries(t, goIMAPFork)
}

// TestGoIMAPForkVetAndTests runs go vet and the fork's own tests (the
// imapserver tests cover several patches, and imapclient's tests talk to the
// patched server).
func TestGoIMAPForkVetAndTests(t *testing.T) {
	m := goIMAPFork.Module(t)
	forkcheck.VetAndTest(t, goIMAPFork, m+"/imapserver", m+"/internal/...")
}

// TestAuthenticateLongResponse: a SASL response longer than the server's
// read buffer gets BAD and its tail is skipped, not read as commands
// (go-imap patch 0017).
func TestAuthenticateLongResponse(t *testing.T) {
	ts := newTestServer(t)
	sc := dialScript(t, ts.addr, nil)
	lines, closed := sc.run("A1", []string{"A1 AUTHENTICATE PLAIN\r\n", strings.Repeat("QUFB", 5000) + "\r\n"})
	if closed || !strings.HasPrefix(lines[len(lines)-1], "A1 BAD") {
		t.Fatalf("long SASL response: %q (closed %v)", lines, closed)
	}
	lines, closed = sc.run("A2", []string{"A2 NOOP\r\n"})
	if closed || len(lines) != 1 || !strings.HasPrefix(lines[0], "A2 OK") {
		t.Errorf("NOOP afterwards: %q (closed %v)", lines, closed)
	}
}
