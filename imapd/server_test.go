package imapd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/certs/certstest"
)

func TestCapabilitiesAndLogin(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	u, _ := rc.cmd("CAPABILITY")
	caps := u[0]
	for _, want := range []string{"IMAP4rev1", "IMAP4rev2", "AUTH=PLAIN", "SASL-IR", "ID", "STARTTLS"} {
		if !strings.Contains(caps, " "+want) {
			t.Errorf("capabilities before login lack %s: %s", want, caps)
		}
	}
	if strings.Contains(caps, "LOGINDISABLED") {
		t.Errorf("loopback is secure but LOGINDISABLED is advertised: %s", caps)
	}
	if _, d := rc.cmd("LOGIN alice@example.org wrong"); !strings.HasPrefix(d, "NO [AUTHENTICATIONFAILED]") {
		t.Errorf("bad password: %s", d)
	}
	if _, d := rc.cmd("LOGIN throttled@example.org x"); !strings.HasPrefix(d, "NO [UNAVAILABLE]") {
		t.Errorf("throttled: %s", d)
	}
	rc.login("alice@example.org", "alicepw")
	u, _ = rc.cmd("CAPABILITY")
	caps = u[0]
	for _, want := range []string{"IDLE", "NAMESPACE", "UIDPLUS", "MOVE", "SPECIAL-USE", "CHILDREN", "ESEARCH",
		"SEARCHRES", "LIST-EXTENDED", "LIST-STATUS", "ENABLE", "UNSELECT", "APPENDLIMIT=1048576", "BINARY", "UNAUTHENTICATE", "LITERAL+", "ID", "CONDSTORE", "QRESYNC",
		"QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "OBJECTID", "COMPRESS=DEFLATE"} {
		if !strings.Contains(caps, " "+want) {
			t.Errorf("capabilities after login lack %s: %s", want, caps)
		}
	}
	for _, bad := range []string{"QUOTASET"} {
		if strings.Contains(caps, bad) {
			t.Errorf("advertises %s, which we do not implement: %s", bad, caps)
		}
	}
	u = rc.mustOK("NAMESPACE")
	if !hasLine(u, `* NAMESPACE (("" "/")) NIL NIL`) {
		t.Errorf("NAMESPACE: %q", u)
	}
	// AUTHENTICATE PLAIN with SASL-IR, after UNAUTHENTICATE.
	rc.mustOK("UNAUTHENTICATE")
	rc.mustOK("AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLm9yZwBib2Jwdw==") // \0bob@example.org\0bobpw
	if _, d := rc.cmd("AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLm9yZwBib2Jwdw=="); !strings.HasPrefix(d, "BAD") {
		t.Errorf("second AUTHENTICATE: %s", d)
	}
}

