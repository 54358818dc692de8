package imapd

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/imapd/mailsort"
)

// TestSortContextUpdate checks SORT RETURN (UPDATE) (RFC 5267 §4.3):
// ADDTO and REMOVEFROM carry positions in the sorted result as flag
// changes (this session's and another's), expunges and new messages move
// messages in and out; REMOVEFROM precedes the EXPUNGE; CANCELUPDATE
// stops the updates; tag reuse is BAD; the limit is shared with SEARCH.
func TestSortContextUpdate(t *testing.T) {
	ts := newSortThreadServer(t) // base subjects: 1, 2, 4 LUNCH; 3, 5 AGENDA
	c, other := ts.raw(t), ts.raw(t)
	c.login("alice@example.org", "alicepw")
	other.login("alice@example.org", "alicepw")
	c.mustOK("SELECT INBOX")
	other.mustOK("SELECT INBOX")

	c.send("S1 SORT RETURN (UPDATE) (SUBJECT) UTF-8 SEEN\r\n")
	u, done := c.until("S1")
	if !strings.HasPrefix(done, "OK") || !slices.Equal(esearchLines(u), []string{`* ESEARCH (TAG "S1")`}) {
		t.Fatalf("SORT RETURN (UPDATE): %q %q", u, done)
	}
	steps := []struct {
		name string
		conn *rawConn
		cmd  string
		want []string // the ESEARCH and EXPUNGE/EXISTS lines c sees, in order
	}{
		// Ties go by sequence number: one run at position 1.
		{"own store", c, `STORE 1,2,4 +FLAGS.SILENT (\Seen)`, []string{`* ESEARCH (TAG "S1") ADDTO (1 1:2,4)`}},
		{"before the others", c, `STORE 5 +FLAGS.SILENT (\Seen)`, []string{`* ESEARCH (TAG "S1") ADDTO (1 5)`}},
		{"tie placed by number", c, `STORE 3 +FLAGS.SILENT (\Seen)`, []string{`* ESEARCH (TAG "S1") ADDTO (1 3)`}},
		// Result 3,5,1,2,4; another session's changes come at our next command.
		{"other session", other, `STORE 2,5 -FLAGS (\Seen)`, nil},
		{"other's changes", c, `NOOP`, []string{`* ESEARCH (TAG "S1") REMOVEFROM (2 5)`, `* ESEARCH (TAG "S1") REMOVEFROM (3 2)`}},
		// Result 3,1,4.
		{"expunge", c, `STORE 1 +FLAGS.SILENT (\Deleted)`, nil},
		{"expunged", c, `EXPUNGE`, []string{`* ESEARCH (TAG "S1") REMOVEFROM (2 1)`, "* 1 EXPUNGE"}},
		// Result 2,3 (was 3,4); a new message sorts first.
		{"append", c, "APPEND INBOX (\\Seen) {21}\r\nSubject: aardvark\r\n\r\n", []string{"* 5 EXISTS", `* ESEARCH (TAG "S1") ADDTO (1 5)`}},
		{"other expunges", other, `EXPUNGE`, nil}, // 1 is \Deleted there too: already gone
		{"cancel", c, `CANCELUPDATE "S1"`, nil},
		{"no more", c, `STORE 1:* +FLAGS.SILENT (\Seen)`, nil},
	}
	for _, st := range steps {
		var u []string
		if strings.HasPrefix(st.cmd, "APPEND") {
			head, lit, _ := strings.Cut(st.cmd, "\r\n")
			st.conn.send("A1 " + head + "\r\n")
			if l := st.conn.line(); !strings.HasPrefix(l, "+") {
				t.Fatalf("APPEND continuation: %q", l)
			}
			st.conn.send(lit + "\r\n")
			var done string
			if u, done = st.conn.until("A1"); !strings.HasPrefix(done, "OK") {
				t.Fatalf("APPEND: %q", done)
			}
		} else {
			u = st.conn.mustOK("%s", st.cmd)
		}
		if st.conn != c {
			continue
		}
		var got []string
		for _, l := range u {
			if strings.HasPrefix(l, "* ESEARCH") || strings.HasSuffix(l, "EXPUNGE") || strings.HasSuffix(l, "EXISTS") {
				got = append(got, l)
			}
		}
		if !slices.Equal(got, st.want) {
			t.Errorf("%s: got %q, want %q", st.name, got, st.want)
		}
	}

	// A tag in use by a live result cannot name another (RFC 5267 §4.3).
	c.send("L1 UID SORT RETURN (UPDATE COUNT) (ARRIVAL) UTF-8 ALL\r\n")
	if u, done := c.until("L1"); !strings.HasPrefix(done, "OK") || !slices.Equal(esearchLines(u), []string{`* ESEARCH (TAG "L1") UID COUNT 5`}) {
		t.Fatalf("UID SORT RETURN (UPDATE COUNT): %q %q", u, done)
	}
	for _, cmd := range []string{"SORT RETURN (UPDATE) (SIZE) UTF-8 ALL", "SEARCH RETURN (UPDATE) ALL"} {
		c.send("L1 " + cmd + "\r\n")
		if _, done := c.until("L1"); !strings.HasPrefix(done, "BAD") {
			t.Errorf("%s with a live tag: %q, want BAD", cmd, done)
		}
	}
	// SEARCH and SORT share the limit.
	for i := 2; i <= maxLiveSearches; i++ {
		c.send(fmt.Sprintf("L%d SEARCH RETURN (UPDATE) SEEN\r\n", i))
		if _, done := c.until(fmt.Sprintf("L%d", i)); !strings.HasPrefix(done, "OK") {
			t.Fatalf("live search %d: %q", i, done)
		}
	}
	c.send("L9 SORT RETURN (UPDATE MIN) (SIZE) UTF-8 ALL\r\n")
	u, done = c.until("L9")
	if !strings.HasPrefix(done, "OK") || !hasLine(u, `* ESEARCH (TAG "L9") MIN `) || !hasLine(u, `* NO [NOUPDATE "L9"]`) {
		t.Errorf("live sort over the limit: %q %q", u, done)
	}
	// Leaving the mailbox ends them all.
	c.mustOK("UNSELECT")
	c.mustOK("SELECT INBOX")
	c.send("L1 SORT RETURN (UPDATE) (SIZE) UTF-8 ALL\r\n")
	if _, done := c.until("L1"); !strings.HasPrefix(done, "OK") {
		t.Errorf("tag of a result ended by UNSELECT: %q", done)
	}
}

