package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// Backend tells the suite how to make stores of the backend under test.
type Backend struct {
	// Open returns a Store over new, empty storage, configured with cfg.
	// It is called once per subtest (and by concurrent subtests at once);
	// the suite closes the Store.
	Open func(t *testing.T, cfg Config) mailstore.Store
	// Reopen, if set, closes s and returns a Store over the same storage,
	// configured as s was: a restart of the process. Without it, the
	// tests of what survives a restart are skipped.
	Reopen func(t *testing.T, s mailstore.Store) mailstore.Store
	// Plant, if set, stores raw as a message of the mailbox behind the
	// store's back, the way a crash between storing a body and committing
	// its index entry, or an administrator restoring files, leaves it:
	// the store does not know of it until it reconciles. Without it, the
	// reconciliation tests are skipped (ReconcileAccount's also without a
	// Reconciler).
	Plant func(t *testing.T, s mailstore.Store, account string, mailboxID int64, raw []byte)
}

// Config is the configuration the suite asks a Backend for.
type Config struct {
	// Quota returns an account's quota in bytes (0: unlimited). The
	// suite changes the answer during a test, so the store must ask
	// again for every operation that checks the quota.
	Quota func(ctx context.Context, account string) (int64, error)
	// MessageQuota returns the most messages an account may hold (0:
	// unlimited), asked again as Quota is.
	MessageQuota func(ctx context.Context, account string) (int64, error)
}

// Reconciler is the optional interface of a Store that can bring one
// account's index in line with its stored messages while it runs (the
// maildir backend's Store has it); Store.Reconcile does every account.
// The suite checks for it with a type assertion.
type Reconciler interface {
	ReconcileAccount(ctx context.Context, name string) error
}

// Run runs the whole suite against b, as subtests of t named
// mailstore/<group>/<behaviour>. The groups run in parallel, so Backend's
// functions must be safe for concurrent use; Run returns when every
// subtest has finished.
func Run(t *testing.T, b Backend) {
	t.Helper()
	if b.Open == nil {
		t.Fatal("storetest: Backend.Open is nil")
	}
	groups := []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"Store", testStore},
		{"Mailboxes", testMailboxes},
		{"Append", testAppend},
		{"Fetch", testFetch},
		{"Flags", testFlags},
		{"Expunge", testExpunge},
		{"CopyMove", testCopyMove},
		{"Events", testEvents},
		{"Quota", testQuota},
		{"Search", testSearch},
		{"Recent", testRecent},
		{"Changes", testChanges},
		{"EmailID", testEmailID},
		{"Maildrop", testMaildrop},
		{"Errors", testErrors},
		{"Concurrency", testConcurrency},
		{"Restart", testRestart},
		{"Reconcile", testReconcile},
	}
	// The groups share nothing (each subtest has its own Store), and
	// stores mostly wait on their disk or database: they run side by
	// side, inside one subtest so that Run returns only when all are done.
	t.Run("mailstore", func(t *testing.T) {
		for _, g := range groups {
			t.Run(g.name, func(t *testing.T) {
				t.Parallel()
				g.run(t, b)
			})
		}
	})
}

// Accounts the suite uses. They are canonical addresses: lower case.
const (
	alice = "alice@example.org"
	bob   = "bob@example.org"
)

// fixture is one subtest's store.
type fixture struct {
	b     Backend
	store mailstore.Store
	quota atomic.Int64 // every account's quota; 0: unlimited
	// msgQuota is every account's message quota; 0: unlimited.
	msgQuota atomic.Int64
	opens    atomic.Int64 // handles opened, to tell leaked ones apart in errors
}

// newFixture opens a fresh store; it is closed when the test ends.
func newFixture(t *testing.T, b Backend) *fixture {
	t.Helper()
	f := &fixture{b: b}
	f.store = b.Open(t, Config{
		Quota: func(ctx context.Context, account string) (int64, error) {
			return f.quota.Load(), nil
		},
		MessageQuota: func(ctx context.Context, account string) (int64, error) {
			return f.msgQuota.Load(), nil
		},
	})
	if f.store == nil {
		t.Fatal("Backend.Open returned a nil Store")
	}
	t.Cleanup(func() { f.store.Close() }) // ErrClosed if the test closed it
	return f
}

// open opens a handle, closed when the test ends.
func (f *fixture) open(t *testing.T, name string) mailstore.Account {
	t.Helper()
	acc, err := f.store.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	f.opens.Add(1)
	t.Cleanup(func() { acc.Close() }) // ErrClosed if the test closed it
	return acc
}