func TestLoginDisabledWithoutTLS(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.LoopbackIsSecure = false })
	rc := ts.raw(t)
	u, _ := rc.cmd("CAPABILITY")
	if !strings.Contains(u[0], "LOGINDISABLED") || strings.Contains(u[0], "AUTH=") || !strings.Contains(u[0], "STARTTLS") {
		t.Errorf("plaintext capabilities: %s", u[0])
	}
	if _, d := rc.cmd("LOGIN alice@example.org alicepw"); !strings.HasPrefix(d, "NO [PRIVACYREQUIRED]") {
		t.Errorf("LOGIN before STARTTLS: %s", d)
	}
	if _, d := rc.cmd("AUTHENTICATE PLAIN AGJvYkBleGFtcGxlLm9yZwBib2Jwdw=="); !strings.HasPrefix(d, "NO [PRIVACYREQUIRED]") {
		t.Errorf("AUTHENTICATE before STARTTLS: %s", d)
	}

	// go-imap's client with STARTTLS logs in.
	c, err := imapclient.DialStartTLS(ts.addr, &imapclient.Options{TLSConfig: certstest.Default().ClientConfig("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", "alicepw").Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
}

func TestImplicitTLS(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.ImplicitTLS = true; o.LoopbackIsSecure = false })
	c, err := imapclient.DialTLS(ts.addr, &imapclient.Options{TLSConfig: certstest.Default().ClientConfig("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Caps().Has(imap.CapStartTLS) || c.Caps().Has(imap.CapLoginDisabled) {
		t.Errorf("implicit TLS capabilities: %v", c.Caps())
	}
	if err := c.Login("bob@example.org", "bobpw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)

	// Empty lines and garbage get BAD and the connection stays.
	rc.send("\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "* BAD") {
		t.Errorf("empty line: %q", l)
	}
	rc.send("x\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "* BAD") && !strings.HasPrefix(l, "x BAD") {
		t.Errorf("garbage: %q", l)
	}
	// ID before login is answered (Apple Mail, Thunderbird send it early).
	u := rc.mustOK(`ID ("name" "test" "version" "1.0")`)
	if !hasLine(u, `* ID ("name" "Posthouse")`) {
		t.Errorf("ID: %q", u)
	}
	rc.mustOK("ID NIL")
	if _, d := rc.cmd("SELECT INBOX"); !strings.HasPrefix(d, "BAD") {
		t.Errorf("SELECT before login: %s", d)
	}
	rc.login("alice@example.org", "alicepw")
	if _, d := rc.cmd("FETCH 1 FLAGS"); !strings.HasPrefix(d, "BAD") {
		t.Errorf("FETCH without a mailbox: %s", d)
	}
	rc.mustOK("SELECT INBOX")
	for _, line := range []string{
		"FETCH", "FETCH 1:* (FLAGS", "FETCH x FLAGS", "STORE 1 +FLAGS", "UID SEARCH FOO",
		"SEARCH OR", "LIST", `LIST "" "foo`, "CREATE", "STATUS INBOX (FOO)", "COPY 1",
	} {
		if _, d := rc.cmd("%s", line); !strings.HasPrefix(d, "BAD") {
			t.Errorf("%q: %s", line, d)
		}
	}
	// An oversized APPEND literal is refused before the client sends it.
	rc.send("A1 APPEND INBOX {2000000}\r\n")
	if l := rc.line(); !strings.HasPrefix(l, "A1 NO [TOOBIG]") {
		t.Errorf("oversized APPEND: %q", l)
	}
	rc.mustOK("NOOP")
	// A large literal outside APPEND is refused too.
	rc.send("A2 CREATE {10000}\r\n")
	if l := rc.line(); !strings.Contains(l, "NO [TOOBIG]") && !strings.Contains(l, "BAD") {
		t.Errorf("big literal in CREATE: %q", l)
	}
	rc.mustOK("NOOP")
	// Still alive, and out-of-state commands are BAD.
	if _, d := rc.cmd("LOGIN a b"); !strings.HasPrefix(d, "BAD") {
		t.Errorf("LOGIN when logged in: %s", d)
	}
	rc.mustOK("LOGOUT")
}

func TestTooManyBadLines(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	var last string
	for i := 0; i < maxBadLinesForTest+1; i++ {
		rc.send("\r\n")
		last = rc.line()
		if strings.HasPrefix(last, "* BYE") {
			return
		}
	}
	t.Fatalf("no BYE after %d bad lines, last %q", maxBadLinesForTest+1, last)
}

const maxBadLinesForTest = 21

func TestUnknownCommandBeforeLoginCloses(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.send("GET / HTTP/1.1\r\n")
	l := rc.line()
	if !strings.Contains(l, "BAD") {
		t.Errorf("reply: %q", l)
	}
	if l := rc.line(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("want BYE, got %q", l)
	}
}

func TestConnectionLimit(t *testing.T) {
	lim := limit.NewConns(1, 0)
	ts := newTestServer(t, func(o *Options) { o.Conns = lim })
	rc := ts.raw(t)
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 200)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "* BYE [UNAVAILABLE]") {
		t.Errorf("second connection: %q", buf[:n])
	}
	rc.mustOK("LOGOUT")
	rc.conn.Close()
	waitFor(t, 2*time.Second, "slot released", func() bool { total, _ := lim.Open(netip.Addr{}); return total == 0 })
	ts.raw(t).mustOK("NOOP")
}

