package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

const otherAccount = "bob@example.org"

// msgState is one message as a client sees it, keyed by its subject.
type msgState struct {
	mailbox string
	uid     imap.UID
	flags   string
}

type mboxState struct {
	uidValidity uint32
	uidNext     imap.UID
	modSeq      uint64
}

// accountState reads every mailbox and message of an account, checking
// that no subject appears twice.
func accountState(t *testing.T, acc mailstore.Account) (map[string]msgState, map[string]mboxState) {
	t.Helper()
	ctx := context.Background()
	mbs, err := acc.ListMailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[string]msgState{}
	boxes := map[string]mboxState{}
	for _, mb := range mbs {
		snap, err := acc.Snapshot(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		boxes[mb.Name] = mboxState{snap.Mailbox.UIDValidity, snap.UIDNext, snap.HighestModSeq}
		if len(snap.Messages) == 0 {
			continue
		}
		infos, err := acc.Fetch(ctx, mb.ID, imap.UIDSet{{Start: snap.Messages[0].UID, Stop: snap.Messages[len(snap.Messages)-1].UID}}, mailstore.FetchOptions{Envelope: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(infos) != len(snap.Messages) {
			t.Fatalf("%s: fetch gave %d rows for %d messages", mb.Name, len(infos), len(snap.Messages))
		}
		for _, in := range infos {
			subj := in.Envelope.Subject
			if old, dup := msgs[subj]; dup {
				t.Errorf("message %q twice: %s/%d and %s/%d", subj, old.mailbox, old.uid, mb.Name, in.UID)
			}
			var fl []string
			for _, f := range in.Flags {
				fl = append(fl, string(f))
			}
			slices.Sort(fl)
			msgs[subj] = msgState{mailbox: mb.Name, uid: in.UID, flags: strings.Join(fl, " ")}
		}
	}
	return msgs, boxes
}

// fillAccount gives an account messages in two mailboxes with various
// flags, and subscribes to one.
func fillAccount(t *testing.T, s *Store, name string, n int) {
	t.Helper()
	ctx := context.Background()
	acc, err := s.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	inbox := inboxID(t, acc)
	for i := 0; i < n; i++ {
		deliver(t, acc, testMessage(fmt.Sprintf("%s inbox %d", name, i), strings.Repeat("body line\r\n", i%7+1)))
	}
	ops := []struct {
		every int
		flags []imap.Flag
	}{{2, []imap.Flag{imap.FlagSeen}}, {3, []imap.Flag{imap.FlagFlagged}}, {5, []imap.Flag{"$Label1", imap.FlagAnswered}}}
	for _, op := range ops {
		var set imap.UIDSet
		for i := 0; i < n; i += op.every {
			set.AddNum(imap.UID(i + 1))
		}
		if _, err := acc.StoreFlags(ctx, inbox, set, mailstore.FlagsAdd, op.flags, 0); err != nil {
			t.Fatal(err)
		}
	}
	// Expunge one, so UIDs have a gap.
	if _, err := acc.StoreFlags(ctx, inbox, imap.UIDSetNum(2), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.Expunge(ctx, inbox, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.CreateMailbox(ctx, "Empty", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.CreateMailbox(ctx, "Projects/Posthouse", ""); err != nil {
		t.Fatal(err)
	}
	if err := acc.SetSubscribed(ctx, "Projects/Posthouse", true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := acc.Append(ctx, "Projects/Posthouse", strings.NewReader(testMessage(fmt.Sprintf("%s proj %d", name, i), "x")),
			mailstore.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}}); err != nil {
			t.Fatal(err)
		}
	}
}

// dropFlaggedFile puts a message file written by another tool, with
// Maildir flags in its name, into the account's INBOX.
func dropFlaggedFile(t *testing.T, dir, account string) {
	t.Helper()
	cur := filepath.Join(dir, accountDirName(account), maildirDir, "1", "cur")
	if err := os.WriteFile(filepath.Join(cur, "1700000000.M1P1Q1.other:2,FS"), []byte(testMessage("dropped flagged", "x")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// pageOf returns the root page number of a table or index, and the page size.
func pageOf(t testing.TB, idx, name string) (int64, int64) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+idx+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var root, size int64
	if err := db.QueryRow(`SELECT rootpage FROM sqlite_master WHERE name = ?`, name).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	return root, size
}

func garbage(n int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(n)).Read(b)
	return b
}

// TestBrokenIndex damages one account's index in each way a disk or an
// operator can while the server is stopped, and opens the store again: the
// other account is untouched, the damaged index is kept aside, and every
// message comes back exactly once, with its UID and flags when the damaged
// index still said them trustworthily, else under a new UIDVALIDITY with
// the flags its file name carries.
func TestBrokenIndex(t *testing.T) {
	type outcome int
	const (
		renewed outcome = iota // new UIDVALIDITY everywhere
		kept                   // UIDVALIDITY, UIDs and flags kept everywhere
	)
	cases := []struct {
		name    string
		damage  func(t *testing.T, idx string)
		want    outcome
		noAside bool
	}{
		{name: "deleted", noAside: true, want: renewed, damage: func(t *testing.T, idx string) {
			os.Remove(idx)
		}},
		{name: "empty", want: renewed, damage: func(t *testing.T, idx string) {
			os.Truncate(idx, 0)
		}},
		{name: "garbage", want: renewed, damage: func(t *testing.T, idx string) {
			fi, _ := os.Stat(idx)
			os.WriteFile(idx, garbage(fi.Size()), 0o600)
		}},
		{name: "header overwritten", want: renewed, damage: func(t *testing.T, idx string) {
			f, _ := os.OpenFile(idx, os.O_WRONLY, 0)
			f.WriteAt(garbage(100), 0)
			f.Close()
		}},
		{name: "truncated to first page", want: renewed, damage: func(t *testing.T, idx string) {
			_, size := pageOf(t, idx, "messages")
			os.Truncate(idx, size)
		}},
		{name: "message table damaged", want: renewed, damage: func(t *testing.T, idx string) {
			root, size := pageOf(t, idx, "messages")
			f, _ := os.OpenFile(idx, os.O_WRONLY, 0)
			f.WriteAt(garbage(size), (root-1)*size)
			f.Close()
		}},
		{name: "search index damaged", want: kept, damage: func(t *testing.T, idx string) {
			root, size := pageOf(t, idx, "messages_snapshot")
			f, _ := os.OpenFile(idx, os.O_WRONLY, 0)
			f.WriteAt(garbage(size), (root-1)*size)
			f.Close()
			// An empty mailbox's directory lost too: the old index
			// still names it.
			dirs, _ := filepath.Glob(filepath.Join(filepath.Dir(idx), maildirDir, "*", mailboxMetaFile))
			for _, d := range dirs {
				if b, _ := os.ReadFile(d); strings.Contains(string(b), `"Empty"`) {
					os.RemoveAll(filepath.Dir(d))
				}
			}
		}},
		{name: "truncated by half", damage: func(t *testing.T, idx string) {
			fi, _ := os.Stat(idx)
			os.Truncate(idx, fi.Size()/2)
		}, want: -1}, // whatever the halves held: checked by the invariants
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			fillAccount(t, s, testAccount, 40)
			fillAccount(t, s, otherAccount, 10)
			acc := openAccount(t, s, testAccount)
			beforeMsgs, beforeBoxes := accountState(t, acc)
			other := openAccount(t, s, otherAccount)
			otherMsgs, otherBoxes := accountState(t, other)
			acc.Close()
			other.Close()
			s.Close()

			idx := filepath.Join(dir, accountDirName(testAccount), indexFile)
			for _, suf := range []string{"-wal", "-shm"} {
				if _, err := os.Stat(idx + suf); err == nil {
					t.Fatalf("%s left after a clean close", indexFile+suf)
				}
			}
			tc.damage(t, idx)
			dropFlaggedFile(t, dir, testAccount)

			var logs syncBuffer
			s, err = Open(ctx, dir, Options{Logger: newTextLogger(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Reconcile(ctx); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "level=ERROR") {
					t.Log(l)
				}
			}
			if !strings.Contains(logs.String(), "index rebuilt from the Maildir") {
				t.Errorf("no rebuild logged:\n%s", logs.String())
			}
			aside, _ := filepath.Glob(idx + ".corrupt-*")
			if !tc.noAside && len(aside) == 0 {
				t.Errorf("damaged index not kept aside")
			}

			o := openAccount(t, s, otherAccount)
			gotOther, gotOtherBoxes := accountState(t, o)
			if fmt.Sprint(gotOther) != fmt.Sprint(otherMsgs) || fmt.Sprint(gotOtherBoxes) != fmt.Sprint(otherBoxes) {
				t.Errorf("other account changed:\n%v\n%v", gotOther, otherMsgs)
			}

			acc = openAccount(t, s, testAccount)
			after, afterBoxes := accountState(t, acc)
			if len(after) != len(beforeMsgs)+1 {
				t.Errorf("%d messages after rebuild, want %d", len(after), len(beforeMsgs)+1)
			}
			for subj, b := range beforeMsgs {
				a, ok := after[subj]
				if !ok {
					t.Errorf("%q lost", subj)
					continue
				}
				if a.mailbox != b.mailbox {
					t.Errorf("%q in %s, was in %s", subj, a.mailbox, b.mailbox)
				}
				bb, ab := beforeBoxes[b.mailbox], afterBoxes[a.mailbox]
				switch {
				case ab.uidValidity == bb.uidValidity:
					// Kept: a UID is the old one or one never given.
					if a.uid != b.uid && a.uid < bb.uidNext {
						t.Errorf("%q: UID %d under the old UIDVALIDITY, was %d (UIDNEXT %d)", subj, a.uid, b.uid, bb.uidNext)
					}
					if a.uid == b.uid && a.flags != b.flags {
						t.Errorf("%q: flags %q, were %q", subj, a.flags, b.flags)
					}
					if ab.modSeq <= bb.modSeq {
						t.Errorf("%s: HIGHESTMODSEQ %d not above the old %d", a.mailbox, ab.modSeq, bb.modSeq)
					}
				case ab.uidValidity < bb.uidValidity:
					t.Errorf("%s: UIDVALIDITY went down: %d, was %d", a.mailbox, ab.uidValidity, bb.uidValidity)
				}
				switch tc.want {
				case kept:
					if ab.uidValidity != bb.uidValidity || a.uid != b.uid || a.flags != b.flags {
						t.Errorf("%q: %+v %+v, want kept %+v %+v", subj, a, ab, b, bb)
					}
				case renewed:
					if ab.uidValidity == bb.uidValidity {
						t.Errorf("%s: UIDVALIDITY %d kept", a.mailbox, ab.uidValidity)
					}
				}
			}
			if d := after["dropped flagged"]; d.mailbox != "INBOX" || d.flags != `\Flagged \Seen` {
				t.Errorf("dropped file: %+v, want INBOX with \\Flagged \\Seen", d)
			}
			if tc.want == renewed {
				// Posthouse's own names carry no flags: every message of
				// the new UIDVALIDITY starts unflagged.
				if d := after[testAccount+" inbox 0"]; d.flags != "" {
					t.Errorf("flags %q without a source", d.flags)
				}
			}
			mbs, err := acc.ListMailboxes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, mb := range mbs {
				if mb.Name == "Projects/Posthouse" && !mb.Subscribed {
					t.Errorf("subscription lost: %+v", mb)
				}
			}
			if _, ok := afterBoxes["Empty"]; !ok {
				t.Errorf("empty mailbox lost: %v", afterBoxes)
			}
			checkCounters(t, acc)
			// The account works: a new message gets a UID above all.
			res := deliver(t, acc, testMessage("after rebuild", "x"))
			if res.UID < afterBoxes["INBOX"].uidNext {
				t.Errorf("new message UID %d below UIDNEXT %d", res.UID, afterBoxes["INBOX"].uidNext)
			}
			if tc.want == kept {
				// QRESYNC: the gap left by the expunge before the damage
				// is still reported.
				set, err := acc.Expunged(ctx, inboxID(t, acc), 1)
				if err != nil || !set.Contains(2) {
					t.Errorf("Expunged since 1: %v, %v; want UID 2 in it", set, err)
				}
			}
		})
	}
}

// TestUnrepairableIndex: an account whose index cannot be opened or rebuilt
// (here its path is a directory) fails alone: Reconcile names it, Open
// returns an error for it, and every other account works.
func TestUnrepairableIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillAccount(t, s, testAccount, 3)
	fillAccount(t, s, otherAccount, 3)
	s.Close()
	idx := filepath.Join(dir, accountDirName(testAccount), indexFile)
	os.Remove(idx)
	if err := os.Mkdir(idx, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Reconcile(ctx)
	if err == nil || !strings.Contains(err.Error(), testAccount) {
		t.Errorf("Reconcile: %v, want an error naming %s", err, testAccount)
	}
	if _, err := s.Open(ctx, testAccount); err == nil || errors.Is(err, mailstore.ErrBadAccountName) {
		t.Errorf("Open of the broken account: %v", err)
	}
	o := openAccount(t, s, otherAccount)
	deliver(t, o, testMessage("still works", "x"))
	msgs, _ := accountState(t, o)
	if len(msgs) != 3+4+1-1 {
		t.Errorf("other account has %d messages", len(msgs))
	}
	// Once repaired (here: the directory removed), the account opens
	// again without a restart, rebuilt from its Maildir.
	os.Remove(idx)
	acc, err := s.Open(ctx, testAccount)
	if err != nil {
		t.Fatalf("Open after repair: %v", err)
	}
	defer acc.Close()
	msgs, _ = accountState(t, acc)
	if len(msgs) != 3+4-1 {
		t.Errorf("repaired account has %d messages", len(msgs))
	}
}

// TestLostMessageFile: a message file removed behind the store's back is
// found by the next read of it: the read gets ErrNoSuchMessage, the row is
// expunged with a new modseq, and watchers get an EventExpunge.
func TestLostMessageFile(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	inbox := inboxID(t, acc)
	for i := 0; i < 3; i++ {
		deliver(t, acc, testMessage(fmt.Sprint("m", i), "x"))
	}
	before, _ := acc.Snapshot(ctx, inbox)
	var mu sync.Mutex
	var events []mailstore.Event
	stop := acc.Watch(func(e mailstore.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	})
	defer stop()
	files, _ := filepath.Glob(filepath.Join(dir, accountDirName(testAccount), maildirDir, fmt.Sprint(inbox), "cur", "*"))
	var lost string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "Subject: m1\r\n") {
			lost = f
		}
	}
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	_, _, err := acc.OpenMessage(ctx, inbox, 2)
	if !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Fatalf("OpenMessage of a lost file: %v, want ErrNoSuchMessage", err)
	}
	after, _ := acc.Snapshot(ctx, inbox)
	if got := uids(after); !slices.Equal(got, []imap.UID{1, 3}) {
		t.Errorf("UIDs after: %v", got)
	}
	if after.HighestModSeq <= before.HighestModSeq {
		t.Errorf("modseq %d not above %d", after.HighestModSeq, before.HighestModSeq)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Kind != mailstore.EventExpunge || events[0].UID != 2 || events[0].ModSeq != after.HighestModSeq {
		t.Errorf("events: %+v", events)
	}
	if got := readMessage(t, acc, inbox, 3); !strings.Contains(got, "Subject: m2") {
		t.Errorf("other message: %q", got)
	}
	checkCounters(t, acc)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// BenchmarkRebuild10k opens an account of 10,000 messages of 10 KB whose
// index was deleted (every message indexed again from its file, under a new
// UIDVALIDITY) or damaged in a search index only (the same, keeping UIDs
// and flags from the damaged index). Each op is the whole open: integrity
// check, salvage, parsing every file, writing the rows.
func BenchmarkRebuild10k(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	dir := b.TempDir()
	cur := filepath.Join(dir, accountDirName(testAccount), maildirDir, "1", "cur")
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	acc, err := s.Open(ctx, testAccount)
	if err != nil {
		b.Fatal(err)
	}
	acc.Close()
	s.Close()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%d.M%dP1Q%d.bench,S=%d:2,", 1700000000+i, i, i, len(message10K))
		if i%3 == 0 {
			name += "S"
		}
		if err := os.WriteFile(filepath.Join(cur, name), []byte(message10K), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// Index them once (reconciliation), and keep that index.
	s, _ = Open(ctx, dir, Options{})
	acc, err = s.Open(ctx, testAccount)
	if err != nil {
		b.Fatal(err)
	}
	if snap, _ := acc.Snapshot(ctx, 1); len(snap.Messages) != n {
		b.Fatalf("%d messages indexed", len(snap.Messages))
	}
	acc.Close()
	s.Close()
	idx := filepath.Join(dir, accountDirName(testAccount), indexFile)
	good, err := os.ReadFile(idx)
	if err != nil {
		b.Fatal(err)
	}
	damage := map[string]func(){
		"deleted": func() { os.Remove(idx) },
		"salvaged": func() {
			root, size := pageOf(b, idx, "messages_snapshot")
			f, _ := os.OpenFile(idx, os.O_WRONLY, 0)
			f.WriteAt(garbage(size), (root-1)*size)
			f.Close()
		},
	}
	b.Run("check", func(b *testing.B) {
		// posthouse admin check of the sound account: integrity_check,
		// counters, and the files against the rows.
		os.WriteFile(idx, good, 0o600)
		s, err := Open(ctx, dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		c0 := cpuTime()
		for b.Loop() {
			rep, err := s.CheckAccount(ctx, testAccount, false)
			if err != nil || len(rep.Problems) != 0 || rep.Messages != n {
				b.Fatalf("check: %+v, %v", rep, err)
			}
		}
		reportCPU(b, c0)
	})
	for _, name := range []string{"deleted", "salvaged"} {
		b.Run(name, func(b *testing.B) {
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				aside, _ := filepath.Glob(idx + ".corrupt-*")
				for _, p := range append(aside, idx+"-wal", idx+"-shm") {
					os.Remove(p)
				}
				if err := os.WriteFile(idx, good, 0o600); err != nil {
					b.Fatal(err)
				}
				damage[name]()
				c0 := cpuTime()
				b.StartTimer()
				s, err := Open(ctx, dir, Options{})
				if err != nil {
					b.Fatal(err)
				}
				acc, err := s.Open(ctx, testAccount)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - c0
				snap, _ := acc.Snapshot(ctx, 1)
				if len(snap.Messages) != n {
					b.Fatalf("%d messages after rebuild", len(snap.Messages))
				}
				acc.Close()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// FuzzReadSalvage reads arbitrary bytes as a damaged index: it must never
// panic or hang, and whatever it keeps must pass the sanity rules.
func FuzzReadSalvage(f *testing.F) {
	ctx := context.Background()
	dir := f.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		f.Fatal(err)
	}
	acc, err := s.Open(ctx, testAccount)
	if err != nil {
		f.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := acc.Deliver(ctx, strings.NewReader(testMessage(fmt.Sprint("f", i), "x")), mailstore.DeliverOptions{}); err != nil {
			f.Fatal(err)
		}
	}
	acc.Close()
	s.Close()
	good, err := os.ReadFile(filepath.Join(dir, accountDirName(testAccount), indexFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("SQLite format 3\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "index.sqlite")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		sv := readSalvage(ctx, p)
		for id, mb := range sv.mailboxes {
			if id <= 0 || mb.uidValidity == 0 || mb.uidNext < 1 {
				t.Errorf("insane mailbox kept: %d %+v", id, mb)
			}
			for file, m := range mb.byFile {
				if m.uid < 1 || (mb.keep && m.uid >= mb.uidNext) || m.flags&^flagAll != 0 || !filepath.IsLocal(file) {
					t.Errorf("insane message kept: %s %+v", file, m)
				}
			}
		}
	})
}
