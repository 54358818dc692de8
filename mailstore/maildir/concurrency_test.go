package maildir

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/logbuf"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

// TestReconcile covers a file without a row, a row without a file, stray
// tmp files and trash left by a crash.
func TestReconcile(t *testing.T) {
	s, dir := newTestStore(t, Options{})
	ctx := context.Background()
	acc := openAccount(t, s, testAccount)
	in := inboxID(t, acc)
	for i := 0; i < 3; i++ {
		deliver(t, acc, testMessage(fmt.Sprint("r", i), "x"))
	}
	mbDir := filepath.Join(dir, accountDirName(testAccount), "maildir", fmt.Sprint(in))

	// Row without file: remove the file of UID 2.
	infos, _ := acc.Fetch(ctx, in, imap.UIDSetNum(2), mailstore.FetchOptions{})
	_ = infos
	var file2 string
	a := acc.(*handle).a
	a.readTx(ctx, func(r *rtx) error {
		return r.queryRow(`SELECT file FROM messages WHERE mailbox = ? AND uid = 2`, in).Scan(&file2)
	})
	if err := os.Remove(filepath.Join(mbDir, file2)); err != nil {
		t.Fatal(err)
	}
	// File without row: one in cur/ with Maildir flags, one in new/.
	dropped := testMessage("dropped in", "by another tool")
	os.WriteFile(filepath.Join(mbDir, "cur", "1700000000.X1.host:2,FS"), []byte(dropped), 0o600)
	os.WriteFile(filepath.Join(mbDir, "new", "1700000001.X2.host"), []byte(testMessage("new one", "x")), 0o600)
	// Stray tmp files: an old one goes, a fresh one stays.
	old := filepath.Join(mbDir, "tmp", "old")
	fresh := filepath.Join(mbDir, "tmp", "fresh")
	os.WriteFile(old, []byte("partial"), 0o600)
	os.WriteFile(fresh, []byte("partial"), 0o600)
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(old, past, past)

	var events []mailstore.Event
	stop := acc.Watch(func(e mailstore.Event) { events = append(events, e) })
	if err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	snap, _ := acc.Snapshot(ctx, in)
	if !slices.Equal(uids(snap), []imap.UID{1, 3, 4, 5}) {
		t.Fatalf("after reconcile: %v", uids(snap))
	}
	infos, _ = acc.Fetch(ctx, in, imap.UIDSetNum(4), mailstore.FetchOptions{Envelope: true})
	if !slices.Equal(infos[0].Flags, []imap.Flag{imap.FlagSeen, imap.FlagFlagged}) || infos[0].Envelope.Subject != "dropped in" {
		t.Errorf("indexed file: %+v", infos[0])
	}
	if got := readMessage(t, acc, in, 4); got != dropped {
		t.Errorf("indexed file content differs")
	}
	if len(events) != 3 {
		t.Errorf("reconcile events: %+v", events)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old tmp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh tmp file removed: %v", err)
	}
	// A second reconcile changes nothing.
	if err := s.ReconcileAccount(ctx, testAccount); err != nil {
		t.Fatal(err)
	}
	snap2, _ := acc.Snapshot(ctx, in)
	if snap2.HighestModSeq != snap.HighestModSeq || len(snap2.Messages) != 4 {
		t.Errorf("second reconcile changed the mailbox")
	}
	used, _, _ := acc.Usage(ctx)
	var sum int64
	for _, u := range uids(snap2) {
		infos, _ := acc.Fetch(ctx, in, imap.UIDSetNum(u), mailstore.FetchOptions{})
		sum += infos[0].Size
	}
	if used != sum {
		t.Errorf("usage %d, sum of sizes %d", used, sum)
	}

	// Trash left by a crash after an expunge commit: the row is gone and
	// the file must not come back.
	acc.StoreFlags(ctx, in, imap.UIDSetNum(1), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0)
	var file1 string
	a.readTx(ctx, func(r *rtx) error {
		return r.queryRow(`SELECT file FROM messages WHERE mailbox = ? AND uid = 1`, in).Scan(&file1)
	})
	content, _ := os.ReadFile(filepath.Join(mbDir, file1))
	if _, err := acc.Expunge(ctx, in, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(mbDir, file1), content, 0o600) // as if the unlink never happened
	a.write(ctx, func(w *wtx) error {
		_, err := w.Exec(`INSERT OR IGNORE INTO trash (path) VALUES (?)`, messagePath(in, file1))
		return err
	})
	if err := s.ReconcileAccount(ctx, testAccount); err != nil {
		t.Fatal(err)
	}
	snap3, _ := acc.Snapshot(ctx, in)
	if slices.Contains(uids(snap3), 1) || len(snap3.Messages) != 3 {
		t.Errorf("expunged message resurrected: %v", uids(snap3))
	}
	if _, err := os.Stat(filepath.Join(mbDir, file1)); !os.IsNotExist(err) {
		t.Errorf("trashed file still there")
	}
	checkCounters(t, acc)
}