// sortClient is what a client following RFC 5267 keeps of a live SORT
// result: the numbers in order, updated by ADDTO, REMOVEFROM and (for
// sequence numbers) EXPUNGE.
type sortClient struct {
	tag           string
	uid           bool
	list          []uint32
	adds, removes int // ADDTO and REMOVEFROM applied
}

var updateRE = regexp.MustCompile(`^\* ESEARCH \(TAG "([^"]+)"\)( UID)? (ADDTO|REMOVEFROM) \((\d+) ([0-9:,]+)\)$`)

// orderedNums expands a sequence-set written in sort order: ranges
// ascend (RFC 5267 §3.2).
func orderedNums(t *testing.T, s string) []uint32 {
	t.Helper()
	var nums []uint32
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		x, err1 := strconv.ParseUint(a, 10, 32)
		y, err2 := x, error(nil)
		if isRange {
			y, err2 = strconv.ParseUint(b, 10, 32)
		}
		if err1 != nil || err2 != nil || y < x {
			t.Fatalf("bad set %q", s)
		}
		for n := x; n <= y; n++ {
			nums = append(nums, uint32(n))
		}
	}
	return nums
}

// apply processes one response line; REMOVEFROM must name what the client
// has at that position, and an EXPUNGE must not name a member.
func (sc *sortClient) apply(t *testing.T, l string) {
	t.Helper()
	if m := updateRE.FindStringSubmatch(l); m != nil {
		if m[1] != sc.tag {
			return
		}
		if (m[2] != "") != sc.uid {
			t.Fatalf("%s: UID indicator", l)
		}
		pos, _ := strconv.Atoi(m[4])
		nums := orderedNums(t, m[5])
		if pos < 1 || pos-1 > len(sc.list) {
			t.Fatalf("%s: position beyond %v", l, sc.list)
		}
		if m[3] == "ADDTO" {
			sc.list = slices.Insert(sc.list, pos-1, nums...)
			sc.adds++
			return
		}
		sc.removes++
		if end := pos - 1 + len(nums); end > len(sc.list) || !slices.Equal(sc.list[pos-1:end], nums) {
			t.Fatalf("%s: client has %v", l, sc.list)
		}
		sc.list = slices.Delete(sc.list, pos-1, pos-1+len(nums))
		return
	}
	if n, ok := strings.CutSuffix(l, " EXPUNGE"); ok && !sc.uid {
		seq, _ := strconv.ParseUint(strings.TrimPrefix(n, "* "), 10, 32)
		for i, x := range sc.list {
			switch {
			case x == uint32(seq):
				t.Fatalf("%s: still in %s's result %v (REMOVEFROM must come first)", l, sc.tag, sc.list)
			case x > uint32(seq):
				sc.list[i]--
			}
		}
	}
}

