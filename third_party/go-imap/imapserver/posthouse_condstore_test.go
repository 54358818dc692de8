package imapserver_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// condStoreSession is the in-memory session with a fixed HIGHESTMODSEQ,
// recording what the CONDSTORE commands asked of it.
type condStoreSession struct {
	*imapmemserver.UserSession
	modSeq uint64
}

func (s *condStoreSession) HighestModSeq() (uint64, error) { return s.modSeq, nil }

func (s *condStoreSession) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	data, err := s.UserSession.Status(name, options)
	if err == nil {
		data.HighestModSeq = s.modSeq
	}
	return data, err
}

// rawConn speaks raw IMAP to a test server.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
	addr string
}

// cmd sends one command and returns the lines up to and including the
// tagged reply, whose tag is replaced by "T".
func (c *rawConn) cmd(line string) []string {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("A%d", c.n)
	if _, err := c.conn.Write([]byte(tag + " " + line + "\r\n")); err != nil {
		c.t.Fatal(err)
	}
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%s: after %q: %v", line, lines, err)
		}
		l = strings.TrimRight(l, "\r\n")
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return append(lines, "T "+rest)
		}
		lines = append(lines, l)
	}
}

// newCondStoreServer serves sessions (made by newSession over a user with
// three messages in INBOX) with caps, and returns a connected client.
func newCondStoreServer(t *testing.T, caps imap.CapSet, newSession func(*imapmemserver.User) imapserver.Session) *rawConn {
	t.Helper()
	user := imapmemserver.NewUser("user", "pass")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\nbody\r\n", i)
		if _, err := user.Append("INBOX", bytes.NewReader([]byte(msg)), &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return newSession(user), &imapserver.GreetingData{PreAuth: true}, nil
		},
		InsecureAuth: true,
		Caps:         caps,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return dialRaw(t, ln.Addr().String())
}

// dialRaw connects to a test server that greets with PREAUTH.
func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* PREAUTH") {
		t.Fatalf("greeting: %q %v", l, err)
	}
	return &rawConn{t: t, conn: conn, r: r, addr: addr}
}

func condStoreCaps(extra ...imap.Cap) imap.CapSet {
	caps := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	for _, c := range extra {
		caps[c] = struct{}{}
	}
	return caps
}

func checkLines(t *testing.T, name string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", name, got, want)
	}
}

// TestEnableCondStore: ENABLE CONDSTORE and QRESYNC when advertised; the
// first CONDSTORE-enabling command in the selected state reports
// HIGHESTMODSEQ (RFC 7162 §3.1); STATUS HIGHESTMODSEQ (Posthouse patch).
func TestEnableCondStore(t *testing.T) {
	session := func(user *imapmemserver.User) imapserver.Session {
		return &condStoreSession{UserSession: imapmemserver.NewUserSession(user), modSeq: 42}
	}

	c := newCondStoreServer(t, condStoreCaps(), session)
	checkLines(t, "not advertised", c.cmd("ENABLE CONDSTORE QRESYNC"), []string{"* ENABLED", "T OK ENABLE completed"})
	if got := c.cmd("STATUS INBOX (HIGHESTMODSEQ)"); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
		t.Errorf("STATUS HIGHESTMODSEQ without CONDSTORE: %q", got)
	}

	c = newCondStoreServer(t, condStoreCaps(imap.CapCondStore, imap.CapQResync), session)
	if got := c.cmd("CAPABILITY"); !strings.HasSuffix(got[0], " CONDSTORE QRESYNC") {
		t.Errorf("CAPABILITY: %q", got)
	}
	checkLines(t, "status", c.cmd("STATUS INBOX (MESSAGES HIGHESTMODSEQ)"),
		[]string{"* STATUS INBOX (MESSAGES 3 HIGHESTMODSEQ 42)", "T OK STATUS completed"})
	checkLines(t, "enable qresync", c.cmd("ENABLE QRESYNC"), []string{"* ENABLED QRESYNC", "T OK ENABLE completed"})

	c = newCondStoreServer(t, condStoreCaps(imap.CapCondStore), session)
	if got := c.cmd("SELECT INBOX"); got[len(got)-1] != "T OK [READ-WRITE] SELECT completed" {
		t.Fatalf("select: %q", got)
	}
	checkLines(t, "enable in selected state", c.cmd("ENABLE CONDSTORE QRESYNC"),
		[]string{"* ENABLED CONDSTORE", "* OK [HIGHESTMODSEQ 42] Highest", "T OK ENABLE completed"})
	checkLines(t, "enabled again", c.cmd("ENABLE CONDSTORE"), []string{"* ENABLED CONDSTORE", "T OK ENABLE completed"})
}

