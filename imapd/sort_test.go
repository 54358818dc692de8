package imapd

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// sortThreadMessages is a small mailbox with a thread, a reply by subject
// only, encoded words and display names.
var sortThreadMessages = []string{
	"From: Zoe <zoe@example.net>\r\nTo: bob@example.org\r\nSubject: Lunch\r\n" +
		"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\nhi\r\n",
	"From: adam@example.net\r\nTo: Carol <carol@example.org>\r\nSubject: =?UTF-8?Q?Re:_lunch?=\r\n" +
		"Date: Mon, 02 Nov 2026 12:00:00 +0200\r\nMessage-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\n\r\nyes, a longer body\r\n",
	"From: \"Bea\" <bea@example.net>\r\nTo: amy@example.org\r\nSubject: [list] Agenda\r\n" +
		"Date: Sun, 01 Nov 2026 09:00:00 +0000\r\nMessage-ID: <3@x>\r\n\r\nagenda\r\n",
	"From: Yan <yan@example.net>\r\nTo: bob@example.org\r\nSubject: Re: Lunch (fwd)\r\n" +
		"Date: Mon, 02 Nov 2026 11:00:00 +0000\r\nMessage-ID: <4@x>\r\nReferences: <1@x> <2@x>\r\n\r\nme too\r\n",
	"From: cy@example.net\r\nTo: bob@example.org\r\nSubject: Fwd: agenda\r\n" +
		"Message-ID: <5@x>\r\n\r\nno date header\r\n",
}

func newSortThreadServer(t *testing.T) *testServer {
	t.Helper()
	ts := newTestServer(t)
	for _, m := range sortThreadMessages {
		ts.deliver(t, "alice@example.org", "INBOX", m)
	}
	return ts
}

