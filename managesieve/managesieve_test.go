package managesieve

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/sieve"
)

const script1 = "require \"fileinto\";\r\nif header :contains \"subject\" \"x\" { fileinto \"X\"; }\r\n"

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name     string
		loopback bool
		sasl     string
	}{
		{"loopback secure", true, "PLAIN LOGIN"},
		{"plaintext not secure", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, withOptions(func(o *Options) {
				o.LoopbackIsSecure = tc.loopback
				o.Sieve.Disabled = []string{"regex"}
			}))
			c := ts.dial(t)
			for _, r := range []response{c.greeting, c.ok("CAPABILITY")} {
				m := caps(r)
				want := map[string]string{
					"IMPLEMENTATION": "Posthouse", "SASL": tc.sasl, "STARTTLS": "",
					"MAXREDIRECTS": "4", "VERSION": "1.0", "UNAUTHENTICATE": "",
				}
				for k, v := range want {
					if got, ok := m[k]; !ok || got != v {
						t.Errorf("capability %s = %q (present %v), want %q; all %q", k, got, ok, v, r.data)
					}
				}
				exts := strings.Fields(m["SIEVE"])
				if slices.Contains(exts, "regex") || !slices.Contains(exts, "fileinto") || len(exts) != len(sieve.Extensions)-1 {
					t.Errorf("SIEVE %q", exts)
				}
				for _, absent := range []string{"NOTIFY", "OWNER"} {
					if _, ok := m[absent]; ok {
						t.Errorf("%s advertised: %q", absent, r.data)
					}
				}
			}
			if !tc.loopback {
				c.want(`AUTHENTICATE "PLAIN" "`+plainIR(testUser, testPass)+`"`, "NO (ENCRYPT-NEEDED)")
				m := caps(c.startTLS(ts.tls))
				if m["SASL"] != "PLAIN LOGIN" {
					t.Errorf("SASL after STARTTLS %q", m["SASL"])
				}
				if _, ok := m["STARTTLS"]; ok {
					t.Error("STARTTLS advertised over TLS")
				}
				c.want("STARTTLS", "NO")
			}
			c.ok(`AUTHENTICATE "PLAIN" "` + plainIR(testUser, testPass) + `"`)
			m := caps(c.ok("CAPABILITY"))
			if m["OWNER"] != testUser || m["SASL"] != "" {
				t.Errorf("after login: %v", m)
			}
			if _, ok := m["STARTTLS"]; ok {
				t.Error("STARTTLS advertised after login")
			}
			c.ok("LOGOUT")
			c.expectClosed()
		})
	}
}

