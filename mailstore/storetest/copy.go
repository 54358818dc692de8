package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// copyFixture fills INBOX with four messages of different sizes; the
// second has flags and a chosen internal date.
func copyFixture(t *testing.T, b Backend) (*fixture, mailstore.Account, mailstore.Mailbox, mailstore.Mailbox) {
	t.Helper()
	f, acc := newAccount(t, b)
	date := time.Date(2021, 3, 4, 5, 6, 7, 0, time.FixedZone("", 2*3600))
	for i := range 4 {
		opts := mailstore.AppendOptions{}
		if i == 1 {
			opts = mailstore.AppendOptions{Flags: []imap.Flag{imap.FlagFlagged, "Kw"}, InternalDate: date}
		}
		appendMsg(t, acc, mailstore.Inbox, message("m"+string(rune('1'+i)), strings.Repeat("x", 10*i)), opts)
	}
	return f, acc, mailbox(t, acc, mailstore.Inbox), mailbox(t, acc, "Archive")
}

// sameMessage checks that a copy has the original's bytes, size, flags,
// internal date and envelope.
func sameMessage(t *testing.T, acc mailstore.Account, srcBox int64, src mailstore.MessageInfo, srcRaw string, dstBox int64, dst imap.UID) {
	t.Helper()
	got := fetchOne(t, acc, dstBox, dst, mailstore.FetchOptions{Envelope: true})
	if got.Size != src.Size || !sameFlags(got.Flags, src.Flags) || !got.InternalDate.Equal(src.InternalDate) {
		t.Errorf("copy %d:%d = size %d flags %v date %v; original %d:%d size %d flags %v date %v",
			dstBox, dst, got.Size, got.Flags, got.InternalDate, srcBox, src.UID, src.Size, src.Flags, src.InternalDate)
	}
	if src.Envelope != nil && (got.Envelope == nil || got.Envelope.Subject != src.Envelope.Subject) {
		t.Errorf("copy %d:%d envelope %+v, original %+v", dstBox, dst, got.Envelope, src.Envelope)
	}
	if raw := readMessage(t, acc, dstBox, dst); raw != srcRaw {
		t.Errorf("copy %d:%d bytes differ from the original's", dstBox, dst)
	}
}