func TestMailboxOperations(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")

	u := rc.mustOK(`LIST "" "*"`)
	for _, want := range []string{
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
		`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
		`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
		`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
		`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
	} {
		if !hasLine(u, want) {
			t.Errorf("LIST lacks %s: %q", want, u)
		}
	}
	// Outlook 2013 reads special-use from LSUB.
	u = rc.mustOK(`LSUB "" "*"`)
	if !hasLine(u, `* LSUB (\HasNoChildren \Sent) "/" "Sent"`) {
		t.Errorf("LSUB lacks special-use: %q", u)
	}
	rc.mustOK(`CREATE Projects/2026/Q1`)
	rc.mustOK(`CREATE "Projects/Ärger"`)
	if _, d := rc.cmd(`CREATE Projects`); !strings.HasPrefix(d, "NO [ALREADYEXISTS]") {
		t.Errorf("CREATE existing: %s", d)
	}
	u = rc.mustOK(`LIST "" "Projects/%%"`)
	if !hasLine(u, `* LIST (\HasChildren) "/" "Projects/2026"`) || !hasLine(u, `"/" "Projects/&AMQ-rger"`) || hasLine(u, "Q1") {
		t.Errorf("LIST %%: %q", u)
	}
	u = rc.mustOK(`LIST "Projects/" "*"`)
	if !hasLine(u, `Projects/2026/Q1`) || hasLine(u, `"/" INBOX`) {
		t.Errorf("LIST with reference: %q", u)
	}
	u = rc.mustOK(`LIST "" ""`)
	if !hasLine(u, `* LIST (\Noselect) "/" ""`) {
		t.Errorf("LIST delimiter: %q", u)
	}
	u = rc.mustOK(`LIST (SPECIAL-USE) "" "*"`)
	if len(u) != 5 {
		t.Errorf("LIST (SPECIAL-USE): %q", u)
	}
	u = rc.mustOK(`LIST "" "%%" RETURN (STATUS (MESSAGES UIDNEXT SIZE))`)
	if !hasLine(u, `* STATUS INBOX (MESSAGES 0 UIDNEXT 1 SIZE 0)`) {
		t.Errorf("LIST-STATUS: %q", u)
	}

	rc.mustOK(`RENAME Projects Work`)
	u = rc.mustOK(`LIST "" "Work*"`)
	if !hasLine(u, `"/" "Work/2026/Q1"`) || !hasLine(u, `"/" "Work/&AMQ-rger"`) {
		t.Errorf("children after RENAME: %q", u)
	}
	if _, d := rc.cmd(`DELETE Work`); !strings.HasPrefix(d, "NO [HASCHILDREN]") {
		t.Errorf("DELETE with children: %s", d)
	}
	rc.mustOK(`DELETE Work/2026/Q1`)
	if _, d := rc.cmd(`DELETE INBOX`); !strings.HasPrefix(d, "NO [CANNOT]") {
		t.Errorf("DELETE INBOX: %s", d)
	}
	if _, d := rc.cmd(`SELECT Nope`); !strings.HasPrefix(d, "NO [NONEXISTENT]") {
		t.Errorf("SELECT missing: %s", d)
	}
	if _, d := rc.cmd(`STATUS Nope (MESSAGES)`); !strings.HasPrefix(d, "NO [NONEXISTENT]") {
		t.Errorf("STATUS missing: %s", d)
	}

	rc.mustOK(`SUBSCRIBE Work`)
	rc.mustOK(`SUBSCRIBE Gone`)
	u = rc.mustOK(`LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN)`)
	if !hasLine(u, `\Subscribed) "/" "Work"`) || !hasLine(u, `(\NonExistent \Subscribed) "/" "Gone"`) {
		t.Errorf("LIST (SUBSCRIBED): %q", u)
	}
	rc.mustOK(`UNSUBSCRIBE Gone`)

	// INBOX in any case.
	u = rc.mustOK(`SELECT inbox`)
	if !hasLine(u, "* 0 EXISTS") || !hasLine(u, "UIDVALIDITY") || !hasLine(u, "UIDNEXT 1") ||
		!hasLine(u, `* FLAGS (\Seen \Answered \Flagged \Deleted \Draft)`) || !hasLine(u, `PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft \*)`) {
		t.Errorf("SELECT: %q", u)
	}
	if !hasLine(u, "* OK [HIGHESTMODSEQ ") {
		t.Errorf("SELECT lacks HIGHESTMODSEQ: %q", u)
	}
	u = rc.mustOK(`STATUS Sent (MESSAGES UNSEEN UIDNEXT UIDVALIDITY DELETED SIZE RECENT APPENDLIMIT)`)
	if !hasLine(u, `* STATUS "Sent" (MESSAGES 0 UIDNEXT 1 UIDVALIDITY`) {
		t.Errorf("STATUS: %q", u)
	}

	// UTF8=ACCEPT clients send raw UTF-8.
	rc.mustOK(`ENABLE UTF8=ACCEPT`)
	rc.mustOK(`CREATE "Größe"`)
	u = rc.mustOK(`LIST "" "Gr*"`)
	if !hasLine(u, `"/" "Größe"`) && !hasLine(u, `"/" Größe`) {
		t.Errorf("UTF-8 LIST: %q", u)
	}
	// CREATE with a special use (CREATE-SPECIAL-USE).
	if _, d := rc.cmd(`CREATE Spam2 (USE (\Flagged))`); !strings.HasPrefix(d, "NO [USEATTR]") {
		t.Errorf("CREATE with unsupported use: %s", d)
	}
	rc.mustOK(`CREATE Old (USE (\Archive))`)
}

