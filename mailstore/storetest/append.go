package storetest

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testAppend covers Deliver and Append: where messages land, their bytes,
// sizes, internal dates and flags, and how UIDs and modseqs advance.
func testAppend(t *testing.T, b Backend) {
	t.Run("Deliver", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		msg := message("hello", "body line\r\nsecond line")
		before := time.Now().Truncate(time.Second)
		res := deliver(t, acc, msg)
		after := time.Now()
		want := mailstore.AppendResult{MailboxID: in.ID, UIDValidity: in.UIDValidity, UID: 1, Size: int64(len(msg))}
		if res != want {
			t.Fatalf("Deliver = %+v, want %+v", res, want)
		}
		if got := readMessage(t, acc, in.ID, 1); got != msg {
			t.Errorf("stored bytes differ:\n got %q\nwant %q", got, msg)
		}
		mi := fetchOne(t, acc, in.ID, 1, mailstore.FetchOptions{})
		if mi.Size != res.Size || len(mi.Flags) != 0 {
			t.Errorf("Fetch = %+v: want size %d, no flags", mi, res.Size)
		}
		if mi.InternalDate.Before(before) || mi.InternalDate.After(after) {
			t.Errorf("internal date %v, want the delivery time (between %v and %v)", mi.InternalDate, before, after)
		}
		st := status(t, acc, in.ID)
		if st.Messages != 1 || st.Unseen != 1 || st.Size != res.Size || st.UIDNext != 2 || st.HighestModSeq != mi.ModSeq {
			t.Errorf("Status = %+v after one delivery (message modseq %d)", st, mi.ModSeq)
		}
		checkUsage(t, acc)
	})

	t.Run("DeliverOptions", func(t *testing.T) {
		_, acc := newAccount(t, b)
		in, junk := mailbox(t, acc, mailstore.Inbox), mailbox(t, acc, "Junk")
		res, err := acc.Deliver(t.Context(), strings.NewReader(message("spam", "x")),
			mailstore.DeliverOptions{Mailbox: "Junk", Flags: []imap.Flag{imap.FlagSeen, "$Junk"}})
		if err != nil || res.MailboxID != junk.ID || res.UIDValidity != junk.UIDValidity || res.UID != 1 {
			t.Fatalf("Deliver to Junk = %+v, %v", res, err)
		}
		if mi := fetchOne(t, acc, junk.ID, 1, mailstore.FetchOptions{}); !sameFlags(mi.Flags, []imap.Flag{imap.FlagSeen, "$Junk"}) {
			t.Errorf("delivered flags = %v", mi.Flags)
		}
		// A missing or invalid mailbox falls back to INBOX: mail is
		// never refused for the choice of folder.
		for i, mbox := range []string{"Nope", "a//b", "a%"} {
			res, err := acc.Deliver(t.Context(), strings.NewReader(message("fallback", "x")), mailstore.DeliverOptions{Mailbox: mbox})
			if err != nil || res.MailboxID != in.ID || res.UID != imap.UID(i+1) {
				t.Errorf("Deliver to %q = %+v, %v; want INBOX UID %d", mbox, res, err, i+1)
			}
		}
		if _, err := acc.Mailbox(t.Context(), "Nope"); err == nil {
			t.Errorf("delivery created the missing mailbox")
		}
	})

	t.Run("Append", func(t *testing.T) {
		_, acc := newAccount(t, b)
		sent := mailbox(t, acc, "Sent")
		// Whole seconds: internal dates are kept to the second, with
		// their zone offset (RFC 9051 date-time).
		date := time.Date(2020, 5, 6, 7, 8, 9, 0, time.FixedZone("", -7*3600))
		msg := message("sent", "x")
		res := appendMsg(t, acc, "Sent", msg, mailstore.AppendOptions{
			Flags:        []imap.Flag{`\seen`, `\Recent`, `\Bogus`, "Work", "work", imap.FlagDraft},
			InternalDate: date,
		})
		want := mailstore.AppendResult{MailboxID: sent.ID, UIDValidity: sent.UIDValidity, UID: 1, Size: int64(len(msg))}
		if res != want {
			t.Fatalf("Append = %+v, want %+v", res, want)
		}
		mi := fetchOne(t, acc, sent.ID, 1, mailstore.FetchOptions{})
		if !mi.InternalDate.Equal(date) {
			t.Errorf("internal date %v, want %v", mi.InternalDate, date)
		}
		if _, off := mi.InternalDate.Zone(); off != -7*3600 {
			t.Errorf("internal date zone offset %d, want %d", off, -7*3600)
		}
		// System flags in their canonical spelling; \Recent and unknown
		// system flags are not stored; keywords once, case-insensitively.
		if !sameFlags(mi.Flags, []imap.Flag{imap.FlagSeen, imap.FlagDraft, "Work"}) {
			t.Errorf("flags at append = %v, want \\Seen \\Draft Work", mi.Flags)
		}
		if got := readMessage(t, acc, sent.ID, 1); got != msg {
			t.Errorf("appended bytes differ: %q", got)
		}
		// Mailbox names other than INBOX are case-sensitive.
		_, err := acc.Append(t.Context(), "sent", strings.NewReader(msg), mailstore.AppendOptions{})
		wantErr(t, "Append to \"sent\"", err, mailstore.ErrNoSuchMailbox)
		_, err = acc.Append(t.Context(), "Nope", strings.NewReader(msg), mailstore.AppendOptions{})
		wantErr(t, "Append to a missing mailbox", err, mailstore.ErrNoSuchMailbox)
		_, err = acc.Append(t.Context(), "a/../b", strings.NewReader(msg), mailstore.AppendOptions{})
		wantErr(t, "Append to a bad name", err, mailstore.ErrBadMailboxName)
		if st := status(t, acc, sent.ID); st.Messages != 1 || st.Unseen != 0 {
			t.Errorf("failed appends changed Sent: %+v", st)
		}
		// Flags at append count in STATUS.
		appendMsg(t, acc, "Sent", msg, mailstore.AppendOptions{Flags: []imap.Flag{imap.FlagDeleted}})
		if st := status(t, acc, sent.ID); st.Messages != 2 || st.Unseen != 1 || st.Deleted != 1 {
			t.Errorf("Status after a \\Deleted append = %+v", st)
		}
		checkUsage(t, acc)
	})

	t.Run("Bytes", func(t *testing.T) {
		_, acc := newAccount(t, b)
		var big strings.Builder
		big.WriteString("Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
		for i := 0; big.Len() < 300<<10; i++ {
			big.WriteString("ligne \u00e9t\u00e9 \x00\x01\xff ")
			if i%7 == 0 {
				big.WriteString("\r\n")
			}
		}
		big.WriteString(strings.Repeat("y", 5000) + "\r\n") // a long line
		msgs := []string{
			big.String(),
			"Subject: no body\r\n\r\n",
			"no header at all, just text\r\n",
			"Subject: bare LF kept as given\n\nbody\n",
		}
		in := mailbox(t, acc, mailstore.Inbox)
		var total int64
		for i, msg := range msgs {
			res := deliver(t, acc, msg)
			if res.UID != imap.UID(i+1) || res.Size != int64(len(msg)) {
				t.Errorf("message %d: Deliver = %+v, want UID %d size %d", i, res, i+1, len(msg))
			}
			if got := readMessage(t, acc, in.ID, res.UID); got != msg {
				t.Errorf("message %d: stored bytes differ (%d bytes read, %d given)", i, len(got), len(msg))
			}
			if mi := fetchOne(t, acc, in.ID, res.UID, mailstore.FetchOptions{}); mi.Size != int64(len(msg)) {
				t.Errorf("message %d: Fetch size %d, want %d", i, mi.Size, len(msg))
			}
			total += int64(len(msg))
		}
		// The reader seeks (POP3 TOP and IMAP partial fetches need it).
		rc, _, err := acc.OpenMessage(t.Context(), in.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := rc.Seek(1000, io.SeekStart); err != nil {
			t.Fatalf("Seek: %v", err)
		}
		part := make([]byte, 100)
		if _, err := io.ReadFull(rc, part); err != nil || string(part) != msgs[0][1000:1100] {
			t.Errorf("read after Seek(1000) = %q, %v", part, err)
		}
		if used, _, _ := acc.Usage(t.Context()); used != total {
			t.Errorf("Usage = %d, want %d", used, total)
		}
		checkUsage(t, acc)
	})

	t.Run("UIDsAndModSeqs", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		var last uint64
		for i := 1; i <= 3; i++ {
			res := deliver(t, acc, message("m", "x"))
			if res.UID != imap.UID(i) {
				t.Fatalf("delivery %d got UID %d", i, res.UID)
			}
			// Every append is a change: the mailbox gets a new modseq,
			// and the message carries it.
			st := status(t, acc, in.ID)
			mi := fetchOne(t, acc, in.ID, res.UID, mailstore.FetchOptions{})
			if st.HighestModSeq <= last || mi.ModSeq != st.HighestModSeq || st.UIDNext != res.UID+1 {
				t.Errorf("after delivery %d: status %+v, message modseq %d, previous modseq %d", i, st, mi.ModSeq, last)
			}
			last = st.HighestModSeq
		}
		// UIDs are never reused: not after expunging the newest message,
		// not after emptying the mailbox.
		storeFlags(t, acc, in.ID, imap.UIDSetNum(3), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		if res := deliver(t, acc, message("m", "x")); res.UID != 4 {
			t.Errorf("after expunging UID 3, the next delivery got UID %d, want 4", res.UID)
		}
		storeFlags(t, acc, in.ID, allUIDs, mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		if snap := snapshot(t, acc, in.ID); len(snap.Messages) != 0 || snap.UIDNext != 5 {
			t.Errorf("emptied INBOX: UIDs %v UIDNEXT %d, want none and 5", snapUIDs(snap), snap.UIDNext)
		}
		if res := deliver(t, acc, message("m", "x")); res.UID != 5 {
			t.Errorf("after emptying the mailbox, the next delivery got UID %d, want 5", res.UID)
		}
		// Each mailbox counts on its own, under its own UIDVALIDITY.
		res := appendMsg(t, acc, "Archive", message("a", "x"), mailstore.AppendOptions{})
		if res.UID != 1 || res.UIDValidity != mailbox(t, acc, "Archive").UIDValidity {
			t.Errorf("first append to Archive = %+v", res)
		}
		if mailbox(t, acc, mailstore.Inbox).UIDValidity != in.UIDValidity {
			t.Errorf("INBOX's UIDVALIDITY changed")
		}
		checkUsage(t, acc)
	})
}