// fetchModSeqSession answers FETCH for message 1 with its MODSEQ, and
// VANISHED (EARLIER) 7:9 when asked for it.
type fetchModSeqSession struct {
	condStoreSession
	got *imap.FetchOptions
}

func (s *fetchModSeqSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	s.got = options
	if options.Vanished {
		if err := w.WriteVanished(imap.UIDSet{{Start: 7, Stop: 9}}); err != nil {
			return err
		}
	}
	rw := w.CreateMessage(1)
	if options.UID {
		rw.WriteUID(1)
	}
	if options.ModSeq {
		rw.WriteModSeq(50)
	}
	return rw.Close()
}

// TestFetchModSeq: the MODSEQ item and the CHANGEDSINCE and VANISHED
// modifiers reach the session, within RFC 7162's rules (Posthouse patch).
func TestFetchModSeq(t *testing.T) {
	var sess *fetchModSeqSession
	c := newCondStoreServer(t, condStoreCaps(imap.CapCondStore, imap.CapQResync), func(user *imapmemserver.User) imapserver.Session {
		sess = &fetchModSeqSession{condStoreSession: condStoreSession{UserSession: imapmemserver.NewUserSession(user), modSeq: 42}}
		return sess
	})
	c.cmd("SELECT INBOX")
	checkLines(t, "fetch modseq", c.cmd("FETCH 1 (MODSEQ)"),
		[]string{"* OK [HIGHESTMODSEQ 42] Highest", "* 1 FETCH (MODSEQ (50))", "T OK FETCH completed"})
	checkLines(t, "changedsince", c.cmd("FETCH 1 (FLAGS) (CHANGEDSINCE 12)"),
		[]string{"* 1 FETCH (MODSEQ (50))", "T OK FETCH completed"})
	if sess.got.ChangedSince != 12 || !sess.got.ModSeq || !sess.got.Flags || sess.got.Vanished {
		t.Errorf("CHANGEDSINCE options: %+v", sess.got)
	}
	for _, bad := range []string{
		"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12 VANISHED)", // no ENABLE QRESYNC yet
		"FETCH 1 (FLAGS) (FOO 1)",
		"FETCH 1 (FLAGS) (CHANGEDSINCE x)",
		"FETCH 1 (FLAGS) (CHANGEDSINCE 0)",
	} {
		if got := c.cmd(bad); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: %q, want BAD", bad, got)
		}
	}
	checkLines(t, "enable", c.cmd("ENABLE QRESYNC"), []string{"* ENABLED QRESYNC", "T OK ENABLE completed"})
	for _, bad := range []string{
		"FETCH 1:* (FLAGS) (CHANGEDSINCE 12 VANISHED)",
		"UID FETCH 1:* (FLAGS) (VANISHED)",
	} {
		if got := c.cmd(bad); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: %q, want BAD", bad, got)
		}
	}
	checkLines(t, "vanished", c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12 VANISHED)"),
		[]string{"* VANISHED (EARLIER) 7:9", "* 1 FETCH (UID 1 MODSEQ (50))", "T OK UID FETCH completed"})
	if !sess.got.Vanished || sess.got.ChangedSince != 12 {
		t.Errorf("VANISHED options: %+v", sess.got)
	}

	plain := newCondStoreServer(t, condStoreCaps(), func(user *imapmemserver.User) imapserver.Session {
		return &fetchModSeqSession{condStoreSession: condStoreSession{UserSession: imapmemserver.NewUserSession(user)}}
	})
	plain.cmd("SELECT INBOX")
	if got := plain.cmd("FETCH 1 (MODSEQ)"); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
		t.Errorf("MODSEQ without CONDSTORE: %q", got)
	}
}