// TestRefusedLiteralPlusIsNotExecuted: the bytes of a refused
// non-synchronizing literal are already on their way; they must never be
// read as commands (here: commands that would delete a mailbox).
func TestRefusedLiteralPlusIsNotExecuted(t *testing.T) {
	ts := newTestServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	smuggled := strings.Repeat("X1 DELETE Archive\r\n", 600)
	rc.send(fmt.Sprintf("A1 CREATE {%d+}\r\n%s", len(smuggled), smuggled))
	if l := rc.line(); !strings.HasPrefix(l, "A1 NO [TOOBIG]") {
		t.Errorf("reply: %q", l)
	}
	if l := rc.line(); !strings.HasPrefix(l, "* BYE") {
		t.Errorf("want BYE, got %q", l)
	}
	other := ts.raw(t)
	other.login("alice@example.org", "alicepw")
	other.mustOK("STATUS Archive (MESSAGES)")
}

// TestIMAP4rev2Client: after ENABLE IMAP4rev2, SELECT carries the LIST
// response and SEARCH answers with ESEARCH (RFC 9051 §6.3.2, §6.4.4).
func TestIMAP4rev2Client(t *testing.T) {
	ts := newTestServer(t)
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	u := rc.mustOK("ENABLE IMAP4rev2")
	if !hasLine(u, "* ENABLED IMAP4rev2") {
		t.Fatalf("ENABLE: %q", u)
	}
	u = rc.mustOK("SELECT Inbox")
	if !hasLine(u, `* LIST () "/" INBOX`) || hasLine(u, "RECENT") {
		t.Errorf("IMAP4rev2 SELECT: %q", u)
	}
	u = rc.mustOK("UID SEARCH ALL")
	if !hasLine(u, "* ESEARCH (TAG ") || !hasLine(u, "UID ALL 1") {
		t.Errorf("IMAP4rev2 SEARCH: %q", u)
	}
}

// TestShutdownRacesServe: serve shuts a server down when a later listener
// fails to bind, which may be before, while or after its Serve starts the
// library servers; run under -race, no order may race or hang.
func TestShutdownRacesServe(t *testing.T) {
	store := storeFactory(t)
	defer store.Close()
	for i := range 20 {
		srv, err := New(Options{
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			TLS:    certstest.Default().ServerConfig(certstest.Loopback...),
			Store:  store,
			Auth:   &fakeAuth{users: map[string]string{}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background(), ln) }()
		if i%2 == 0 {
			runtime.Gosched()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("round %d: Shutdown: %v", i, err)
		}
		cancel()
		select {
		case err := <-done:
			if err != ErrServerClosed {
				t.Fatalf("round %d: Serve: %v, want ErrServerClosed", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Serve did not return after Shutdown", i)
		}
		ln.Close()
	}
}
