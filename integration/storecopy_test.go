package integration

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/posthouse/posthouse/internal/pgtest"
)

// TestStoreCopyToPostgresOverIMAP: a Maildir data_dir with some history
// is copied into PostgreSQL with posthouse admin store copy; served from
// PostgreSQL it shows a client exactly what it showed before: folders,
// subscriptions, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, and per message the
// UID, flags, MODSEQ, INTERNALDATE, size and bytes.
func TestStoreCopyToPostgresOverIMAP(t *testing.T) {
	pg, err := pgtest.Start()
	if errors.Is(err, pgtest.ErrNotInstalled) {
		if os.Getenv("PGTEST_REQUIRE") != "" {
			t.Fatalf("%v, and PGTEST_REQUIRE is set", err)
		}
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Stop() })
	db, err := pg.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dsn := pg.DSN(db)

	s := startIMAPServer(t)
	for i := range 5 {
		imapSMTPDeliver(t, s, imapMessage(fmt.Sprintf("copy-%d", i), 500+i*3000))
	}
	c := storeCopyLogin(t, s)
	draft := "From: ivy@example.org\r\nSubject: draft\r\n\r\nnot yet\r\n"
	ac := c.Append("Drafts", int64(len(draft)), &imap.AppendOptions{
		Flags: []imap.Flag{imap.FlagDraft, "$Later"},
		Time:  time.Date(2025, 12, 24, 18, 30, 0, 0, time.FixedZone("", 5*3600+1800)),
	})
	io.WriteString(ac, draft)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []interface{ Wait() error }{
		c.Create("Projects/2026", nil),
		c.Subscribe("Projects/2026"),
	} {
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Projects/2026").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Move(imap.SeqSetNum(3), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("Projects", "Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	c.Close()

	before := imapState(t, s)
	s.Stop(t)
	out := s.Admin(t, "", "store", "copy", "--to", dsn)
	if !strings.Contains(out, "1 accounts copied") {
		t.Fatalf("store copy: %s", out)
	}
	f, err := os.OpenFile(s.ConfigPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "\n[store]\nbackend = \"postgres\"\ndsn = %q\n", dsn)
	f.Close()
	// store copy also copied the user database: the user logs in on
	// PostgreSQL with the same password, nobody added again.
	s.Restart(t)
	after := imapState(t, s)
	if before != after {
		t.Errorf("IMAP state after the copy differs\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if !strings.Contains(before, "Work/2026") || !strings.Contains(before, "$Important") {
		t.Fatalf("state lacks what the test made:\n%s", before)
	}
	// The server really reads PostgreSQL now: new mail goes on from UIDNEXT.
	imapSMTPDeliver(t, s, imapMessage("after-copy", 400))
	c = storeCopyLogin(t, s)
	defer c.Close()
	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(before, fmt.Sprintf("INBOX uidvalidity=%d uidnext=%d ", sel.UIDValidity, sel.UIDNext-1)) {
		t.Errorf("INBOX after a delivery: UIDVALIDITY %d UIDNEXT %d; before the copy:\n%s", sel.UIDValidity, sel.UIDNext, before)
	}
}

func storeCopyLogin(t *testing.T, s *Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(imapUser, imapPass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// imapState renders what a client sees of imapUser's mail, mailbox IDs
// aside.
func imapState(t *testing.T, s *Server) string {
	t.Helper()
	c := storeCopyLogin(t, s)
	defer c.Close()
	var b strings.Builder
	boxes, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range subs {
		names = append(names, l.Mailbox)
	}
	slices.Sort(names)
	fmt.Fprintf(&b, "subscribed %v\n", names)
	slices.SortFunc(boxes, func(x, y *imap.ListData) int { return strings.Compare(x.Mailbox, y.Mailbox) })
	for _, l := range boxes {
		attrs := make([]string, len(l.Attrs))
		for i, a := range l.Attrs {
			attrs[i] = string(a)
		}
		slices.Sort(attrs)
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{CondStore: true}).Wait()
		if err != nil {
			t.Fatalf("SELECT %s: %v", l.Mailbox, err)
		}
		fmt.Fprintf(&b, "%s uidvalidity=%d uidnext=%d highestmodseq=%d exists=%d attrs=%v\n",
			l.Mailbox, sel.UIDValidity, sel.UIDNext, sel.HighestModSeq, sel.NumMessages, attrs)
		if sel.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, ModSeq: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("FETCH %s: %v", l.Mailbox, err)
		}
		if len(msgs) != int(sel.NumMessages) {
			t.Errorf("%s: FETCH returned %d messages, SELECT said %d", l.Mailbox, len(msgs), sel.NumMessages)
		}
		for _, m := range msgs {
			flags := make([]string, len(m.Flags))
			for i, f := range m.Flags {
				flags[i] = string(f)
			}
			// \Recent belongs to the session told first (this one's
			// SELECT before the copy): not part of the comparison.
			flags = slices.DeleteFunc(flags, func(f string) bool { return f == `\Recent` })
			slices.Sort(flags)
			var body []byte
			if len(m.BodySection) == 1 {
				body = m.BodySection[0].Bytes
			}
			fmt.Fprintf(&b, "  uid=%d modseq=%d flags=%v date=%s size=%d body=%d:%x\n",
				m.UID, m.ModSeq, flags, m.InternalDate.Format(time.RFC3339), m.RFC822Size, len(body), sha256.Sum256(body))
		}
	}
	return b.String()
}