// TestRebuildIndex deletes or corrupts the index and reopens: every message
// comes back under a new UIDVALIDITY, with mailbox names and special use.
func TestRebuildIndex(t *testing.T) {
	for _, mode := range []string{"missing", "corrupt"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			s, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			acc, _ := s.Open(ctx, testAccount)
			acc.CreateMailbox(ctx, "Projects/Posthouse", "")
			for i := 0; i < 3; i++ {
				deliver(t, acc, testMessage(fmt.Sprint("k", i), "x"))
			}
			acc.Append(ctx, "Projects/Posthouse", strings.NewReader(testMessage("proj", "x")), mailstore.AppendOptions{})
			before, _ := acc.Mailbox(ctx, "INBOX")
			acc.Close()
			s.Close()

			idx := filepath.Join(dir, accountDirName(testAccount), indexFile)
			switch mode {
			case "missing":
				for _, suf := range []string{"", "-wal", "-shm"} {
					os.Remove(idx + suf)
				}
			case "corrupt":
				for _, suf := range []string{"-wal", "-shm"} {
					os.Remove(idx + suf)
				}
				os.WriteFile(idx, []byte("this is not a database at all, not even close............................................................................"), 0o600)
			}
			s, err = Open(ctx, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			acc = openAccount(t, s, testAccount)
			after, err := acc.Mailbox(ctx, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			if after.UIDValidity == before.UIDValidity {
				t.Errorf("UIDVALIDITY kept after rebuild")
			}
			snap, _ := acc.Snapshot(ctx, after.ID)
			if len(snap.Messages) != 3 {
				t.Errorf("INBOX has %d messages after rebuild", len(snap.Messages))
			}
			proj, err := acc.Mailbox(ctx, "Projects/Posthouse")
			if err != nil {
				t.Fatal(err)
			}
			snap, _ = acc.Snapshot(ctx, proj.ID)
			if len(snap.Messages) != 1 {
				t.Errorf("Projects/Posthouse has %d messages", len(snap.Messages))
			}
			sent, err := acc.Mailbox(ctx, "Sent")
			if err != nil || sent.SpecialUse != mailstore.SpecialSent {
				t.Errorf("Sent after rebuild: %+v, %v", sent, err)
			}
			if _, err := acc.Mailbox(ctx, "Projects"); err != nil {
				t.Errorf("parent after rebuild: %v", err)
			}
			infos, _ := acc.Fetch(ctx, proj.ID, imap.UIDSetNum(1), mailstore.FetchOptions{Envelope: true})
			if len(infos) != 1 || infos[0].Envelope.Subject != "proj" {
				t.Errorf("rebuilt row: %+v", infos)
			}
		})
	}
}

// TestStatementCacheSurvivesClose makes sure statements prepared for one
// index are never used on another after an account is closed and reopened.
func TestIdleAccountsClose(t *testing.T) {
	s, _ := newTestStore(t, Options{MaxIdleAccounts: 2})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		acc, err := s.Open(ctx, fmt.Sprintf("u%d@example.org", i))
		if err != nil {
			t.Fatal(err)
		}
		deliver(t, acc, testMessage("x", "x"))
		acc.Close()
	}
	s.mu.Lock()
	n := len(s.accounts)
	s.mu.Unlock()
	if n != 2 {
		t.Errorf("%d accounts open, want 2 idle", n)
	}
	names, err := s.Accounts(ctx)
	if err != nil || len(names) != 5 || names[0] != "u0@example.org" {
		t.Errorf("Accounts = %v, %v", names, err)
	}
	acc := openAccount(t, s, "u0@example.org")
	snap, err := acc.Snapshot(ctx, inboxID(t, acc))
	if err != nil || len(snap.Messages) != 1 {
		t.Errorf("reopened account: %v, %v", len(snap.Messages), err)
	}
}

var _ = sql.ErrNoRows

// TestRemoveByOtherProcess removes an account through a second Store on the
// same directory (as posthouse admin does while serve runs): the first
// Store's cached state must notice and never take mail into the removed
// index.
func TestRemoveByOtherProcess(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	serve, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer serve.Close()
	admin, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	held := openAccount(t, serve, testAccount) // an IMAP session, say
	deliver(t, held, testMessage("old", "x"))
	if err := admin.Remove(ctx, testAccount); err != nil {
		t.Fatal(err)
	}
	if _, err := held.Deliver(ctx, strings.NewReader(testMessage("lost?", "x")), mailstore.DeliverOptions{}); !errors.Is(err, mailstore.ErrClosed) {
		t.Fatalf("delivery into removed account: %v, want ErrClosed", err)
	}
	// The address comes back as a new account: serve opens the new one.
	fresh := openAccount(t, serve, testAccount)
	deliver(t, fresh, testMessage("new", "x"))
	check := openAccount(t, admin, testAccount)
	snap, err := check.Snapshot(ctx, inboxID(t, check))
	if err != nil || len(snap.Messages) != 1 {
		t.Fatalf("new account seen by the other store: %d messages, %v", len(snap.Messages), err)
	}
}