// storeModSeqSession records STORE's options; a conditional STORE
// reports message 2 as modified.
type storeModSeqSession struct {
	condStoreSession
	got *imap.StoreOptions
}

func (s *storeModSeqSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	s.got = options
	if options.Conditional {
		return imapserver.ModifiedError(imap.SeqSetNum(2))
	}
	return nil
}

// TestStoreUnchangedSince: STORE (UNCHANGEDSINCE n) reaches the session,
// UNCHANGEDSINCE 0 included, and its MODIFIED reply is a tagged OK
// (Posthouse patch).
func TestStoreUnchangedSince(t *testing.T) {
	var sess *storeModSeqSession
	c := newCondStoreServer(t, condStoreCaps(imap.CapCondStore), func(user *imapmemserver.User) imapserver.Session {
		sess = &storeModSeqSession{condStoreSession: condStoreSession{UserSession: imapmemserver.NewUserSession(user), modSeq: 42}}
		return sess
	})
	c.cmd("SELECT INBOX")
	checkLines(t, "unconditional", c.cmd(`STORE 1:3 +FLAGS (\Seen)`), []string{"T OK STORE completed"})
	if sess.got.Conditional {
		t.Errorf("plain STORE: %+v", sess.got)
	}
	checkLines(t, "unchangedsince", c.cmd(`STORE 1:3 (UNCHANGEDSINCE 17) +FLAGS.SILENT (\Seen)`),
		[]string{"* OK [HIGHESTMODSEQ 42] Highest", "T OK [MODIFIED 2] Conditional STORE failed"})
	if !sess.got.Conditional || sess.got.UnchangedSince != 17 {
		t.Errorf("UNCHANGEDSINCE 17: %+v", sess.got)
	}
	checkLines(t, "unchangedsince 0", c.cmd(`UID STORE 1:3 (unchangedsince 0) FLAGS (\Seen)`),
		[]string{"T OK [MODIFIED 2] Conditional STORE failed"})
	if !sess.got.Conditional || sess.got.UnchangedSince != 0 {
		t.Errorf("UNCHANGEDSINCE 0: %+v", sess.got)
	}
	for _, bad := range []string{`STORE 1 (FOO 1) +FLAGS (\Seen)`, `STORE 1 (UNCHANGEDSINCE) +FLAGS (\Seen)`, `STORE 1 (UNCHANGEDSINCE 1)+FLAGS (\Seen)`} {
		if got := c.cmd(bad); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: %q, want BAD", bad, got)
		}
	}
}

// searchModSeqSession finds messages 1 and 3 and reports modseq 77 when
// the criteria have MODSEQ.
type searchModSeqSession struct {
	condStoreSession
	got *imap.SearchCriteria
}

func (s *searchModSeqSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	s.got = criteria
	data := &imap.SearchData{All: imap.SeqSetNum(1, 3), Min: 1, Max: 3, Count: 2}
	if criteria.ModSeq != nil || len(criteria.Not) > 0 {
		data.ModSeq = 77
	}
	return data, nil
}