func TestScripts(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(t)
	lit := func(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }
	for _, step := range []struct{ send, want string }{
		{"LISTSCRIPTS", "OK"},
		{`HAVESPACE "one" 100`, "OK"},
		{`HAVESPACE "one" 5000`, "NO (QUOTA/MAXSIZE)"},
		{`HAVESPACE "one" 99999999999`, "NO"},
		{`HAVESPACE "one" "100"`, "NO"},
		{`PUTSCRIPT "one" ` + lit(script1), "OK"},
		{`PUTSCRIPT {3+}` + "\r\ntwo " + fmt.Sprintf("{%d}\r\n%s", len(script1), script1), "OK"},
		{`PUTSCRIPT "three" "keep;"`, "OK"},
		{`PUTSCRIPT "four" "keep;"`, "NO (QUOTA/MAXSCRIPTS)"},
		{`HAVESPACE "four" 10`, "NO (QUOTA/MAXSCRIPTS)"},
		{`HAVESPACE "three" 10`, "OK"}, // replacing is not one more
		{`PUTSCRIPT "three" ` + lit("keep;\r\nstop;\r\nbogus;\r\n"), `NO "line 3: `},
		{`CHECKSCRIPT ` + lit("require \"fileinto\";\r\n\r\nfileinto;\r\n"), `NO "line 3: `},
		{`CHECKSCRIPT "keep;"`, "OK"},
		{`CHECKSCRIPT ` + lit(strings.Repeat("#", 4097)), "NO (QUOTA/MAXSIZE)"},
		{`SETACTIVE "one"`, "OK"},
		{`SETACTIVE "nope"`, "NO (NONEXISTENT)"},
		{`DELETESCRIPT "one"`, "NO (ACTIVE)"},
		{`DELETESCRIPT "nope"`, "NO (NONEXISTENT)"},
		{`GETSCRIPT "nope"`, "NO (NONEXISTENT)"},
		{`RENAMESCRIPT "one" "two"`, "NO (ALREADYEXISTS)"},
		{`RENAMESCRIPT "nope" "five"`, "NO (NONEXISTENT)"},
		{`RENAMESCRIPT "one" "uno"`, "OK"},
		{`DELETESCRIPT "two"`, "OK"},
		{`NOOP "tag \"1\""`, `OK (TAG "tag \"1\"")`},
		{`NOOP`, `OK`},
		{`noop`, `OK`},
	} {
		c.want(step.send, step.want)
	}
	// Client mistakes, on their own connection: they count against its
	// error budget.
	e := ts.login(t)
	for _, l := range []string{`AUTHENTICATE "PLAIN"`, `STARTTLS`, `PUTSCRIPT "x"`, `PUTSCRIPT "a/b" "keep;"`,
		`PUTSCRIPT "" "keep;"`, `XYZZY`, `LISTSCRIPTS "x"`, `GETSCRIPT`} {
		e.want(l, "NO")
	}
	r := c.ok("LISTSCRIPTS")
	if want := []string{`"three"`, `"uno" ACTIVE`}; !slices.Equal(r.data, want) {
		t.Errorf("LISTSCRIPTS %q, want %q", r.data, want)
	}
	r = c.ok(`GETSCRIPT "uno"`)
	if len(r.data) != 1 || r.data[0] != script1 {
		t.Errorf("GETSCRIPT %q", r.data)
	}
	c.ok(`SETACTIVE ""`)
	r = c.ok("LISTSCRIPTS")
	if want := []string{`"three"`, `"uno"`}; !slices.Equal(r.data, want) {
		t.Errorf("LISTSCRIPTS after deactivation %q, want %q", r.data, want)
	}
	c.ok(`DELETESCRIPT "uno"`)
	// Another account sees nothing of alice's.
	b := ts.dial(t)
	b.ok(`AUTHENTICATE "PLAIN" "` + plainIR("bob@example.org", "bobpass") + `"`)
	if r := b.ok("LISTSCRIPTS"); len(r.data) != 0 {
		t.Errorf("bob sees %q", r.data)
	}
	b.want(`GETSCRIPT "three"`, "NO (NONEXISTENT)")
	c.ok("UNAUTHENTICATE")
	c.want("LISTSCRIPTS", "NO")
	c.ok(`AUTHENTICATE "PLAIN" "` + plainIR("bob@example.org", "bobpass") + `"`)
	c.ok("LOGOUT")
	c.expectClosed()

	waitFor(t, "disconnect log line", func() bool { return strings.Contains(ts.logs.String(), "msg=disconnect") })
	logs := ts.logs.String()
	for _, want := range []string{"proto=managesieve", "msg=\"script stored\"", "user=" + testUser, "remote=127.0.0.1", "conn=", "msg=disconnect"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(logs, plainIR(testUser, testPass)) || strings.Contains(logs, "fileinto \\\"X\\\"") {
		t.Error("logs show a credential or a script")
	}
}

func TestGetScriptQuotedNames(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(t)
	for _, name := range []string{`a "quoted" name`, `back\slash`, "été"} {
		quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
		c.ok("PUTSCRIPT " + quoted + ` "keep;"`)
		if r := c.ok("GETSCRIPT " + quoted); len(r.data) != 1 || r.data[0] != "keep;" {
			t.Errorf("GETSCRIPT %s: %q", quoted, r.data)
		}
		c.ok("DELETESCRIPT " + quoted)
	}
	c.ok(fmt.Sprintf("PUTSCRIPT {%d+}\r\n%s \"keep;\"", len("lit name"), "lit name"))
	if r := c.ok("LISTSCRIPTS"); !slices.Equal(r.data, []string{`"lit name"`}) {
		t.Errorf("LISTSCRIPTS %q", r.data)
	}
}

func TestAuthenticate(t *testing.T) {
	ts := newTestServer(t)
	t.Run("PLAIN without initial response", func(t *testing.T) {
		c := ts.dial(t)
		c.line(`AUTHENTICATE "PLAIN"`)
		if l := c.readLine(); l != `""` {
			t.Fatalf("challenge %q", l)
		}
		c.ok(`"` + plainIR(testUser, testPass) + `"`)
		c.ok("LISTSCRIPTS")
	})
	t.Run("PLAIN as literal", func(t *testing.T) {
		c := ts.dial(t)
		ir := plainIR(testUser, testPass)
		c.ok(fmt.Sprintf("AUTHENTICATE \"plain\" {%d+}\r\n%s", len(ir), ir))
	})
	t.Run("LOGIN", func(t *testing.T) {
		c := ts.dial(t)
		c.line(`AUTHENTICATE "LOGIN"`)
		if l := c.readLine(); l != `"`+b64("Username:")+`"` {
			t.Fatalf("challenge %q", l)
		}
		c.line(fmt.Sprintf("{%d+}\r\n%s", len(b64(testUser)), b64(testUser)))
		if l := c.readLine(); l != `"`+b64("Password:")+`"` {
			t.Fatalf("challenge %q", l)
		}
		c.ok(`"` + b64(testPass) + `"`)
	})
	t.Run("LOGIN with initial response", func(t *testing.T) {
		c := ts.dial(t)
		c.line(`AUTHENTICATE "LOGIN" "` + b64(testUser) + `"`)
		if l := c.readLine(); l != `"`+b64("Password:")+`"` {
			t.Fatalf("challenge %q", l)
		}
		c.ok(`"` + b64(testPass) + `"`)
	})
	t.Run("abort", func(t *testing.T) {
		c := ts.dial(t)
		c.line(`AUTHENTICATE "LOGIN"`)
		c.readLine()
		c.want(`"*"`, "NO")
		c.line(`AUTHENTICATE "LOGIN"`)
		c.readLine()
		c.want(`*`, "NO")
		c.ok(`AUTHENTICATE "PLAIN" "` + plainIR(testUser, testPass) + `"`)
	})
	t.Run("bad base64", func(t *testing.T) {
		c := ts.dial(t)
		c.want(`AUTHENTICATE "PLAIN" "!!!notbase64"`, "NO")
		c.want(`AUTHENTICATE "PLAIN" ""`, `NO "authentication failed"`)
		c.line(`AUTHENTICATE "LOGIN"`)
		c.readLine()
		c.want(`"@@@"`, "NO")
		c.line(`AUTHENTICATE "PLAIN"`)
		c.readLine()
		c.want(`not a string`, "NO")
		c.want("LISTSCRIPTS", "NO")
		c.ok(`AUTHENTICATE "PLAIN" "` + plainIR(testUser, testPass) + `"`)
	})
	t.Run("unsupported mechanism", func(t *testing.T) {
		c := ts.dial(t)
		c.want(`AUTHENTICATE "CRAM-MD5"`, "NO")
		c.want(`AUTHENTICATE PLAIN`, "NO") // the mechanism is a string
	})
	t.Run("wrong password closes after three", func(t *testing.T) {
		c := ts.dial(t)
		for i := 1; i <= DefaultMaxAuthFailures; i++ {
			want := `NO "authentication failed"`
			if i == DefaultMaxAuthFailures {
				want = `BYE "authentication failed"`
			}
			c.want(`AUTHENTICATE "PLAIN" "`+plainIR(testUser, fmt.Sprint("wrong", i))+`"`, want)
		}
		c.expectClosed()
		if !strings.Contains(ts.logs.String(), "authentication failed") {
			t.Error("no log line for failed logins")
		}
	})
}

func TestAuthThrottled(t *testing.T) {
	ts := newTestServer(t)
	// Loopback is trusted (never locked out per address); the account cap
	// applies to it, after 10 distinct failures within the hour.
	for i := 0; i < 4; i++ {
		c := ts.dial(t)
		for j := 0; j < DefaultMaxAuthFailures; j++ {
			c.cmd(`AUTHENTICATE "PLAIN" "` + plainIR(testUser, fmt.Sprint("guess", i, j)) + `"`)
		}
	}
	c := ts.dial(t)
	c.want(`AUTHENTICATE "PLAIN" "`+plainIR(testUser, "another guess")+`"`, "NO (TRYLATER)")
}

func TestStartTLS(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoopbackIsSecure = false }))
	c := ts.dial(t)
	if _, ok := caps(c.greeting)["STARTTLS"]; !ok {
		t.Fatal("no STARTTLS")
	}
	// A command pipelined behind STARTTLS was sent in the clear: dropped.
	c.send("STARTTLS\r\nLOGOUT\r\n")
	c.read()
	tc := tlsClient(t, c)
	c.c, c.r = tc, newBufReader(tc)
	c.read() // capabilities after the handshake; LOGOUT was not run
	c.ok(`AUTHENTICATE "PLAIN" "` + plainIR(testUser, testPass) + `"`)
	c.ok(`PUTSCRIPT "s" "keep;"`)
	if !strings.Contains(ts.logs.String(), "discarding data pipelined after STARTTLS") {
		t.Error("pipelined plaintext not reported")
	}
}