// newAccount is how most subtests start: a fresh store with alice's account
// open.
func newAccount(t *testing.T, b Backend) (*fixture, mailstore.Account) {
	t.Helper()
	f := newFixture(t, b)
	return f, f.open(t, alice)
}

// newInbox is newAccount with alice's INBOX.
func newInbox(t *testing.T, b Backend) (*fixture, mailstore.Account, mailstore.Mailbox) {
	t.Helper()
	f, acc := newAccount(t, b)
	return f, acc, mailbox(t, acc, mailstore.Inbox)
}

// needReopen skips a test of restarts when the backend cannot restart.
func needReopen(t *testing.T, b Backend) {
	t.Helper()
	if b.Reopen == nil {
		t.Skip("Backend.Reopen not set")
	}
}

// reopen restarts the store (Backend.Reopen); the test is skipped when the
// backend cannot.
func (f *fixture) reopen(t *testing.T) {
	t.Helper()
	needReopen(t, f.b)
	f.store = f.b.Reopen(t, f.store)
	if f.store == nil {
		t.Fatal("Backend.Reopen returned a nil Store")
	}
}

// message returns a small RFC 5322 message with CRLF line endings.
func message(subject, body string) string {
	return "From: Bob <bob@example.net>\r\n" +
		"To: alice@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@example.net>\r\n" +
		"Date: Sat, 21 Nov 2026 10:00:00 +0100\r\n" +
		"\r\n" + body + "\r\n"
}