// TestSearchModSeq: the MODSEQ search key with and without an entry, the
// (MODSEQ n) of SEARCH and ESEARCH (Posthouse patch).
func TestSearchModSeq(t *testing.T) {
	var sess *searchModSeqSession
	c := newCondStoreServer(t, condStoreCaps(imap.CapCondStore, imap.CapESearch), func(user *imapmemserver.User) imapserver.Session {
		sess = &searchModSeqSession{condStoreSession: condStoreSession{UserSession: imapmemserver.NewUserSession(user), modSeq: 42}}
		return sess
	})
	c.cmd("SELECT INBOX")
	checkLines(t, "plain", c.cmd("SEARCH ALL"), []string{"* SEARCH 1 3", "T OK SEARCH completed"})
	checkLines(t, "modseq", c.cmd("SEARCH MODSEQ 5"),
		[]string{"* OK [HIGHESTMODSEQ 42] Highest", "* SEARCH 1 3 (MODSEQ 77)", "T OK SEARCH completed"})
	if sess.got.ModSeq == nil || *sess.got.ModSeq != (imap.SearchCriteriaModSeq{ModSeq: 5}) {
		t.Errorf("MODSEQ 5: %+v", sess.got.ModSeq)
	}
	checkLines(t, "esearch", c.cmd(`SEARCH RETURN (MIN COUNT) 1:3 MODSEQ "/flags/\\seen" all 9 MODSEQ 6`),
		[]string{"* ESEARCH (TAG \"A4\") MIN 1 COUNT 2 MODSEQ 77", "T OK SEARCH completed"})
	want := imap.SearchCriteriaModSeq{ModSeq: 9, MetadataName: `/flags/\seen`, MetadataType: imap.SearchCriteriaMetadataAll}
	if sess.got.ModSeq == nil || *sess.got.ModSeq != want {
		t.Errorf("MODSEQ with entry: %+v, want %+v", sess.got.ModSeq, want)
	}
	checkLines(t, "nested", c.cmd("SEARCH NOT MODSEQ 5"), []string{"* SEARCH 1 3 (MODSEQ 77)", "T OK SEARCH completed"})
	for _, bad := range []string{`SEARCH MODSEQ`, `SEARCH MODSEQ "/flags/\\seen" 5`, `SEARCH MODSEQ "/flags/\\seen" other 5`, `SEARCH MODSEQ x`} {
		if got := c.cmd(bad); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: %q, want BAD", bad, got)
		}
	}
}

// qresyncSession answers SELECT (QRESYNC …) with VANISHED (EARLIER) 3:4
// and a FETCH of message 1.
type qresyncSession struct {
	condStoreSession
	got      *imap.SelectQResync
	selected *imap.SelectOptions
}

func (s *qresyncSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.selected = options
	data, err := s.condStoreSession.Select(name, options)
	if err == nil {
		data.HighestModSeq = s.modSeq
	}
	return data, err
}

func (s *qresyncSession) ResyncSelect(w *imapserver.FetchWriter, options *imap.SelectQResync) error {
	s.got = options
	if err := w.WriteVanished(imap.UIDSet{{Start: 3, Stop: 4}}); err != nil {
		return err
	}
	rw := w.CreateMessage(1)
	rw.WriteUID(1)
	rw.WriteFlags([]imap.Flag{imap.FlagSeen})
	rw.WriteModSeq(50)
	return rw.Close()
}