// TestSortThreadClient: go-imap's client sorts and threads (SORT, UID
// SORT, THREAD, UID THREAD) and reads the answers.
func TestSortThreadClient(t *testing.T) {
	ts := newSortThreadServer(t)
	c := ts.client(t, "alice@example.org", "alicepw", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	all := &imap.SearchCriteria{}
	for _, tc := range []struct {
		name string
		keys []imapclient.SortCriterion
		uid  bool
		want []uint32
	}{
		// Message 5 has no Date: its internal date (delivery, now) is latest.
		{"date", []imapclient.SortCriterion{{Key: imapclient.SortKeyDate}}, false, []uint32{3, 1, 2, 4, 5}},
		{"subject", []imapclient.SortCriterion{{Key: imapclient.SortKeySubject}}, false, []uint32{3, 5, 1, 2, 4}},
		{"reverse subject then size", []imapclient.SortCriterion{{Key: imapclient.SortKeySubject, Reverse: true}, {Key: imapclient.SortKeySize}}, true, []uint32{1, 4, 2, 5, 3}},
		{"from", []imapclient.SortCriterion{{Key: imapclient.SortKeyFrom}}, false, []uint32{2, 3, 5, 4, 1}},
		{"to", []imapclient.SortCriterion{{Key: imapclient.SortKeyTo}}, false, []uint32{3, 1, 4, 5, 2}},
		{"display from", []imapclient.SortCriterion{{Key: "DISPLAYFROM"}}, false, []uint32{2, 3, 5, 4, 1}},
		{"display to", []imapclient.SortCriterion{{Key: "DISPLAYTO"}}, false, []uint32{3, 1, 4, 5, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := &imapclient.SortOptions{SearchCriteria: all, SortCriteria: tc.keys}
			cmd := c.Sort(opts)
			if tc.uid {
				cmd = c.UIDSort(opts)
			}
			got, err := cmd.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	threads, err := c.Thread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: all}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	// 3 and 5 share the base subject "AGENDA": 5 is a forward, so it goes
	// under 3. 4's References make it a reply to 2.
	if got, want := fmt.Sprint(threads), "[{[3 5] []} {[1 2 4] []}]"; got != want {
		t.Errorf("THREAD REFERENCES: got %s, want %s", got, want)
	}
	// A branch and a dummy root: 6 answers 1 besides 2; 7 and 8 answer a
	// message that is not there.
	ts.deliver(t, "alice@example.org", "INBOX", "Subject: Re: lunch\r\nDate: Mon, 02 Nov 2026 13:00:00 +0000\r\n"+
		"Message-ID: <6@x>\r\nIn-Reply-To: <1@x>\r\n\r\nlater\r\n")
	for i := 7; i <= 8; i++ {
		ts.deliver(t, "alice@example.org", "INBOX", fmt.Sprintf("Subject: s%d\r\nDate: Tue, 03 Nov 2026 1%d:00:00 +0000\r\n"+
			"Message-ID: <%d@x>\r\nReferences: <gone@x>\r\n\r\nx\r\n", i, i, i))
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	threads, err = c.Thread(&imapclient.ThreadOptions{Algorithm: imap.ThreadReferences, SearchCriteria: all}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(threads), "[{[3 5] []} {[1] [{[2 4] []} {[6] []}]} {[] [{[7] []} {[8] []}]}]"; got != want {
		t.Errorf("THREAD REFERENCES with branches: got %s, want %s", got, want)
	}
	threads, err = c.UIDThread(&imapclient.ThreadOptions{Algorithm: imap.ThreadOrderedSubject,
		SearchCriteria: &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "To", Value: "bob"}}}}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(threads), "[{[1 4] []} {[5] []}]"; got != want {
		t.Errorf("UID THREAD ORDEREDSUBJECT: got %s, want %s", got, want)
	}
}

// TestSortThreadRaw: ESORT and PARTIAL answers, BADCHARSET, and sequence
// numbers after an expunge.
func TestSortThreadRaw(t *testing.T) {
	ts := newSortThreadServer(t)
	rc := ts.raw(t)
	rc.login("alice@example.org", "alicepw")
	rc.mustOK("SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		// 1 and 2 were sent at the same instant (10:00 UTC): sequence
		// order breaks the tie, ascending also under REVERSE.
		{"SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL", `* ESEARCH (TAG "T3") MIN 3 MAX 5 ALL 3,1:2,4:5 COUNT 5`},
		{"UID SORT RETURN (PARTIAL -1:-2) (REVERSE DATE) UTF-8 ALL", `* ESEARCH (TAG "T4") UID PARTIAL (-1:-2 2:3)`},
		{"SORT (ARRIVAL) UTF-8 SUBJECT lunch", "* SORT 1 2 4"},
		{"THREAD REFERENCES US-ASCII NOT SUBJECT agenda", "* THREAD (1 2 4)"},
	} {
		untagged, done := rc.cmd("%s", tc.cmd)
		want := tc.want
		if !slices.Contains(untagged, want) || !strings.HasPrefix(done, "OK ") {
			t.Errorf("%s: got %q %q, want %q", tc.cmd, untagged, done, want)
		}
	}
	if _, done := rc.cmd("SORT (SIZE) ISO-8859-1 ALL"); !strings.Contains(done, "NO [BADCHARSET (UTF-8 US-ASCII)]") {
		t.Errorf("other charset: %q", done)
	}
	rc.mustOK(`STORE 1 +FLAGS (\Deleted)`)
	rc.mustOK("EXPUNGE")
	if untagged, _ := rc.cmd("SORT (DATE) UTF-8 ALL"); !slices.Contains(untagged, "* SORT 2 1 3 4") {
		t.Errorf("after expunge: %q", untagged)
	}
	if untagged, _ := rc.cmd("THREAD REFERENCES UTF-8 ALL"); !slices.Contains(untagged, "* THREAD (2 4)(1 3)") {
		t.Errorf("THREAD after expunge: %q", untagged)
	}
}

// TestSortThreadPython: Python's imaplib, an independent client, sorts and
// threads.
func TestSortThreadPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	ts := newSortThreadServer(t)
	host, port, _ := strings.Cut(ts.addr, ":")
	script := `
import imaplib, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.login("alice@example.org", "alicepw")
m.select("INBOX")
print(m.sort("(REVERSE DATE)", "UTF-8", "ALL")[1][0].decode())
print(m.uid("SORT", "(SUBJECT)", "UTF-8", "ALL")[1][0].decode())
print(m.thread("REFERENCES", "UTF-8", "ALL")[1][0].decode())
m.logout()
`
	out, err := exec.Command("python3", "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	want := "5 4 1 2 3\n3 5 1 2 4\n(3 5)(1 2 4)\n"
	if string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
