package imapd

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func esearchLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "* ESEARCH") || strings.HasPrefix(l, "* NO [NOUPDATE") {
			out = append(out, l)
		}
	}
	return out
}

// TestSearchPartial checks RETURN (PARTIAL) (RFC 9394): positions in the
// ascending result, from the end when negative, NIL past the end, UID
// SEARCH, "$" saved as the partial result, and bad ranges.
func TestSearchPartial(t *testing.T) {
	ts := newTestServer(t)
	var uids []imap.UID
	for i := 1; i <= 6; i++ {
		uids = append(uids, ts.deliver(t, "alice@example.org", "", testMessage(i)).UID)
	}
	c := ts.raw(t)
	c.login("alice@example.org", "alicepw")
	c.mustOK("SELECT INBOX")
	c.mustOK(`STORE 2 +FLAGS (\Deleted)`)
	c.mustOK("EXPUNGE") // 5 messages; UIDs 1,3,4,5,6

	tests := []struct {
		name, cmd, want string
	}{
		{"first", "SEARCH RETURN (PARTIAL 1:1) ALL", `* ESEARCH (TAG "A") PARTIAL (1:1 1)`},
		{"reversed", "SEARCH RETURN (PARTIAL 4:2) ALL", `* ESEARCH (TAG "A") PARTIAL (2:4 2:4)`},
		{"beyond", "SEARCH RETURN (PARTIAL 4:10) ALL", `* ESEARCH (TAG "A") PARTIAL (4:10 4:5)`},
		{"past the end", "SEARCH RETURN (PARTIAL 6:6) ALL", `* ESEARCH (TAG "A") PARTIAL (6:6 NIL)`},
		{"from the end", "SEARCH RETURN (PARTIAL -1:-2) ALL", `* ESEARCH (TAG "A") PARTIAL (-1:-2 4:5)`},
		{"from the end, beyond", "SEARCH RETURN (PARTIAL -3:-10) ALL", `* ESEARCH (TAG "A") PARTIAL (-3:-10 1:3)`},
		{"with count", "SEARCH RETURN (COUNT PARTIAL 2:3) 1:2,4:5", `* ESEARCH (TAG "A") COUNT 4 PARTIAL (2:3 2,4)`},
		{"uid", "UID SEARCH RETURN (PARTIAL 2:2) ALL", fmt.Sprintf(`* ESEARCH (TAG "A") UID PARTIAL (2:2 %d)`, uids[2])},
		{"uid past the end", "UID SEARCH RETURN (PARTIAL 5:10) ALL", fmt.Sprintf(`* ESEARCH (TAG "A") UID PARTIAL (5:10 %d)`, uids[5])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.send("A " + tc.cmd + "\r\n")
			u, done := c.until("A")
			if !strings.HasPrefix(done, "OK") {
				t.Fatalf("%s: %q", tc.cmd, done)
			}
			if got := esearchLines(u); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("%s: got %q, want %q", tc.cmd, got, tc.want)
			}
		})
	}

	// SAVE with PARTIAL keeps the partial result as "$" (RFC 9394 §3.2).
	c.mustOK("SEARCH RETURN (SAVE PARTIAL 2:3) ALL")
	if u := c.mustOK("FETCH $ UID"); len(u) != 2 || !strings.HasPrefix(u[0], "* 2 FETCH") || !strings.HasPrefix(u[1], "* 3 FETCH") {
		t.Errorf("FETCH $ after SAVE PARTIAL 2:3: %q", u)
	}

	for _, bad := range []string{"PARTIAL 1", "PARTIAL 1:*", "PARTIAL *:1", "PARTIAL 0:3", "PARTIAL -1:3", "PARTIAL 1:4294967296"} {
		if _, done := c.cmd("SEARCH RETURN (%s) ALL", bad); !strings.HasPrefix(done, "BAD") {
			t.Errorf("SEARCH RETURN (%s): %q, want BAD", bad, done)
		}
	}
}