// TestSortContextModel changes a mailbox at random (deliveries, flag
// changes by this session and another, expunges by either) under three
// live SORT results, one by UID, and checks after each change that a
// client applying the updates in order holds exactly what a new SORT
// returns.
func TestSortContextModel(t *testing.T) {
	ts := newTestServer(t)
	rng := rand.New(rand.NewSource(5267))
	subjects := []string{"alpha", "Re: beta", "beta", "[x] gamma", "Fwd: alpha", "delta"}
	froms := []string{"ann@example.net", "Bob <bob@example.net>", "cy@example.net"}
	msg := func() string {
		return fmt.Sprintf("From: %s\r\nSubject: %s\r\nDate: Mon, 0%d Nov 2026 10:00:00 +0000\r\n\r\n%s\r\n",
			froms[rng.Intn(len(froms))], subjects[rng.Intn(len(subjects))], 1+rng.Intn(3), strings.Repeat("x", rng.Intn(4)*10))
	}
	for range 12 {
		ts.deliver(t, "alice@example.org", "", msg())
	}
	c, other := ts.raw(t), ts.raw(t)
	c.login("alice@example.org", "alicepw")
	other.login("alice@example.org", "alicepw")
	c.mustOK("SELECT INBOX")
	other.mustOK("SELECT INBOX")

	lives := []struct {
		cmd string
		sc  *sortClient
	}{
		{"SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 SEEN", &sortClient{tag: "M1"}},
		{"UID SORT RETURN (UPDATE ALL) (REVERSE DATE SIZE) UTF-8 NOT FLAGGED", &sortClient{tag: "M2", uid: true}},
		{"SORT RETURN (UPDATE ALL CONTEXT) (FROM REVERSE ARRIVAL) UTF-8 OR SEEN FLAGGED", &sortClient{tag: "M3"}},
	}
	for _, lv := range lives {
		c.send(lv.sc.tag + " " + lv.cmd + "\r\n")
		u, done := c.until(lv.sc.tag)
		if !strings.HasPrefix(done, "OK") {
			t.Fatalf("%s: %q", lv.cmd, done)
		}
		for _, l := range u {
			if rest, ok := strings.CutPrefix(l, fmt.Sprintf(`* ESEARCH (TAG %q)`, lv.sc.tag)); ok {
				if i := strings.Index(rest, "ALL "); i >= 0 {
					lv.sc.list = orderedNums(t, rest[i+4:])
				}
			}
		}
	}
	exists := 12
	// do runs a command; c's responses go to the clients, in order.
	do := func(conn *rawConn, format string, args ...any) []string {
		t.Helper()
		u := conn.mustOK(format, args...)
		if conn != c {
			return u
		}
		for _, l := range u {
			for _, lv := range lives {
				lv.sc.apply(t, l)
			}
			if n, ok := strings.CutSuffix(l, " EXISTS"); ok {
				exists, _ = strconv.Atoi(strings.TrimPrefix(n, "* "))
			} else if strings.HasSuffix(l, " EXPUNGE") {
				exists--
			}
		}
		return u
	}
	pick := func() *rawConn {
		if rng.Intn(2) == 0 {
			return c
		}
		return other
	}
	for round := range 80 {
		switch op := rng.Intn(10); {
		case op < 2:
			ts.deliver(t, "alice@example.org", "", msg())
		case op < 7:
			a := 1 + rng.Intn(exists)
			do(pick(), "STORE %d:%d %cFLAGS (%s)", a, min(exists, a+rng.Intn(3)), "+-"[rng.Intn(2)],
				[]string{`\Seen`, `\Flagged`}[rng.Intn(2)])
		case op < 9 && exists > 6:
			conn := pick()
			do(conn, `STORE %d,%d +FLAGS.SILENT (\Deleted)`, 1+rng.Intn(exists), 1+rng.Intn(exists))
			do(conn, "EXPUNGE")
		}
		// Both sessions catch up (their numbers agree once both have
		// seen every EXISTS and EXPUNGE), then a new SORT of each
		// result must be what the client holds.
		do(other, "NOOP")
		do(c, "NOOP")
		for _, lv := range lives {
			plain := strings.NewReplacer("RETURN (UPDATE ALL) ", "", "RETURN (UPDATE ALL CONTEXT) ", "").Replace(lv.cmd)
			var want []uint32
			for _, l := range do(c, "%s", plain) {
				if rest, ok := strings.CutPrefix(l, "* SORT"); ok {
					for _, f := range strings.Fields(rest) {
						n, _ := strconv.ParseUint(f, 10, 32)
						want = append(want, uint32(n))
					}
				}
			}
			if !slices.Equal(lv.sc.list, want) {
				t.Fatalf("round %d, %s: client holds %v, SORT says %v", round, lv.sc.tag, lv.sc.list, want)
			}
		}
	}
	for _, lv := range lives {
		t.Logf("%s: %d ADDTO, %d REMOVEFROM, %d at the end of %d messages", lv.sc.tag, lv.sc.adds, lv.sc.removes, len(lv.sc.list), exists)
		if lv.sc.adds == 0 || lv.sc.removes == 0 {
			t.Errorf("%s: the changes never moved a message in and out", lv.sc.tag)
		}
	}
}

