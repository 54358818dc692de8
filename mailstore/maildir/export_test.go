package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// TestExport reads an account whole: mailbox state, expunge history,
// subscriptions, messages with their bodies; a change after the read
// began is reported by Unchanged, a vanished file by Messages.
func TestExport(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t, Options{MaxIdleAccounts: 1})
	a := openAccount(t, s, testAccount)
	inbox, _ := a.Mailbox(ctx, mailstore.Inbox)
	var bodies []string
	for i := range 4 {
		b := fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i)
		bodies = append(bodies, b)
		if _, err := a.Deliver(ctx, strings.NewReader(b), mailstore.DeliverOptions{Flags: []imap.Flag{"$K"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.StoreFlags(ctx, inbox.ID, imap.UIDSetNum(2, 3), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := a.Status(ctx, inbox.ID)
	// Another account opened meanwhile evicts this one from the idle
	// cache (MaxIdleAccounts 1): the export keeps its own handle.
	openAccount(t, s, "bob@example.org")

	if _, err := s.Export(ctx, "nobody@example.org"); !errors.Is(err, mailstore.ErrNoSuchAccount) {
		t.Fatalf("export of an account without storage: %v", err)
	}
	src, err := s.Export(ctx, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	acc := src.Account()
	if acc.Name != testAccount || acc.Messages != 2 || len(acc.Mailboxes) != len(mailstore.DefaultMailboxes) || len(acc.Subscriptions) != len(mailstore.DefaultMailboxes) {
		t.Fatalf("account %+v", acc)
	}
	var in mailstore.ImportMailbox
	for _, m := range acc.Mailboxes {
		if m.Name == mailstore.Inbox {
			in = m
		}
	}
	want := []mailstore.ExpungedRange{{ModSeq: st.HighestModSeq, Lo: 2, Hi: 3}}
	if in.UIDValidity != st.UIDValidity || in.UIDNext != st.UIDNext || in.HighestModSeq != st.HighestModSeq ||
		in.RecentUID != st.RecentUID || in.Messages != 2 || fmt.Sprint(in.Expunged) != fmt.Sprint(want) {
		t.Fatalf("INBOX %+v, status %+v, want expunged %v", in, st, want)
	}
	var got []string
	err = src.Messages(ctx, mailstore.Inbox, func(m *mailstore.ImportMessage) error {
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		if int64(len(b)) != m.Size || m.EmailID == "" || len(m.Flags) != 1 || m.Flags[0] != "$K" {
			t.Errorf("UID %d: %+v", m.UID, m)
		}
		got = append(got, fmt.Sprintf("%d:%s", m.UID, b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := []string{"1:" + bodies[0], "4:" + bodies[3]}; fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("messages %q, want %q", got, w)
	}
	if err := src.Unchanged(ctx); err != nil {
		t.Fatalf("Unchanged before any change: %v", err)
	}

	// A server still running: a flag change, then an expunge whose file
	// is gone before the reader gets to it.
	if _, err := a.StoreFlags(ctx, inbox.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	if err := src.Unchanged(ctx); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("Unchanged after a change: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, accountDirName(testAccount), maildirDir, fmt.Sprint(inbox.ID), "cur", "*"))
	for _, f := range files {
		os.Remove(f)
	}
	err = src.Messages(ctx, mailstore.Inbox, func(m *mailstore.ImportMessage) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "file is gone") {
		t.Fatalf("Messages with files gone: %v", err)
	}
}