// testCopyMove covers COPY and MOVE: UID maps, what the source and the
// destination hold after, usage and events.
func testCopyMove(t *testing.T, b Backend) {
	t.Run("Copy", func(t *testing.T) {
		_, acc, in, arch := copyFixture(t, b)
		src := fetch(t, acc, in.ID, allUIDs, mailstore.FetchOptions{Envelope: true})
		raws := map[imap.UID]string{}
		for _, m := range src {
			raws[m.UID] = readMessage(t, acc, in.ID, m.UID)
		}
		srcBefore := snapshot(t, acc, in.ID)
		used, _, _ := acc.Usage(t.Context())
		rec, _ := watch(t, acc)
		res, err := acc.Copy(t.Context(), in.ID, imap.UIDSetNum(3, 2, 77), "Archive")
		if err != nil {
			t.Fatalf("Copy: %v", err)
		}
		want := mailstore.CopyResult{DestMailboxID: arch.ID, DestUIDValidity: arch.UIDValidity}
		if res.DestMailboxID != want.DestMailboxID || res.DestUIDValidity != want.DestUIDValidity ||
			!slices.Equal(res.SourceUIDs, []imap.UID{2, 3}) || !slices.Equal(res.DestUIDs, []imap.UID{1, 2}) {
			t.Fatalf("Copy = %+v, want Archive (%d, %d), source [2 3], destination [1 2]", res, arch.ID, arch.UIDValidity)
		}
		for i, s := range res.SourceUIDs {
			sameMessage(t, acc, in.ID, src[s-1], raws[s], arch.ID, res.DestUIDs[i])
		}
		// The source is untouched: same messages, flags and modseq.
		if after := snapshot(t, acc, in.ID); after.HighestModSeq != srcBefore.HighestModSeq || !slices.Equal(snapUIDs(after), snapUIDs(srcBefore)) {
			t.Errorf("Copy changed the source: %v at %d, was %v at %d", snapUIDs(after), after.HighestModSeq, snapUIDs(srcBefore), srcBefore.HighestModSeq)
		}
		st := status(t, acc, arch.ID)
		if st.Messages != 2 || st.UIDNext != 3 {
			t.Errorf("Archive after Copy: %+v", st)
		}
		evs := rec.wait(t, 2)
		for i, e := range evs {
			if e.Kind != mailstore.EventAppend || e.MailboxID != arch.ID || e.UID != res.DestUIDs[i] || e.ModSeq != st.HighestModSeq ||
				!sameFlags(e.Flags, src[res.SourceUIDs[i]-1].Flags) {
				t.Errorf("copy event %d = %+v, want EventAppend of Archive:%d at modseq %d", i, e, res.DestUIDs[i], st.HighestModSeq)
			}
		}
		if now, _, _ := acc.Usage(t.Context()); now != used+src[1].Size+src[2].Size {
			t.Errorf("Usage after Copy %d, want %d", now, used+src[1].Size+src[2].Size)
		}
		// Into the same mailbox: new UIDs after the source's.
		res, err = acc.Copy(t.Context(), in.ID, imap.UIDSetNum(1), "INBOX")
		if err != nil || !slices.Equal(res.SourceUIDs, []imap.UID{1}) || !slices.Equal(res.DestUIDs, []imap.UID{5}) {
			t.Errorf("Copy into the same mailbox = %+v, %v; want UID 5", res, err)
		}
		// UIDs that do not exist copy nothing, without error.
		res, err = acc.Copy(t.Context(), in.ID, imap.UIDSetNum(50, 60), "Archive")
		if err != nil || len(res.SourceUIDs) != 0 || len(res.DestUIDs) != 0 {
			t.Errorf("Copy of missing UIDs = %+v, %v; want nothing copied", res, err)
		}
		if st2 := status(t, acc, arch.ID); st2 != st {
			t.Errorf("an empty copy changed the destination: %+v, was %+v", st2, st)
		}
		checkUsage(t, acc)
	})

	t.Run("Move", func(t *testing.T) {
		_, acc, in, arch := copyFixture(t, b)
		appendMsg(t, acc, "Archive", message("already there", "x"), mailstore.AppendOptions{})
		src := fetch(t, acc, in.ID, allUIDs, mailstore.FetchOptions{Envelope: true})
		raws := map[imap.UID]string{}
		for _, m := range src {
			raws[m.UID] = readMessage(t, acc, in.ID, m.UID)
		}
		used, _, _ := acc.Usage(t.Context())
		srcBefore := status(t, acc, in.ID)
		rec, _ := watch(t, acc)
		res, err := acc.Move(t.Context(), in.ID, imap.UIDSet{{Start: 2, Stop: 0}}, "Archive")
		if err != nil {
			t.Fatalf("Move: %v", err)
		}
		if res.DestMailboxID != arch.ID || res.DestUIDValidity != arch.UIDValidity ||
			!slices.Equal(res.SourceUIDs, []imap.UID{2, 3, 4}) || !slices.Equal(res.DestUIDs, []imap.UID{2, 3, 4}) {
			t.Fatalf("Move 2:* = %+v, want source [2 3 4] to Archive [2 3 4]", res)
		}
		for i, s := range res.SourceUIDs {
			sameMessage(t, acc, in.ID, src[s-1], raws[s], arch.ID, res.DestUIDs[i])
		}
		if got := snapUIDs(snapshot(t, acc, in.ID)); !slices.Equal(got, []imap.UID{1}) {
			t.Errorf("source after Move: %v, want [1]", got)
		}
		for _, s := range res.SourceUIDs {
			_, _, err := acc.OpenMessage(t.Context(), in.ID, s)
			wantErr(t, "OpenMessage of a moved message in its source", err, mailstore.ErrNoSuchMessage)
		}
		srcAfter, dstAfter := status(t, acc, in.ID), status(t, acc, arch.ID)
		if srcAfter.HighestModSeq <= srcBefore.HighestModSeq || srcAfter.UIDNext != srcBefore.UIDNext {
			t.Errorf("source status after Move %+v, before %+v", srcAfter, srcBefore)
		}
		if now, _, _ := acc.Usage(t.Context()); now != used {
			t.Errorf("Move changed Usage from %d to %d", used, now)
		}
		// Appends to the destination come before the expunges from the
		// source: a watcher never sees a message gone before it exists.
		evs := rec.wait(t, 6)
		want := []string{}
		for _, d := range res.DestUIDs {
			want = append(want, eventString(mailstore.Event{Kind: mailstore.EventAppend, MailboxID: arch.ID, UID: d}))
		}
		for _, s := range res.SourceUIDs {
			want = append(want, eventString(mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: in.ID, UID: s}))
		}
		if got := eventStrings(evs); !slices.Equal(got, want) {
			t.Errorf("Move events %v, want %v", got, want)
		}
		for _, e := range evs {
			if e.MailboxID == arch.ID && e.ModSeq != dstAfter.HighestModSeq || e.MailboxID == in.ID && e.ModSeq != srcAfter.HighestModSeq {
				t.Errorf("Move event %+v: modseq is not its mailbox's after the move", e)
			}
		}
		checkUsage(t, acc)
	})

	t.Run("Errors", func(t *testing.T) {
		_, acc, in, _ := copyFixture(t, b)
		before := snapshot(t, acc, in.ID)
		for _, c := range []struct {
			name, dest string
			want       error
		}{
			{"missing destination", "Nope", mailstore.ErrNoSuchMailbox},
			{"bad destination", "a//b", mailstore.ErrBadMailboxName},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, err := acc.Copy(t.Context(), in.ID, allUIDs, c.dest)
				wantErr(t, "Copy to "+c.dest, err, c.want)
				_, err = acc.Move(t.Context(), in.ID, allUIDs, c.dest)
				wantErr(t, "Move to "+c.dest, err, c.want)
			})
		}
		after := snapshot(t, acc, in.ID)
		if after.HighestModSeq != before.HighestModSeq || !slices.Equal(snapUIDs(after), snapUIDs(before)) {
			t.Errorf("failed copies and moves changed the source")
		}
		checkUsage(t, acc)
	})
}