// TestSortContextImaplib drives SORT RETURN (UPDATE) with Python's
// imaplib, raw commands through its _simple_command.
func TestSortContextImaplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	ts := newSortThreadServer(t)
	script := filepath.Join(t.TempDir(), "sortctx.py")
	if err := os.WriteFile(script, []byte(`
import imaplib, sys
host, port = sys.argv[1].rsplit(":", 1)
m = imaplib.IMAP4(host, int(port))
m.login("alice@example.org", "alicepw")
print("caps", m.capability())
m.select("INBOX")
typ, data = m._simple_command("UID", "SORT", "RETURN", "(UPDATE", "PARTIAL", "1:2)", "(SUBJECT)", "UTF-8", "FLAGGED")
update = m.untagged_responses.pop("ESEARCH", None)
print("update", typ, update)
m.store("1,2,4", "+FLAGS", "(\\Flagged)")
print("addto", m.untagged_responses.pop("ESEARCH", None))
m.store("5", "+FLAGS", "(\\Flagged)")
print("addto", m.untagged_responses.pop("ESEARCH", None))
m.store("2", "-FLAGS", "(\\Flagged)")
print("removefrom", m.untagged_responses.pop("ESEARCH", None))
imaplib.Commands["CANCELUPDATE"] = ("SELECTED",)
tag = update[0].split(b'"')[1].decode()
print("cancel", m._simple_command("CANCELUPDATE", '"%s"' % tag))
m.store("2", "+FLAGS", "(\\Flagged)")
print("after cancel", m.untagged_responses.pop("ESEARCH", None))
m.logout()
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, script, ts.addr).CombinedOutput()
	t.Logf("imaplib:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CONTEXT=SORT", `UID PARTIAL (1:2 NIL)`, `UID ADDTO (1 1:2,4)`, `UID ADDTO (1 5)`, `UID REMOVEFROM (3 2)`, "cancel ('OK'", "after cancel None"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("imaplib output lacks %q", want)
		}
	}
}

// TestKeyList checks the blocked list against a sorted slice through
// inserts and removals enough to split blocks and empty them.
func TestKeyList(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	l := newKeyList(nil, strings.Compare)
	var model []string
	for i := range 6000 {
		k := fmt.Sprintf("%06d", rng.Intn(3000))
		mi, in := slices.BinarySearch(model, k)
		if i%3 == 2 || in {
			_, pos, ok := l.remove(k)
			if ok != in || (in && pos != mi) {
				t.Fatalf("remove %s: %d %v, want %d %v", k, pos, ok, mi, in)
			}
			if in {
				model = slices.Delete(model, mi, mi+1)
			}
			continue
		}
		if pos := l.insert(k); pos != mi {
			t.Fatalf("insert %s at %d, want %d", k, pos, mi)
		}
		model = slices.Insert(model, mi, k)
	}
	var got []string
	l.each(func(k string) { got = append(got, k) })
	if !slices.Equal(got, model) || l.len() != len(model) {
		t.Fatalf("list differs from the model (%d, %d entries)", len(got), len(model))
	}
	for _, blk := range l.blocks {
		if len(blk) == 0 || len(blk) > 2*keyBlock {
			t.Fatalf("block of %d", len(blk))
		}
	}
}

// TestSortedResultLimit: a result whose keys are over maxLiveSortBytes is
// not kept.
func TestSortedResultLimit(t *testing.T) {
	km := newKeyMaker([]imap.SortCriterion{{Key: imap.SortKeySubject}})
	subject := strings.Repeat("s", 200)
	keys := make([]mailsort.Key, maxLiveSortBytes/200)
	for i := range keys {
		keys[i] = mailsort.Key{Seq: uint32(i + 1), Subject: subject}
	}
	if _, ok := newSortedResult(km, keys); ok {
		t.Errorf("%d keys of 200 bytes kept", len(keys))
	}
	r, ok := newSortedResult(km, keys[:1000])
	if !ok || r.order.len() != 1000 || !slices.Equal(r.uidSet(), imap.UIDSet{{Start: 1, Stop: 1000}}) {
		t.Errorf("1,000 keys: kept %v", ok)
	}
}