// TestSelectQResync: SELECT (CONDSTORE) and SELECT/EXAMINE (QRESYNC (…))
// with each optional part, the CLOSED code when switching mailboxes, and
// the session's resync responses before the tagged OK (Posthouse patch).
func TestSelectQResync(t *testing.T) {
	var sess *qresyncSession
	c := newCondStoreServer(t, condStoreCaps(imap.CapCondStore, imap.CapQResync), func(user *imapmemserver.User) imapserver.Session {
		sess = &qresyncSession{condStoreSession: condStoreSession{UserSession: imapmemserver.NewUserSession(user), modSeq: 42}}
		return sess
	})
	if got := c.cmd("SELECT INBOX (QRESYNC (1 2))"); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
		t.Errorf("QRESYNC before ENABLE: %q", got)
	}
	got := c.cmd("SELECT INBOX (CONDSTORE)")
	if got[len(got)-1] != "T OK [READ-WRITE] SELECT completed" || !sess.selected.CondStore || !slices.Contains(got, "* OK [HIGHESTMODSEQ 42] Highest") {
		t.Errorf("SELECT (CONDSTORE): %q, options %+v", got, sess.selected)
	}
	c.cmd("ENABLE QRESYNC")
	for _, tc := range []struct {
		line string
		want imap.SelectQResync
	}{
		{"EXAMINE INBOX (QRESYNC (67890007 20050715194045000))", imap.SelectQResync{UIDValidity: 67890007, ModSeq: 20050715194045000}},
		{"SELECT INBOX (QRESYNC (5 9 41,43:116))", imap.SelectQResync{UIDValidity: 5, ModSeq: 9, KnownUIDs: imap.UIDSet{{Start: 41, Stop: 41}, {Start: 43, Stop: 116}}}},
		{"SELECT INBOX (QRESYNC (5 9 1:* (1:2 10,20)))", imap.SelectQResync{UIDValidity: 5, ModSeq: 9, KnownUIDs: imap.UIDSet{{Start: 1, Stop: 0}},
			SeqMatch: &imap.SelectSeqMatch{SeqNums: imap.SeqSet{{Start: 1, Stop: 2}}, UIDs: imap.UIDSet{{Start: 10, Stop: 10}, {Start: 20, Stop: 20}}}}},
		{"SELECT INBOX (QRESYNC (5 9 (1:2 10,20)))", imap.SelectQResync{UIDValidity: 5, ModSeq: 9,
			SeqMatch: &imap.SelectSeqMatch{SeqNums: imap.SeqSet{{Start: 1, Stop: 2}}, UIDs: imap.UIDSet{{Start: 10, Stop: 10}, {Start: 20, Stop: 20}}}}},
	} {
		got := c.cmd(tc.line)
		n := len(got)
		if n < 4 || got[0] != "* OK [CLOSED] Previous mailbox is now closed" ||
			!slices.Equal(got[n-3:n-1], []string{"* VANISHED (EARLIER) 3:4", `* 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (50))`}) ||
			!strings.HasPrefix(got[n-1], "T OK [READ-") {
			t.Errorf("%s: %q", tc.line, got)
		}
		if sess.got == nil || !reflect.DeepEqual(*sess.got, tc.want) {
			t.Errorf("%s: session got %+v, want %+v", tc.line, sess.got, tc.want)
		}
		sess.got = nil
	}
	for _, bad := range []string{
		"SELECT INBOX (QRESYNC (0 9))", "SELECT INBOX (QRESYNC (5))", "SELECT INBOX (QRESYNC (5 9 1:3 (1:2)))",
		"SELECT INBOX (FOO)", "SELECT INBOX ()",
	} {
		if got := c.cmd(bad); len(got) != 1 || !strings.HasPrefix(got[0], "T BAD") {
			t.Errorf("%s: %q, want BAD", bad, got)
		}
	}
}

// trackerSession polls its own tracker.
type trackerSession struct {
	condStoreSession
	tracker *imapserver.SessionTracker
}

func (s *trackerSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	return s.tracker.Poll(w, allowExpunge)
}

// TestTrackerVanishedModSeq: after ENABLE QRESYNC, a run of expunges is one
// VANISHED response and flag updates carry MODSEQ; a session that enabled
// nothing still gets EXPUNGE and plain FETCH FLAGS (Posthouse patch).
func TestTrackerVanishedModSeq(t *testing.T) {
	mailbox := imapserver.NewMailboxTracker(3)
	trackers := make(chan *imapserver.SessionTracker, 2)
	trackers <- mailbox.NewSession()
	trackers <- mailbox.NewSession()
	c1 := newCondStoreServer(t, condStoreCaps(imap.CapQResync), func(user *imapmemserver.User) imapserver.Session {
		return &trackerSession{condStoreSession: condStoreSession{UserSession: imapmemserver.NewUserSession(user)}, tracker: <-trackers}
	})
	c2 := dialRaw(t, c1.addr)
	checkLines(t, "enable", c1.cmd("ENABLE QRESYNC"), []string{"* ENABLED QRESYNC", "T OK ENABLE completed"})
	c2.cmd("NOOP")

	mailbox.QueueMessageFlagsModSeq(1, 1, []imap.Flag{imap.FlagSeen}, 9, nil)
	mailbox.QueueExpungeUID(3, 3)
	mailbox.QueueExpungeUID(2, 2)
	mailbox.QueueNumMessages(2)
	mailbox.QueueExpunge(1)
	checkLines(t, "qresync", c1.cmd("NOOP"), []string{
		`* 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ (9))`, "* VANISHED 2:3", "* 2 EXISTS", "* 1 EXPUNGE", "T OK NOOP completed"})
	checkLines(t, "plain", c2.cmd("NOOP"), []string{
		`* 1 FETCH (UID 1 FLAGS (\Seen))`, "* 3 EXPUNGE", "* 2 EXPUNGE", "* 2 EXISTS", "* 1 EXPUNGE", "T OK NOOP completed"})
}