func TestHostileInput(t *testing.T) {
	ts := newTestServer(t)
	big := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name  string
		login bool
		send  string
		want  string
	}{
		{"unterminated quoted", false, `NOOP "abc`, "NO"},
		{"bad escape", false, `NOOP "a\b"`, "NO"},
		{"NUL in quoted", false, "NOOP \"a\x00b\"", "NO"},
		{"bad UTF-8 in quoted", false, "NOOP \"\xff\xfe\"", "NO"},
		{"quoted too long", false, `NOOP "` + strings.Repeat("a", 1025) + `"`, "NO"},
		{"empty line", false, "", "NO"},
		{"command is a string", false, `"NOOP"`, "NO"},
		{"too many arguments", false, `NOOP "a" "b" "c"`, "NO"},
		{"garbage", false, "NOOP (x)", "NO"},
		{"literal in mid line", false, `NOOP {3+} "x"`, "NO"},
		{"pre-auth literal too large", false, "NOOP {9000+}\r\n" + strings.Repeat("y", 9000), "NO"},
		{"pre-auth script command", false, "PUTSCRIPT \"a\" {10+}\r\nkeep;keep;", "NO"},
		{"overlong line", false, "NOOP " + strings.Repeat("z", 9000), "NO"},
		{"overlong line with literal", false, "NOOP " + strings.Repeat("z", 9000) + " {20+}\r\nNOOP NOOP NOOP NOOP ", "NO"},
		{"bad line then literal skipped", false, "NOOP (x) {10}\r\nLOGOUT\r\n\r\n", "NO"},
		{"third argument literal skipped", false, "NOOP \"a\" \"b\" {8+}\r\nLOGOUT\r\n", "NO"},
		{"script over limit", true, "PUTSCRIPT \"big\" {5000+}\r\n" + big, "NO (QUOTA/MAXSIZE)"},
		{"name literal too large", true, "PUTSCRIPT {9000+}\r\n" + strings.Repeat("n", 9000) + " \"keep;\"", "NO"},
		{"bad UTF-8 name literal", true, "PUTSCRIPT {2+}\r\n\xff\xfe \"keep;\"", "NO"},
		{"control character in name", true, "PUTSCRIPT {3+}\r\na\tb \"keep;\"", "NO"},
		{"name too long", true, `GETSCRIPT "` + strings.Repeat("n", 129) + `"`, "NO"},
		{"number too large", true, `HAVESPACE "a" 99999999999999999999`, "NO"},
		{"HAVESPACE number as literal", true, "HAVESPACE \"a\" {2+}\r\n10", "NO"},
		{"script with NUL", true, "PUTSCRIPT \"nul\" {6+}\r\nkeep;\x00", "NO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *client
			if tc.login {
				c = ts.login(t)
			} else {
				c = ts.dial(t)
			}
			c.want(tc.send, tc.want)
			// In step: the next command gets its own answer.
			r := c.ok(`NOOP "after"`)
			if !strings.Contains(r.status, `(TAG "after")`) {
				t.Fatalf("out of step: %q", r.status)
			}
		})
	}

	t.Run("huge literal closes", func(t *testing.T) {
		c := ts.login(t)
		c.want("PUTSCRIPT \"x\" {4294967295+}", `BYE "input too large`)
		c.expectClosed()
	})
	t.Run("literal too large to skip closes", func(t *testing.T) {
		c := ts.dial(t)
		c.want("NOOP {70000+}", "BYE")
		c.expectClosed()
	})
	t.Run("endless line closes", func(t *testing.T) {
		c := ts.dial(t)
		go c.c.Write([]byte(strings.Repeat("A", 100<<10)))
		if r := c.read(); !strings.HasPrefix(r.status, "BYE") {
			t.Fatalf("got %q", r.status)
		}
	})
	t.Run("too many errors", func(t *testing.T) {
		c := ts.dial(t)
		for i := 1; i < DefaultMaxErrors; i++ {
			c.want("BOGUS", "NO")
		}
		c.want("BOGUS", "BYE")
		c.expectClosed()
	})
	t.Run("unexpected EOF in literal", func(t *testing.T) {
		c := ts.login(t)
		c.send("PUTSCRIPT \"x\" {100+}\r\nkeep;")
		c.c.(*net.TCPConn).CloseWrite()
		c.expectClosed()
	})
}

func TestShutdown(t *testing.T) {
	ts := newTestServer(t)
	c := ts.login(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go ts.srv.Shutdown(ctx)
	if r := c.read(); r.status != `BYE (TRYLATER) "server shutting down, try again later"` {
		t.Fatalf("got %q", r.status)
	}
	c.expectClosed()
}

func TestConnectionLimit(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.Conns = limit.NewConns(1, 10) }))
	c := ts.dial(t)
	d, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	refused := &client{t: t, c: d, r: newBufReader(d)}
	if r := refused.read(); r.status != `BYE (TRYLATER) "too many connections"` {
		t.Fatalf("got %+v", r)
	}
	c.ok("NOOP")
}

func TestIdleTimeout(t *testing.T) {
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoginTimeout = 50 * time.Millisecond }))
	c := ts.dial(t)
	if r := c.read(); !strings.HasPrefix(r.status, "BYE") {
		t.Fatalf("got %q", r.status)
	}
	c.expectClosed()
}