func deliver(t *testing.T, acc mailstore.Account, msg string) mailstore.AppendResult {
	t.Helper()
	res, err := acc.Deliver(t.Context(), strings.NewReader(msg), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	return res
}

// deliverN delivers msg n times.
func deliverN(t *testing.T, acc mailstore.Account, n int, msg string) {
	t.Helper()
	for range n {
		deliver(t, acc, msg)
	}
}

func appendMsg(t *testing.T, acc mailstore.Account, mailbox, msg string, opts mailstore.AppendOptions) mailstore.AppendResult {
	t.Helper()
	res, err := acc.Append(t.Context(), mailbox, strings.NewReader(msg), opts)
	if err != nil {
		t.Fatalf("Append(%q): %v", mailbox, err)
	}
	return res
}

func mailbox(t *testing.T, acc mailstore.Account, name string) mailstore.Mailbox {
	t.Helper()
	mb, err := acc.Mailbox(t.Context(), name)
	if err != nil {
		t.Fatalf("Mailbox(%q): %v", name, err)
	}
	return mb
}

func create(t *testing.T, acc mailstore.Account, name string) mailstore.Mailbox {
	t.Helper()
	mb, err := acc.CreateMailbox(t.Context(), name, mailstore.SpecialNone)
	if err != nil {
		t.Fatalf("CreateMailbox(%q): %v", name, err)
	}
	return mb
}

func snapshot(t *testing.T, acc mailstore.Account, id int64) mailstore.Snapshot {
	t.Helper()
	snap, err := acc.Snapshot(t.Context(), id)
	if err != nil {
		t.Fatalf("Snapshot(%d): %v", id, err)
	}
	return snap
}

func status(t *testing.T, acc mailstore.Account, id int64) mailstore.Status {
	t.Helper()
	st, err := acc.Status(t.Context(), id)
	if err != nil {
		t.Fatalf("Status(%d): %v", id, err)
	}
	return st
}

func fetch(t *testing.T, acc mailstore.Account, id int64, set imap.UIDSet, opts mailstore.FetchOptions) []mailstore.MessageInfo {
	t.Helper()
	infos, err := acc.Fetch(t.Context(), id, set, opts)
	if err != nil {
		t.Fatalf("Fetch(%d, %v): %v", id, set, err)
	}
	return infos
}

// fetchOne returns the index row of one message, which must exist.
func fetchOne(t *testing.T, acc mailstore.Account, id int64, uid imap.UID, opts mailstore.FetchOptions) mailstore.MessageInfo {
	t.Helper()
	infos := fetch(t, acc, id, imap.UIDSetNum(uid), opts)
	if len(infos) != 1 || infos[0].UID != uid {
		t.Fatalf("Fetch(%d, %d): got %d rows %v, want that message", id, uid, len(infos), infoUIDs(infos))
	}
	return infos[0]
}

func storeFlags(t *testing.T, acc mailstore.Account, id int64, set imap.UIDSet, op mailstore.FlagOp, flags ...imap.Flag) mailstore.StoreResult {
	t.Helper()
	res, err := acc.StoreFlags(t.Context(), id, set, op, flags, 0)
	if err != nil {
		t.Fatalf("StoreFlags(%d, %v, %d, %v): %v", id, set, op, flags, err)
	}
	return res
}

func expunge(t *testing.T, acc mailstore.Account, id int64, set *imap.UIDSet) []imap.UID {
	t.Helper()
	gone, err := acc.Expunge(t.Context(), id, set)
	if err != nil {
		t.Fatalf("Expunge(%d): %v", id, err)
	}
	return gone
}

// readMessage returns a message's bytes, checking the size OpenMessage
// reports against them.
func readMessage(t *testing.T, acc mailstore.Account, id int64, uid imap.UID) string {
	t.Helper()
	rc, size, err := acc.OpenMessage(t.Context(), id, uid)
	if err != nil {
		t.Fatalf("OpenMessage(%d, %d): %v", id, uid, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading message %d: %v", uid, err)
	}
	if int64(len(b)) != size {
		t.Fatalf("OpenMessage(%d, %d) reports %d bytes, reads %d", id, uid, size, len(b))
	}
	return string(b)
}

func snapUIDs(snap mailstore.Snapshot) []imap.UID {
	out := []imap.UID{}
	for _, m := range snap.Messages {
		out = append(out, m.UID)
	}
	return out
}

func infoUIDs(infos []mailstore.MessageInfo) []imap.UID {
	out := []imap.UID{}
	for _, m := range infos {
		out = append(out, m.UID)
	}
	return out
}

func mailboxNames(t *testing.T, acc mailstore.Account) []string {
	t.Helper()
	mbs, err := acc.ListMailboxes(t.Context())
	if err != nil {
		t.Fatalf("ListMailboxes: %v", err)
	}
	out := []string{}
	for _, mb := range mbs {
		out = append(out, mb.Name)
	}
	return out
}

// defaultNames are the names of DefaultMailboxes, sorted.
func defaultNames() []string {
	var out []string
	for _, d := range mailstore.DefaultMailboxes {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

// withDefaults returns the default mailbox names plus extra, sorted.
func withDefaults(extra ...string) []string {
	out := append(defaultNames(), extra...)
	slices.Sort(out)
	return out
}

// sameFlags compares flag lists as sets: the contract does not order
// them. System flags must be in their canonical spelling; keywords as
// stored.
func sameFlags(got, want []imap.Flag) bool {
	g := slices.Clone(got)
	w := slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

// checkConsistent checks that Status, Snapshot and Fetch agree on a
// mailbox: the same messages, counters, UIDNEXT and HIGHESTMODSEQ, and
// that every message's modseq and UID are within the mailbox's.
func checkConsistent(t *testing.T, acc mailstore.Account, id int64) {
	t.Helper()
	st := status(t, acc, id)
	snap := snapshot(t, acc, id)
	if snap.Mailbox.ID != id {
		t.Errorf("Snapshot(%d).Mailbox.ID = %d", id, snap.Mailbox.ID)
	}
	infos := fetch(t, acc, id, imap.UIDSet{{Start: 1, Stop: 0}}, mailstore.FetchOptions{})
	if !slices.Equal(snapUIDs(snap), infoUIDs(infos)) {
		t.Fatalf("mailbox %d: Snapshot UIDs %v, Fetch 1:* UIDs %v", id, snapUIDs(snap), infoUIDs(infos))
	}
	var unseen, deleted uint32
	var size int64
	var prev imap.UID
	for i, m := range snap.Messages {
		mi := infos[i]
		if m.UID <= prev {
			t.Errorf("mailbox %d: Snapshot UIDs not ascending: %d after %d", id, m.UID, prev)
		}
		prev = m.UID
		if m.UID >= snap.UIDNext {
			t.Errorf("mailbox %d: UID %d not below UIDNEXT %d", id, m.UID, snap.UIDNext)
		}
		if m.ModSeq == 0 || m.ModSeq > snap.HighestModSeq {
			t.Errorf("mailbox %d: UID %d modseq %d outside (0, %d]", id, m.UID, m.ModSeq, snap.HighestModSeq)
		}
		if m.ModSeq != mi.ModSeq || !sameFlags(m.Flags, mi.Flags) {
			t.Errorf("mailbox %d: UID %d Snapshot (%d %v) and Fetch (%d %v) differ", id, m.UID, m.ModSeq, m.Flags, mi.ModSeq, mi.Flags)
		}
		if !slices.Contains(m.Flags, imap.FlagSeen) {
			unseen++
		}
		if slices.Contains(m.Flags, imap.FlagDeleted) {
			deleted++
		}
		size += mi.Size
	}
	if st.RecentUID == 0 {
		t.Errorf("mailbox %d: RecentUID 0; UIDs start at 1", id)
	}
	var recent uint32
	for _, m := range snap.Messages {
		if m.UID >= st.RecentUID {
			recent++
		}
	}
	want := mailstore.Status{
		Messages: uint32(len(snap.Messages)), Unseen: unseen, Deleted: deleted, Recent: recent, Size: size,
		UIDNext: snap.UIDNext, UIDValidity: snap.Mailbox.UIDValidity, HighestModSeq: snap.HighestModSeq,
		RecentUID: st.RecentUID,
	}
	if st != want {
		t.Errorf("mailbox %d: Status %+v, Snapshot and Fetch say %+v", id, st, want)
	}
}

// checkUsage checks Usage against the sizes of every mailbox's messages.
func checkUsage(t *testing.T, acc mailstore.Account) {
	t.Helper()
	mbs, err := acc.ListMailboxes(t.Context())
	if err != nil {
		t.Fatalf("ListMailboxes: %v", err)
	}
	var sum int64
	for _, mb := range mbs {
		checkConsistent(t, acc, mb.ID)
		sum += status(t, acc, mb.ID).Size
	}
	used, _, err := acc.Usage(t.Context())
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if used != sum {
		t.Errorf("Usage = %d bytes, the mailboxes hold %d", used, sum)
	}
}

// recorder collects the events of a watch.
type recorder struct {
	mu     sync.Mutex
	events []mailstore.Event
	signal chan struct{} // closed and replaced on every event
}

// watch starts recording acc's events; the watch stops when the test ends.
func watch(t *testing.T, acc mailstore.Account) (*recorder, func()) {
	t.Helper()
	r := &recorder{signal: make(chan struct{})}
	stop := acc.Watch(func(e mailstore.Event) {
		e.Flags = slices.Clone(e.Flags)
		r.mu.Lock()
		r.events = append(r.events, e)
		close(r.signal)
		r.signal = make(chan struct{})
		r.mu.Unlock()
	})
	t.Cleanup(stop)
	return r, stop
}

// waitTimeout bounds how long the suite waits for an event that must come.
const waitTimeout = 10 * time.Second

// wait returns the first n events once they have arrived, failing the test
// if they do not within waitTimeout. Backends may deliver events after the
// call that committed them returns (another node's change, say), so the
// suite never assumes they are already there.
// mailboxEvents waits for n events, all of which must be EventMailboxes,
// and returns them with the set of mailbox IDs they name.
func mailboxEvents(t *testing.T, rec *recorder, n int) ([]mailstore.Event, map[int64]bool) {
	t.Helper()
	evs := rec.wait(t, n)
	ids := map[int64]bool{}
	for _, e := range evs {
		if e.Kind != mailstore.EventMailboxes {
			t.Errorf("event %+v, want EventMailboxes", e)
		}
		ids[e.MailboxID] = true
	}
	return evs, ids
}

func (r *recorder) wait(t *testing.T, n int) []mailstore.Event {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if len(r.events) >= n {
			out := slices.Clone(r.events[:n])
			r.mu.Unlock()
			return out
		}
		sig := r.signal
		have := len(r.events)
		r.mu.Unlock()
		select {
		case <-sig:
		case <-deadline.C:
			t.Fatalf("waited %v for %d events, have %d: %v", waitTimeout, n, have, r.all())
		}
	}
}

// waitUntil returns the events recorded once cond holds for them, failing
// the test if it does not within waitTimeout.
func (r *recorder) waitUntil(t *testing.T, cond func([]mailstore.Event) bool) []mailstore.Event {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		evs := slices.Clone(r.events)
		sig := r.signal
		r.mu.Unlock()
		if cond(evs) {
			return evs
		}
		select {
		case <-sig:
		case <-deadline.C:
			t.Fatalf("waited %v for events, have %v", waitTimeout, eventStrings(evs))
		}
	}
}

// all returns every event recorded so far.
func (r *recorder) all() []mailstore.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// reset forgets the events recorded so far.
func (r *recorder) reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// eventString renders events as "kind:mailbox:uid" for comparisons.
func eventString(e mailstore.Event) string {
	k := map[mailstore.EventKind]string{
		mailstore.EventAppend: "append", mailstore.EventFlags: "flags",
		mailstore.EventExpunge: "expunge", mailstore.EventMailboxes: "mailboxes",
	}[e.Kind]
	if k == "" {
		k = fmt.Sprintf("kind%d", e.Kind)
	}
	return fmt.Sprintf("%s:%d:%d", k, e.MailboxID, e.UID)
}

func eventStrings(es []mailstore.Event) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, eventString(e))
	}
	return out
}

// allUIDs is 1:*.
var allUIDs = imap.UIDSet{{Start: 1, Stop: 0}}
