package junk

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/certs/certstest"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/imapd"
	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

const (
	alice    = "alice@example.org"
	alicePW  = "alicepw"
	hostname = "mx.example.org"
)

// oneUser is an imapd.Authenticator that knows alice.
type oneUser struct{}

func (oneUser) Authenticate(_ context.Context, username, password string, _ netip.Addr) (auth.User, error) {
	if username != alice || password != alicePW {
		return auth.User{}, auth.ErrBadCredentials
	}
	return auth.User{Address: alice}, nil
}
func (oneUser) Mechanisms() []string { return nil }
func (oneUser) NewSASLServer(context.Context, string, netip.Addr, func(auth.User)) (sasl.Server, error) {
	return nil, auth.ErrBadCredentials
}

// env is a store, the statistics, a learner behind an IMAP server, and
// a delivery pipeline with the junk filter.
type env struct {
	t        testing.TB
	store    *maildir.Store
	dbPath   string
	db       *DB
	learner  *Learner
	pipeline *delivery.Pipeline
	addr     string
}

func newEnv(t testing.TB, learn bool) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := maildir.Open(ctx, filepath.Join(dir, "accounts"), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, store: store, dbPath: filepath.Join(dir, "junk.sqlite")}
	e.open()

	var imapStore imapd.Store = store
	if learn {
		imapStore = e.learner.Wrap(store)
	}
	srv, err := imapd.New(imapd.Options{
		Logger:           slog.New(slog.DiscardHandler),
		TLS:              certstest.Default().ServerConfig(certstest.Loopback...),
		LoopbackIsSecure: true,
		MaxAppendSize:    1 << 20,
		Store:            imapStore,
		Auth:             oneUser{},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return e
}

// open opens the database and starts a learner and a pipeline over it.
func (e *env) open() {
	t := e.t
	e.openDB()
	l, err := NewLearner(LearnerOptions{DB: e.db, Store: e.store, Hostname: hostname})
	if err != nil {
		t.Fatal(err)
	}
	l.Start()
	e.learner = l
	t.Cleanup(func() { e.close() })
}

// openDB opens the database and a pipeline over it; a restart of the
// filter calls it again after close.
func (e *env) openDB() {
	t := e.t
	db, err := OpenDB(context.Background(), e.dbPath, DBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFilter(FilterOptions{DB: db, Hostname: hostname})
	if err != nil {
		t.Fatal(err)
	}
	p, err := delivery.New(delivery.Options{Directory: oneDirectory{}, Store: delivery.MailStore(e.store), Filters: []delivery.Filter{f}})
	if err != nil {
		t.Fatal(err)
	}
	e.db, e.pipeline = db, p
}

// close stops the learner and closes the database (again: nothing).
func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.learner.Shutdown(ctx); err != nil {
		e.t.Error(err)
	}
	if e.db != nil {
		e.db.Close()
		e.db = nil
	}
}

// deliver hands a message to the pipeline as port 25 does.
func (e *env) deliver(msg []byte) {
	e.t.Helper()
	body := readerat.String("Received: from client.example ([192.0.2.1])\r\n\tby " + hostname + " (Posthouse) with ESMTP id 1\r\n\tfor <" + alice + ">; Mon, 02 Jan 2026 15:04:05 +0000\r\n" + string(msg))
	out := e.pipeline.Deliver(context.Background(), &delivery.Request{
		Envelope: delivery.Envelope{Source: delivery.SourceSMTP, ID: "t", From: "x@remote.example"},
		Rcpts:    []string{alice},
		Body:     body,
	})
	if len(out.Results) != 1 || out.Results[0].Err != nil {
		e.t.Fatalf("deliver: %+v", out.Results)
	}
}

// last returns the header field and the flags of the last message of a
// mailbox.
func (e *env) last(mailbox string) (field string, flags []imap.Flag) {
	e.t.Helper()
	ctx := context.Background()
	a, err := e.store.Open(ctx, alice)
	if err != nil {
		e.t.Fatal(err)
	}
	defer a.Close()
	mb, err := a.Mailbox(ctx, mailbox)
	if err != nil {
		e.t.Fatal(err)
	}
	snap, err := a.Snapshot(ctx, mb.ID)
	if err != nil || len(snap.Messages) == 0 {
		e.t.Fatalf("%s: %d messages, %v", mailbox, len(snap.Messages), err)
	}
	m := snap.Messages[len(snap.Messages)-1]
	rc, _, err := a.OpenMessage(ctx, mb.ID, m.UID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	h := parseHeader(e.t, b)
	return h.Get(HeaderName), m.Flags
}

func (e *env) count(mailbox string) int {
	e.t.Helper()
	ctx := context.Background()
	a, err := e.store.Open(ctx, alice)
	if err != nil {
		e.t.Fatal(err)
	}
	defer a.Close()
	mb, _ := a.Mailbox(ctx, mailbox)
	st, err := a.Status(ctx, mb.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(st.Messages)
}

// idle waits until the learner has carried out every action it took.
func (e *env) idle() {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for e.learner.queued.Load() != e.learner.finished.Load() {
		if time.Now().After(deadline) {
			e.t.Fatalf("learner busy: %d actions taken, %d done", e.learner.queued.Load(), e.learner.finished.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStats waits until alice's statistics say spam and ham.
func (e *env) waitStats(spam, ham int64) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := e.db.Stats(context.Background(), alice)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.Spam == spam && st.Ham == ham {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("statistics %+v, want %d spam and %d ham", st, spam, ham)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) client() *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialInsecure(e.addr, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Login(alice, alicePW).Wait(); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// noErr fails the test on an error.
func (e *env) noErr(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// ok fails the test on a call's error.
func (e *env) ok(_ any, err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

func uids(lo, hi uint32) imap.UIDSet {
	var s imap.UIDSet
	s.AddRange(imap.UID(lo), imap.UID(hi))
	return s
}

// TestLearnFromIMAP: the user trains the filter with MOVE and STORE over
// IMAP; then new mail like it is filed by the filter; a message moved out
// of Junk is unlearned as spam and learned as ham; each message is learned
// once per class; the statistics survive a restart.
func TestLearnFromIMAP(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	spam, ham := corpus(77, 30)

	// Before any training: a header that says so, and INBOX.
	for _, m := range spam {
		e.deliver(m)
	}
	if field, _ := e.last("INBOX"); field != "untrained; spam=0; ham=0" {
		t.Fatalf("untrained: field %q", field)
	}
	// Ham the filter (say) put into Junk.
	a, err := e.store.Open(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ham {
		e.ok(a.Deliver(ctx, bytes.NewReader(m), mailstore.DeliverOptions{Mailbox: "Junk"}))
	}
	a.Close()

	c := e.client()
	e.ok(c.Select("INBOX", nil).Wait())
	e.ok(c.Move(uids(1, 15), "Junk").Wait()) // Junk button (Outlook, Thunderbird)
	e.noErr(c.Store(uids(16, 30), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{JunkKeyword}}, nil).Close())
	e.ok(c.Select("Junk", nil).Wait())
	e.ok(c.Move(uids(1, 20), "INBOX").Wait()) // Not Junk, moved out
	e.noErr(c.Store(uids(21, 30), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{NotJunkKeyword}}, nil).Close())
	e.waitStats(30, 30)

	// New mail like it is filed.
	newSpam, newHam := corpus(78, 1)
	e.deliver(newSpam[0])
	field, flags := e.last("Junk")
	r, ok := ParseHeader(field)
	if !ok || r.Verdict != VerdictYes || r.Score < DefaultThreshold || !hasFlag(flags, JunkKeyword) {
		t.Fatalf("new spam in Junk: field %q, flags %v", field, flags)
	}
	inbox := e.count("INBOX")
	e.deliver(newHam[0])
	field, flags = e.last("INBOX")
	if r, ok := ParseHeader(field); !ok || r.Verdict != VerdictNo || r.Score >= DefaultThreshold || hasFlag(flags, JunkKeyword) || e.count("INBOX") != inbox+1 {
		t.Fatalf("new ham in INBOX: field %q, flags %v", field, flags)
	}

	// Re-classification: a learned spam (moved into Junk above: UID 31
	// there) moved out is unlearned as spam, learned as ham.
	e.ok(c.Select("Junk", nil).Wait())
	e.ok(c.Move(uids(31, 31), "INBOX").Wait())
	e.waitStats(29, 31)
	// A learned spam from Junk to Trash: says nothing.
	e.ok(c.Move(uids(32, 32), "Trash").Wait())
	e.idle()
	e.waitStats(29, 31)
	e.ok(c.Select("INBOX", nil).Wait())
	// Once per class: $Junk, then MOVE to Junk, counts one message.
	e.noErr(c.Store(uids(16, 16), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{JunkKeyword}}, nil).Close())
	e.ok(c.Move(uids(16, 16), "Junk").Wait())
	// And ham learned twice: $NotJunk on the messages moved out of Junk
	// (INBOX UIDs 31 to 50).
	st0, _ := e.db.Stats(ctx, alice)
	e.noErr(c.Store(uids(31, 50), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$NotJunk"}}, nil).Close())
	e.idle()
	e.waitStats(29, 31)
	if st, _ := e.db.Stats(ctx, alice); st != st0 {
		t.Errorf("stats %+v, were %+v: relearned", st, st0)
	}

	// Restart: the statistics are where they were, and so are verdicts.
	e.close()
	e.openDB()
	e.waitStats(29, 31)
	e.deliver(newSpam[0])
	if field, _ := e.last("Junk"); !strings.HasPrefix(field, "yes;") {
		t.Fatalf("after restart: field %q", field)
	}
}

// TestSenderReputation: someone the user wrote to (a message APPENDed to
// Sent) is not filed as junk, unless our authentication checks failed.
func TestSenderReputation(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	tok := &Tokenizer{Hostname: hostname}
	spam, ham := corpus(91, 25)
	for i := range spam {
		for j, m := range [][]byte{spam[i], ham[i]} {
			f := tokenize(t, tok, m)
			e.ok(e.db.Learn(ctx, alice, key(i*2+j), Class(2-j), f.Hashes()))
			f.release()
		}
	}
	c := e.client()
	sent := "From: Alice <alice@example.org>\r\nTo: Friend <Friend@Win-Big.example>, other@example.net\r\nCc: cc@example.net\r\nBcc: hidden@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
	ap := c.Append("Sent", int64(len(sent)), nil)
	ap.Write([]byte(sent))
	ap.Close()
	e.ok(ap.Wait())
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ok, _ := e.db.IsCorrespondent(ctx, alice, "friend@win-big.example"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("correspondent not recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, a := range []string{"other@example.net", "cc@example.net", "hidden@example.net"} {
		if ok, _ := e.db.IsCorrespondent(ctx, alice, a); !ok {
			t.Errorf("%s not recorded", a)
		}
	}
	// Spam-like words from the friend: INBOX, trusted.
	probe, _ := corpus(92, 1)
	friendly := replaceFrom(probe[0], "From: Friend <friend@win-big.example>")
	e.deliver(friendly)
	if field, flags := e.last("INBOX"); !strings.HasPrefix(field, "no;") || !strings.Contains(field, "sender=trusted") || hasFlag(flags, JunkKeyword) {
		t.Fatalf("correspondent's message: field %q, flags %v", field, flags)
	}
	// The same with our DMARC check failed: not believed.
	e.deliver(append([]byte("Authentication-Results: "+hostname+"; dmarc=fail header.from=win-big.example\r\n"), friendly...))
	if field, _ := e.last("Junk"); !strings.HasPrefix(field, "yes;") {
		t.Fatalf("spoofed correspondent: field %q", field)
	}
	// Passed: believed.
	e.deliver(append([]byte("Authentication-Results: "+hostname+"; spf=pass smtp.mailfrom=win-big.example;\r\n dkim=pass header.d=win-big.example; dmarc=pass header.from=win-big.example\r\n"), friendly...))
	if field, _ := e.last("INBOX"); !strings.Contains(field, "sender=trusted") {
		t.Fatalf("authenticated correspondent: field %q", field)
	}
	// A stranger with the same words: Junk.
	e.deliver(replaceFrom(probe[0], "From: Stranger <stranger@win-big.example>"))
	if field, _ := e.last("Junk"); !strings.HasPrefix(field, "yes;") || strings.Contains(field, "trusted") {
		t.Fatalf("stranger: field %q", field)
	}
	// Our DMARC failure as the inbound filter before it adds it (a field
	// of the verdict, not yet in the message): not believed either.
	f, err := NewFilter(FilterOptions{DB: e.db, Hostname: hostname})
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline, err = delivery.New(delivery.Options{Directory: oneDirectory{}, Store: delivery.MailStore(e.store),
		Filters: []delivery.Filter{addsField{"Authentication-Results", hostname + ";\r\n\tdmarc=fail header.from=win-big.example"}, f}})
	if err != nil {
		t.Fatal(err)
	}
	e.deliver(friendly)
	if field, _ := e.last("Junk"); !strings.HasPrefix(field, "yes;") {
		t.Fatalf("correspondent failing DMARC in an earlier filter's field: %q", field)
	}
}

// addsField is a filter that adds one field for every recipient.
type addsField struct{ name, value string }

func (addsField) Name() string { return "adds" }
func (a addsField) Check(context.Context, *delivery.Message) (delivery.Decision, error) {
	return delivery.Decision{All: delivery.Verdict{Headers: []delivery.Field{{Name: a.name, Value: a.value}}}}, nil
}

func replaceFrom(msg []byte, from string) []byte {
	lines := strings.SplitN(string(msg), "\r\n", 2)
	if !strings.HasPrefix(lines[0], "From:") {
		panic("first field is not From")
	}
	return []byte(from + "\r\n" + lines[1])
}

// TestClassifiedSources: which messages get a verdict, by where they
// came from.
func TestClassifiedSources(t *testing.T) {
	db := openTestDB(t, "", DBOptions{})
	f, err := NewFilter(FilterOptions{DB: db, Hostname: hostname})
	if err != nil {
		t.Fatal(err)
	}
	ours := func(proto string) string {
		return "Received: from c ([192.0.2.1])\r\n\tby " + hostname + " (Posthouse) with " + proto + " id 1; Mon, 02 Jan 2026 15:04:05 +0000\r\n"
	}
	tests := []struct {
		name   string
		source delivery.Source
		header string
		want   bool
	}{
		{"port 25", delivery.SourceSMTP, "", true},
		{"submission", delivery.SourceSubmission, ours("ESMTPSA"), false},
		{"submissions", delivery.SourceSubmissions, ours("ESMTPSA"), false},
		{"queue retry of inbound mail", delivery.SourceQueue, ours("ESMTPS"), true},
		{"queue retry of inbound mail, no TLS", delivery.SourceQueue, ours("ESMTP"), true},
		{"queue retry of a user's mail", delivery.SourceQueue, ours("ESMTPSA"), false},
		{"queue report", delivery.SourceQueue, "", false},
		{"queue, someone else's Received", delivery.SourceQueue, "Received: from x by other.example (Posthouse) with ESMTP id 1; x\r\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := parseHeader(t, []byte(tc.header+"Subject: x\r\n\r\nbody\r\n"))
			if got := f.classifies(delivery.Envelope{Source: tc.source}, h); got != tc.want {
				t.Errorf("classifies = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLearnerQueueBounded: a full queue drops actions rather than
// blocking the IMAP command; Shutdown returns without the worker.
func TestLearnerQueueBounded(t *testing.T) {
	db := openTestDB(t, "", DBOptions{})
	l, err := NewLearner(LearnerOptions{DB: db, Store: noStore{}, QueueSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		l.enqueue(action{account: alice, kind: actAppend, dest: int64(i), uids: []imap.UID{1}})
	}
	if l.Dropped() != 3 {
		t.Errorf("dropped %d, want 3", l.Dropped())
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.enqueue(action{account: alice}) // after shutdown: ignored
	if l.Dropped() != 3 {
		t.Errorf("dropped %d after shutdown", l.Dropped())
	}
}

// noStore has no accounts: the bounded-queue test never gets to open one.
type noStore struct{}

func (noStore) Open(context.Context, string) (mailstore.Account, error) {
	return nil, mailstore.ErrNoSuchAccount
}

// countingOpener counts the opening of each account.
type countingOpener struct {
	Opener
	mu    sync.Mutex
	opens map[string]int
}

func (o *countingOpener) Open(ctx context.Context, name string) (mailstore.Account, error) {
	o.mu.Lock()
	o.opens[name]++
	o.mu.Unlock()
	return o.Opener.Open(ctx, name)
}

// TestLearnerBatchesByAccount: the actions queued meanwhile are taken
// together, one opening of each account for all of its actions (one that
// cannot be opened fails its own), and each is still carried out.
func TestLearnerBatchesByAccount(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	spam, _ := corpus(5, 3)
	a, err := e.store.Open(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	var junkUIDs []imap.UID
	var junkID, inboxID int64
	for _, m := range spam {
		res, err := a.Deliver(ctx, bytes.NewReader(m), mailstore.DeliverOptions{Mailbox: "Junk"})
		if err != nil {
			t.Fatal(err)
		}
		junkUIDs, junkID = append(junkUIDs, res.UID), res.MailboxID
	}
	inbox, err := a.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	inboxID = inbox.ID
	a.Close()

	if err := e.learner.Shutdown(ctx); err != nil { // the env's own
		t.Fatal(err)
	}
	o := &countingOpener{Opener: e.store, opens: map[string]int{}}
	l, err := NewLearner(LearnerOptions{DB: e.db, Store: o, Hostname: hostname})
	if err != nil {
		t.Fatal(err)
	}
	// Queued before the worker starts: one batch. APPENDs into INBOX
	// teach nothing; each one into Junk teaches a spam.
	for i := range 20 {
		l.enqueue(action{account: alice, kind: actAppend, dest: inboxID, uids: []imap.UID{imap.UID(100 + i)}})
		if i%7 == 0 {
			l.enqueue(action{account: "nobody@example.org", kind: actAppend, dest: 1, uids: []imap.UID{1}})
		}
	}
	for _, uid := range junkUIDs {
		l.enqueue(action{account: alice, kind: actAppend, dest: junkID, uids: []imap.UID{uid}})
	}
	l.Start()
	e.learner = l // e.close shuts it down
	e.idle()
	e.waitStats(int64(len(junkUIDs)), 0)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.opens[alice] != 1 || o.opens["nobody@example.org"] != 1 {
		t.Errorf("opens %v, want each account once", o.opens)
	}
}