// TestSearchContextUpdate checks RETURN (UPDATE) (RFC 5267 §4.3): ADDTO
// and REMOVEFROM as flag changes, expunges and new messages move messages
// in and out of the result; REMOVEFROM precedes the EXPUNGE of a message
// in it; CANCELUPDATE stops the updates; a sixth live result gets NOUPDATE.
func TestSearchContextUpdate(t *testing.T) {
	ts := newTestServer(t)
	for i := 1; i <= 5; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	c, other := ts.raw(t), ts.raw(t)
	c.login("alice@example.org", "alicepw")
	other.login("alice@example.org", "alicepw")
	c.mustOK("SELECT INBOX")
	other.mustOK("SELECT INBOX")

	c.send("S1 SEARCH RETURN (UPDATE) SEEN\r\n")
	u, done := c.until("S1")
	if !strings.HasPrefix(done, "OK") || !slices.Equal(esearchLines(u), []string{`* ESEARCH (TAG "S1")`}) {
		t.Fatalf("SEARCH RETURN (UPDATE): %q %q", u, done)
	}
	c.send("S2 UID SEARCH RETURN (UPDATE ALL) FLAGGED\r\n")
	if _, done := c.until("S2"); !strings.HasPrefix(done, "OK") {
		t.Fatalf("UID SEARCH RETURN (UPDATE ALL): %q", done)
	}

	u = c.mustOK(`STORE 1,2,4 +FLAGS.SILENT (\Seen)`)
	if got := esearchLines(u); !slices.Equal(got, []string{`* ESEARCH (TAG "S1") ADDTO (0 1:2,4)`}) {
		t.Errorf("own STORE: %q", u)
	}
	// Another session's change reaches us at our next command.
	other.mustOK(`STORE 2 -FLAGS (\Seen)`)
	other.mustOK(`STORE 3 +FLAGS (\Flagged)`)
	u = c.mustOK("NOOP")
	want := []string{`* ESEARCH (TAG "S1") REMOVEFROM (0 2)`, `* ESEARCH (TAG "S2") UID ADDTO (0 3)`}
	if got := esearchLines(u); !slices.Equal(got, want) {
		t.Errorf("other session's STORE: got %q, want %q", got, want)
	}

	// Expunge 3:5: the result {1,4} loses 4 just before its EXPUNGE,
	// named by the number it has then.
	c.mustOK(`STORE 3:5 +FLAGS.SILENT (\Deleted)`)
	u = c.mustOK("EXPUNGE")
	want = []string{"* 3 EXPUNGE", `* ESEARCH (TAG "S2") UID REMOVEFROM (0 3)`, `* ESEARCH (TAG "S1") REMOVEFROM (0 3)`, "* 3 EXPUNGE", "* 3 EXPUNGE"}
	if !slices.Equal(u, want) {
		// S2 held UID 3 (seq 3): REMOVEFROM comes before the first EXPUNGE.
		want = []string{`* ESEARCH (TAG "S2") UID REMOVEFROM (0 3)`, "* 3 EXPUNGE", `* ESEARCH (TAG "S1") REMOVEFROM (0 3)`, "* 3 EXPUNGE", "* 3 EXPUNGE"}
		if !slices.Equal(u, want) {
			t.Errorf("EXPUNGE: got %q", u)
		}
	}

	// A new message that matches: EXISTS, then ADDTO.
	c.send("A1 APPEND INBOX (\\Seen) {6}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation: %q", l)
	}
	c.send("a: b\r\n\r\n")
	u, done = c.until("A1")
	if !strings.HasPrefix(done, "OK") {
		t.Fatalf("APPEND: %q", done)
	}
	if i, j := slices.Index(u, "* 3 EXISTS"), slices.Index(u, `* ESEARCH (TAG "S1") ADDTO (0 3)`); i < 0 || j < i {
		t.Errorf("APPEND: %q", u)
	}

	c.mustOK(`CANCELUPDATE "S1" "S2"`)
	if u := c.mustOK(`STORE 2 +FLAGS (\Seen \Flagged)`); len(esearchLines(u)) != 0 {
		t.Errorf("after CANCELUPDATE: %q", u)
	}

	// Live results per session are bounded.
	for i := 1; i <= maxLiveSearches; i++ {
		c.send(fmt.Sprintf("L%d SEARCH RETURN (UPDATE) SEEN\r\n", i))
		if _, done := c.until(fmt.Sprintf("L%d", i)); !strings.HasPrefix(done, "OK") {
			t.Fatalf("live search %d: %q", i, done)
		}
	}
	c.send("L9 SEARCH RETURN (UPDATE) SEEN\r\n")
	u, done = c.until("L9")
	if !strings.HasPrefix(done, "OK") || !hasLine(u, `* NO [NOUPDATE "L9"]`) {
		t.Errorf("live search over the limit: %q %q", u, done)
	}
	if _, done := c.cmd(`CANCELUPDATE`); !strings.HasPrefix(done, "BAD") {
		t.Errorf("CANCELUPDATE without a tag: %q", done)
	}
}

// TestSearchContextImaplib drives RETURN (PARTIAL) and (UPDATE) with
// Python's imaplib, raw commands through its _simple_command.
func TestSearchContextImaplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ts := newTestServer(t)
	for i := 1; i <= 4; i++ {
		ts.deliver(t, "alice@example.org", "", testMessage(i))
	}
	script := filepath.Join(t.TempDir(), "ctx.py")
	if err := os.WriteFile(script, []byte(`
import imaplib, sys
host, port = sys.argv[1].rsplit(":", 1)
m = imaplib.IMAP4(host, int(port))
m.login("alice@example.org", "alicepw")
print("caps", m.capability())
m.select("INBOX")
typ, data = m._simple_command("SEARCH", "RETURN", "(PARTIAL", "-1:-2)", "ALL")
print("partial", typ, m.untagged_responses.pop("ESEARCH", None))
typ, data = m._simple_command("UID", "SEARCH", "RETURN", "(UPDATE", "COUNT)", "FLAGGED")
print("update", typ, m.untagged_responses.pop("ESEARCH", None))
m.store("2", "+FLAGS", "(\\Flagged)")
print("addto", m.untagged_responses.pop("ESEARCH", None))
m.logout()
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, script, ts.addr).CombinedOutput()
	t.Logf("imaplib:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CONTEXT=SEARCH", "PARTIAL", `partial OK [b'(TAG "`, `PARTIAL (-1:-2 3:4)`, `COUNT 0`, `UID ADDTO (0 2)`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib output lacks %q", want)
		}
	}
}