// checkCounters compares the trigger-kept counters of every mailbox with
// what the messages say.
func checkCounters(t *testing.T, acc mailstore.Account) {
	t.Helper()
	a := acc.(*handle).a
	err := a.readTx(context.Background(), func(r *rtx) error {
		rows, err := r.query(`SELECT id, msgs, bytes, unseen, deleted,
			(SELECT count(*) FROM messages m WHERE m.mailbox = b.id),
			(SELECT ifnull(sum(size), 0) FROM messages m WHERE m.mailbox = b.id),
			(SELECT count(*) FROM messages m WHERE m.mailbox = b.id AND (m.flags & 1) = 0),
			(SELECT count(*) FROM messages m WHERE m.mailbox = b.id AND (m.flags & 8) != 0)
			FROM mailboxes b`)
		return sqlitedb.Each(rows, err, func(row sqlitedb.Scanner) error {
			var id, m1, b1, u1, d1, m2, b2, u2, d2 int64
			if err := row.Scan(&id, &m1, &b1, &u1, &d1, &m2, &b2, &u2, &d2); err != nil {
				return err
			}
			if m1 != m2 || b1 != b2 || u1 != u2 || d1 != d2 {
				t.Errorf("mailbox %d counters %d/%d/%d/%d, messages say %d/%d/%d/%d", id, m1, b1, u1, d1, m2, b2, u2, d2)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	a.readTx(context.Background(), func(r *rtx) error {
		return r.queryRow(`SELECT ifnull(sum(size), 0) FROM messages`).Scan(&sum)
	})
	if used, _, _ := acc.Usage(context.Background()); used != sum {
		t.Errorf("usage %d, messages sum to %d", used, sum)
	}
}

// TestReconcileManyFiles imports a Maildir's worth of files dropped into
// cur/ and new/ (more than one indexing batch) in arrival order, naming
// the first maxFilesLogged in the log and counting the rest in one line.
func TestReconcileManyFiles(t *testing.T) {
	var logs logbuf.Buffer
	s, dir := newTestStore(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	acc := openAccount(t, s, testAccount)
	arch, _ := acc.Mailbox(ctx, "Archive")
	mbDir := filepath.Join(dir, accountDirName(testAccount), "maildir", fmt.Sprint(arch.ID))
	const n = 2*indexBatch + 17
	base := time.Now().Add(-time.Hour)
	for i := 0; i < n; i++ {
		sub := "cur"
		if i%3 == 0 {
			sub = "new"
		}
		p := filepath.Join(mbDir, sub, fmt.Sprintf("%d.M%dP1.host:2,S", 1700000000+i, i))
		if err := os.WriteFile(p, []byte(testMessage(fmt.Sprint("imported ", i), "x")), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Second)
		os.Chtimes(p, mt, mt)
	}
	if err := s.ReconcileAccount(ctx, testAccount); err != nil {
		t.Fatal(err)
	}
	snap, err := acc.Snapshot(ctx, arch.ID)
	if err != nil || len(snap.Messages) != n {
		t.Fatalf("%d messages indexed, want %d (%v)", len(snap.Messages), n, err)
	}
	infos, _ := acc.Fetch(ctx, arch.ID, imap.UIDSet{{Start: 1, Stop: 0}}, mailstore.FetchOptions{Envelope: true})
	for i, mi := range infos {
		if mi.Envelope.Subject != fmt.Sprint("imported ", i) || !slices.Equal(mi.Flags, []imap.Flag{imap.FlagSeen}) {
			t.Fatalf("uid %d: subject %q flags %v", mi.UID, mi.Envelope.Subject, mi.Flags)
		}
	}
	checkCounters(t, acc)
	out := logs.String()
	if got := strings.Count(out, `msg="indexed message file that had no index row"`); got != maxFilesLogged {
		t.Errorf("%d files logged by name, want %d", got, maxFilesLogged)
	}
	var summary []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `msg="indexed more message files that had no index row"`) {
			summary = append(summary, l)
		}
	}
	if want := fmt.Sprintf(" mailbox=%d count=%d", arch.ID, n-maxFilesLogged); len(summary) != 1 || !strings.HasSuffix(summary[0], want) {
		t.Errorf("summary lines %q, want one ending %q", summary, want)
	}
}
