package imapd

import (
	"context"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// quotaLimits are the limits a quota test server's store asks for.
type quotaLimits struct{ bytes, messages atomic.Int64 }

// newQuotaServer runs a test server whose store takes alice's quotas from
// the returned limits.
func newQuotaServer(t *testing.T) (*testServer, *quotaLimits) {
	t.Helper()
	q := &quotaLimits{}
	st, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{
		Quota:        func(context.Context, string) (int64, error) { return q.bytes.Load(), nil },
		MessageQuota: func(context.Context, string) (int64, error) { return q.messages.Load(), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(o *Options) { o.Store = st })
	ts.store.Close()
	ts.store = st
	return ts, q
}

// TestQuota: one quota root "" with STORAGE (KiB, rounded up) and MESSAGE,
// the resources without a limit left out, SETQUOTA refused, and APPEND and
// COPY over a quota answered NO [OVERQUOTA] (RFC 9208).
func TestQuota(t *testing.T) {
	ts, q := newQuotaServer(t)
	c := ts.client(t, "alice@example.org", "alicepw", nil)
	caps := c.Caps()
	for _, want := range []imap.Cap{imap.CapQuota, "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} {
		if !caps.Has(want) {
			t.Errorf("capability %s not advertised", want)
		}
	}
	if caps.Has(imap.CapQuotaSet) {
		t.Errorf("QUOTASET advertised; users may not set their quota")
	}

	// Unlimited: no quota root.
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(roots) != 0 {
		t.Errorf("GETQUOTAROOT INBOX without limits = %+v, %v; want no root", roots, err)
	}
	if _, err := c.GetQuota("").Wait(); err == nil {
		t.Errorf("GETQUOTA \"\" without limits succeeded")
	}

	var used int64
	for i := range 2 {
		used += ts.deliver(t, "alice@example.org", "INBOX", testMessage(i)).Size
	}
	q.bytes.Store(4096)
	q.messages.Store(3)
	want := map[imap.QuotaResourceType]imapclient.QuotaResourceData{
		imap.QuotaResourceStorage: {Usage: (used + 1023) / 1024, Limit: 4},
		imap.QuotaResourceMessage: {Usage: 2, Limit: 3},
	}
	check := func(what string, d imapclient.QuotaData) {
		t.Helper()
		if d.Root != "" || len(d.Resources) != len(want) {
			t.Fatalf("%s: %+v, want root \"\" with %+v", what, d, want)
		}
		for k, v := range want {
			if d.Resources[k] != v {
				t.Errorf("%s: %s = %+v, want %+v", what, k, d.Resources[k], v)
			}
		}
	}
	roots, err = c.GetQuotaRoot("INBOX").Wait()
	if err != nil || len(roots) != 1 {
		t.Fatalf("GETQUOTAROOT INBOX = %+v, %v; want one root", roots, err)
	}
	check("GETQUOTAROOT", roots[0])
	d, err := c.GetQuota("").Wait()
	if err != nil || d == nil {
		t.Fatalf("GETQUOTA \"\" = %+v, %v", d, err)
	}
	check("GETQUOTA", *d)

	// Only the limited resource is listed.
	q.bytes.Store(0)
	delete(want, imap.QuotaResourceStorage)
	if d, err = c.GetQuota("").Wait(); err != nil || d == nil {
		t.Fatalf("GETQUOTA with a message limit only: %v", err)
	}
	check("GETQUOTA, messages only", *d)
	q.bytes.Store(4096)

	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	for _, tc := range []struct{ name, cmd, want string }{
		{"unknown root", `GETQUOTA "user.bob"`, "NO [NONEXISTENT]"},
		{"unknown mailbox", `GETQUOTAROOT nosuch`, "NO [NONEXISTENT]"},
		{"setquota", `SETQUOTA "" (STORAGE 100000)`, "NO [NOPERM]"},
		{"setquota syntax", `SETQUOTA "" STORAGE`, "BAD"},
		{"append fills the message quota", "APPEND INBOX {5+}\r\nx\r\n\r\n", "OK"},
		{"append over the message quota", "APPEND INBOX {5+}\r\ny\r\n\r\n", "NO [OVERQUOTA]"},
		{"select", "SELECT INBOX", "OK"},
		{"copy over the message quota", "COPY 1 Archive", "NO [OVERQUOTA]"},
	} {
		if _, done := rc.cmd("%s", tc.cmd); !strings.HasPrefix(done, tc.want) {
			t.Errorf("%s: %q, want %s", tc.name, done, tc.want)
		}
	}
	// The byte quota too.
	q.messages.Store(0)
	q.bytes.Store(used + 5)
	if _, done := rc.cmd("COPY 1 Archive"); !strings.HasPrefix(done, "NO [OVERQUOTA]") {
		t.Errorf("COPY over the byte quota: %q", done)
	}
	u, done := rc.cmd("GETQUOTAROOT INBOX")
	if !strings.HasPrefix(done, "OK") || !hasLine(u, `* QUOTAROOT INBOX ""`) || !hasLine(u, `* QUOTA "" (STORAGE `) {
		t.Errorf("GETQUOTAROOT INBOX: %q %s", u, done)
	}
}

// TestQuotaPythonImaplib: Python's imaplib (the client behind many scripts;
// its getquotaroot is what Thunderbird and Outlook send) reads the root and
// its resources.
func TestQuotaPythonImaplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ts, q := newQuotaServer(t)
	ts.deliver(t, "alice@example.org", "INBOX", testMessage(1))
	q.bytes.Store(10 << 20)
	q.messages.Store(1000)
	host, port, _ := strings.Cut(ts.addr, ":")
	script := `
import imaplib, sys
c = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
c.login("alice@example.org", "alicepw")
typ, data = c.getquotaroot("INBOX")
print(typ, data)
typ, data = c.getquota('""')
print(typ, data)
c.logout()
`
	out, err := exec.Command(python, "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{`OK [[b'INBOX ""'], [b'"" (STORAGE 1 10240 MESSAGE 1 1000)']]`, `OK [b'"" (STORAGE 1 10240 MESSAGE 1 1000)']`} {
		if !strings.Contains(got, want) {
			t.Errorf("imaplib output lacks %s:\n%s", want, got)
		}
	}
}

var _ mailstore.Store = (*maildir.Store)(nil)
