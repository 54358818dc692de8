package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// testMessage is a small message; big pads its body past one body chunk.
func testMessage(i int, big bool) string {
	body := fmt.Sprintf("Body of message %d.\r\n", i)
	if big {
		body = strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", bodyChunk/64*2+7)
	}
	return fmt.Sprintf("From: Sender %d <s%d@example.org>\r\nTo: u@example.com\r\nSubject: message %d\r\n"+
		"Date: Mon, 2 Mar 2026 10:%02d:00 +0100\r\nMessage-ID: <m%d@example.org>\r\n"+
		"Content-Type: text/plain\r\n\r\n%s", i, i, i, i%60, i, body)
}

// fillMaildir gives a Maildir store accounts with a history: deliveries,
// appends with flags, keywords and dates, flag changes, expunges, a
// move, renames of a mailbox with children, a deleted mailbox,
// subscriptions changed.
func fillMaildir(t *testing.T, ctx context.Context, s *maildir.Store) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for ai, name := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		a, err := s.Open(ctx, name)
		must(err)
		inbox, err := a.Mailbox(ctx, mailstore.Inbox)
		must(err)
		for i := range 12 + 5*ai {
			_, err := a.Deliver(ctx, strings.NewReader(testMessage(i, i == 3)), mailstore.DeliverOptions{})
			must(err)
		}
		if ai == 2 {
			must(a.Close())
			continue // carol: deliveries only
		}
		_, err = a.CreateMailbox(ctx, "Work/Projects/2026", "")
		must(err)
		zone := time.FixedZone("", -(3*3600 + 30*60))
		for i := range 6 {
			_, err := a.Append(ctx, "Work/Projects", strings.NewReader(testMessage(100+i, false)), mailstore.AppendOptions{
				Flags:        []imap.Flag{imap.FlagSeen, "$Label1", imap.Flag(fmt.Sprintf("Kw%d", i%3))},
				InternalDate: time.Date(2025, 7, i+1, 8, 9, 10, 0, zone),
			})
			must(err)
		}
		_, err = a.StoreFlags(ctx, inbox.ID, imap.UIDSetNum(2, 4, 5, 9), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted, imap.FlagFlagged}, 0)
		must(err)
		_, err = a.StoreFlags(ctx, inbox.ID, imap.UIDSetNum(1, 3), mailstore.FlagsAdd, []imap.Flag{imap.FlagAnswered, "NonJunk"}, 0)
		must(err)
		_, err = a.Expunge(ctx, inbox.ID, nil)
		must(err)
		_, err = a.Move(ctx, inbox.ID, imap.UIDSetNum(6, 7), "Archive")
		must(err)
		_, err = a.Copy(ctx, inbox.ID, imap.UIDSetNum(8), "Work/Projects/2026")
		must(err)
		must(a.RenameMailbox(ctx, "Work", "Office"))
		must(a.SetSubscribed(ctx, "Office/Projects", true))
		must(a.SetSubscribed(ctx, "Junk", false))
		must(a.SetSubscribed(ctx, "Gone/Elsewhere", true))
		_, err = a.CreateMailbox(ctx, "Scratch", "")
		must(err)
		_, err = a.Append(ctx, "Scratch", strings.NewReader(testMessage(200, false)), mailstore.AppendOptions{})
		must(err)
		must(a.DeleteMailbox(ctx, "Scratch"))
		_, err = a.CreateMailbox(ctx, "Later", mailstore.SpecialArchive)
		if errors.Is(err, mailstore.ErrNotAllowed) {
			_, err = a.CreateMailbox(ctx, "Later", "")
		}
		must(err)
		must(a.Close())
	}
}

// copyAll copies every account of src into dst.
func copyAll(t *testing.T, ctx context.Context, src *maildir.Store, dst *Store, opts mailstore.ImportOptions) (results []mailstore.ImportResult, errs []error) {
	t.Helper()
	names, err := src.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		ex, err := src.Export(ctx, n)
		if err != nil {
			t.Fatalf("Export %s: %v", n, err)
		}
		res, err := dst.Import(ctx, ex, opts)
		ex.Close()
		results, errs = append(results, res), append(errs, err)
	}
	return results, errs
}

// compareAccounts checks, through the mailstore interface, that account
// name shows the same state in both stores (all but mailbox IDs).
func compareAccounts(t *testing.T, ctx context.Context, name string, want, got mailstore.Store) {
	t.Helper()
	wa, err := want.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	ga, err := got.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Close()
	wl, err := wa.ListMailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := ga.ListMailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(l []mailstore.Mailbox) []mailstore.Mailbox {
		out := make([]mailstore.Mailbox, len(l))
		for i, m := range l {
			m.ID = 0
			out[i] = m
		}
		return out
	}
	if !reflect.DeepEqual(strip(wl), strip(gl)) {
		t.Fatalf("%s: mailboxes\n got %+v\nwant %+v", name, strip(gl), strip(wl))
	}
	ws, _ := wa.Subscriptions(ctx)
	gs, err := ga.Subscriptions(ctx)
	if err != nil || !reflect.DeepEqual(ws, gs) {
		t.Fatalf("%s: subscriptions %v (%v), want %v", name, gs, err, ws)
	}
	wu, _, _ := wa.Usage(ctx)
	gu, _, _ := ga.Usage(ctx)
	wc, _, _ := wa.MessageUsage(ctx)
	gc, _, _ := ga.MessageUsage(ctx)
	if wu != gu || wc != gc {
		t.Errorf("%s: usage %d bytes %d messages, want %d, %d", name, gu, gc, wu, wc)
	}
	for i, wm := range wl {
		gm := gl[i]
		wst, err := wa.Status(ctx, wm.ID)
		if err != nil {
			t.Fatal(err)
		}
		gst, err := ga.Status(ctx, gm.ID)
		if err != nil {
			t.Fatal(err)
		}
		if wst != gst {
			t.Errorf("%s %s: status %+v, want %+v", name, wm.Name, gst, wst)
		}
		wsn, _ := wa.Snapshot(ctx, wm.ID)
		gsn, err := ga.Snapshot(ctx, gm.ID)
		if err != nil {
			t.Fatal(err)
		}
		wsn.Mailbox.ID, gsn.Mailbox.ID = 0, 0
		if !reflect.DeepEqual(normSnapshot(wsn), normSnapshot(gsn)) {
			t.Errorf("%s %s: snapshot\n got %+v\nwant %+v", name, wm.Name, gsn, wsn)
		}
		opts := mailstore.FetchOptions{Envelope: true, BodyStructure: true, EmailID: true}
		all := imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}
		wf, _ := wa.Fetch(ctx, wm.ID, all, opts)
		gf, err := ga.Fetch(ctx, gm.ID, all, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(wf) != len(gf) {
			t.Fatalf("%s %s: %d messages, want %d", name, wm.Name, len(gf), len(wf))
		}
		for j := range wf {
			w, g := wf[j], gf[j]
			w.Flags, g.Flags = normFlags(w.Flags), normFlags(g.Flags)
			if !w.InternalDate.Equal(g.InternalDate) || w.InternalDate.Format(time.RFC3339) != g.InternalDate.Format(time.RFC3339) {
				t.Errorf("%s %s UID %d: internal date %v, want %v", name, wm.Name, w.UID, g.InternalDate, w.InternalDate)
			}
			w.InternalDate, g.InternalDate = time.Time{}, time.Time{}
			if !reflect.DeepEqual(w, g) {
				t.Errorf("%s %s UID %d:\n got %+v\nwant %+v", name, wm.Name, w.UID, g, w)
			}
			wb := readBody(t, ctx, wa, wm.ID, w.UID)
			gb := readBody(t, ctx, ga, gm.ID, g.UID)
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s %s UID %d: body of %d bytes differs from the source's %d", name, wm.Name, w.UID, len(gb), len(wb))
			}
		}
		for _, since := range []uint64{0, 1, wst.HighestModSeq / 2, wst.HighestModSeq} {
			we, _ := wa.Expunged(ctx, wm.ID, since)
			ge, err := ga.Expunged(ctx, gm.ID, since)
			if err != nil {
				t.Fatal(err)
			}
			if we.String() != ge.String() {
				t.Errorf("%s %s: expunged since %d: %v, want %v", name, wm.Name, since, ge, we)
			}
		}
	}
}

func normFlags(f []imap.Flag) []imap.Flag {
	out := make([]imap.Flag, len(f))
	for i, x := range f {
		out[i] = imap.Flag(strings.ToLower(string(x)))
	}
	for i := range out { // sets: order means nothing
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func normSnapshot(s mailstore.Snapshot) mailstore.Snapshot {
	msgs := make([]mailstore.Summary, len(s.Messages))
	for i, m := range s.Messages {
		m.Flags = normFlags(m.Flags)
		msgs[i] = m
	}
	s.Messages = msgs
	return s
}

func readBody(t *testing.T, ctx context.Context, a mailstore.Account, mb int64, uid imap.UID) []byte {
	t.Helper()
	r, size, err := a.OpenMessage(ctx, mb, uid)
	if err != nil {
		t.Fatalf("OpenMessage %d: %v", uid, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || int64(len(b)) != size {
		t.Fatalf("read %d: %d bytes of %d: %v", uid, len(b), size, err)
	}
	return b
}

func TestImportFromMaildir(t *testing.T) {
	ctx := context.Background()
	src, err := maildir.Open(ctx, t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillMaildir(t, ctx, src)
	dst := openTestStore(t, Options{DSN: pgtest.NewDatabase(t)})
	defer dst.Close()
	// An account a user already opened on the new store (empty default
	// mailboxes) is replaced without --force.
	if a, err := dst.Open(ctx, "carol@example.com"); err != nil {
		t.Fatal(err)
	} else {
		a.Close()
	}

	var progress int
	res, errs := copyAll(t, ctx, src, dst, mailstore.ImportOptions{Progress: func(string, int64) { progress++ }})
	for i, err := range errs {
		if err != nil || res[i].Skipped || res[i].Messages == 0 {
			t.Fatalf("import %d: %+v, %v", i, res[i], err)
		}
	}
	if progress == 0 {
		t.Error("no progress reported")
	}
	names, _ := src.Accounts(ctx)
	if len(names) != 3 {
		t.Fatalf("accounts %v", names)
	}
	for _, n := range names {
		compareAccounts(t, ctx, n, src, dst)
	}

	// The copy survives a restart of the target.
	dst.Close()
	dst = openTestStore(t, Options{DSN: dst.opts.DSN})
	defer dst.Close()
	compareAccounts(t, ctx, "alice@example.com", src, dst)

	// Run again: every account is already copied.
	res, errs = copyAll(t, ctx, src, dst, mailstore.ImportOptions{})
	for i, err := range errs {
		if err != nil || !res[i].Skipped {
			t.Fatalf("second import %d: %+v, %v; want skipped", i, res[i], err)
		}
	}

	// New mail on the source: the target's copy is no longer the same
	// state and holds messages, so it is refused without Force ...
	a, _ := src.Open(ctx, "bob@example.com")
	if _, err := a.Deliver(ctx, strings.NewReader(testMessage(300, false)), mailstore.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	ex, err := src.Export(ctx, "bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Import(ctx, ex, mailstore.ImportOptions{}); !errors.Is(err, mailstore.ErrNotEmpty) {
		t.Fatalf("import over a different copy: %v, want ErrNotEmpty", err)
	}
	// ... and replaced with it.
	if res, err := dst.Import(ctx, ex, mailstore.ImportOptions{Force: true}); err != nil || res.Skipped {
		t.Fatalf("forced import: %+v, %v", res, err)
	}
	ex.Close()
	compareAccounts(t, ctx, "bob@example.com", src, dst)

	// The copy goes on where the source left off: a new mailbox gets a
	// greater UIDVALIDITY, a delivery the next UID, a greater modseq and
	// an EMAILID no imported message has.
	b, err := dst.Open(ctx, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	list, _ := b.ListMailboxes(ctx)
	var maxUV uint32
	for _, m := range list {
		maxUV = max(maxUV, m.UIDValidity)
	}
	mb, err := b.CreateMailbox(ctx, "Brand/New", "")
	if err != nil || mb.UIDValidity <= maxUV {
		t.Errorf("new mailbox: UIDVALIDITY %d (%v), imported ones go up to %d", mb.UIDValidity, err, maxUV)
	}
	inbox, _ := b.Mailbox(ctx, mailstore.Inbox)
	before, _ := b.Status(ctx, inbox.ID)
	r, err := b.Deliver(ctx, strings.NewReader(testMessage(400, false)), mailstore.DeliverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := b.Status(ctx, inbox.ID)
	if r.UID != before.UIDNext || after.HighestModSeq <= before.HighestModSeq {
		t.Errorf("delivery after the copy: UID %d (UIDNEXT was %d), modseq %d → %d", r.UID, before.UIDNext, before.HighestModSeq, after.HighestModSeq)
	}
	ids := map[string]imap.UID{}
	for _, m := range list {
		infos, err := b.Fetch(ctx, m.ID, imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, mailstore.FetchOptions{EmailID: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, mi := range infos {
			if m.ID == inbox.ID && mi.UID == r.UID {
				continue
			}
			ids[mi.EmailID] = mi.UID
		}
	}
	nw, _ := b.Fetch(ctx, inbox.ID, imap.UIDSetNum(r.UID), mailstore.FetchOptions{EmailID: true})
	if len(nw) != 1 {
		t.Fatalf("fetch new message: %v", nw)
	}
	if _, dup := ids[nw[0].EmailID]; dup {
		t.Errorf("new message got EMAILID %s, which an imported message has", nw[0].EmailID)
	}
}

// TestImportRefusesChangedSource: an account that changes while it is
// copied (a server still running) is not committed.
func TestImportRefusesChangedSource(t *testing.T) {
	ctx := context.Background()
	src, err := maildir.Open(ctx, t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	a, err := src.Open(ctx, "dave@example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := range 3 {
		if _, err := a.Deliver(ctx, strings.NewReader(testMessage(i, false)), mailstore.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dst := openTestStore(t, Options{DSN: pgtest.NewDatabase(t)})
	defer dst.Close()
	ex, err := src.Export(ctx, "dave@example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if _, err := a.Deliver(ctx, strings.NewReader(testMessage(9, false)), mailstore.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Import(ctx, ex, mailstore.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("import of a changed account: %v, want a refusal", err)
	}
	var n int
	if err := dst.pool.QueryRow(ctx, `SELECT count(*) FROM mail_accounts WHERE name = 'dave@example.com'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("account rows after a refused import: %d (%v)", n, err)
	}
	ex2, err := src.Export(ctx, "dave@example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer ex2.Close()
	if res, err := dst.Import(ctx, ex2, mailstore.ImportOptions{}); err != nil || res.Messages != 4 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	compareAccounts(t, ctx, "dave@example.com", src, dst)
}

// streamedBodies is PGBodies behind another type: Import then streams
// every body through the BodyStore, as it does for a store other than
// PGBodies, instead of batching small ones.
type streamedBodies struct{ BodyStore }

func TestImportStreamsThroughBodyStore(t *testing.T) {
	ctx := context.Background()
	src, err := maildir.Open(ctx, t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fillMaildir(t, ctx, src)
	pool, err := pgdb.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	dst := openTestStore(t, Options{Pool: pool, Bodies: streamedBodies{NewPGBodies(pool)}})
	defer dst.Close()
	res, errs := copyAll(t, ctx, src, dst, mailstore.ImportOptions{})
	for i, err := range errs {
		if err != nil || res[i].Messages == 0 {
			t.Fatalf("import %d: %+v, %v", i, res[i], err)
		}
	}
	names, _ := src.Accounts(ctx)
	for _, n := range names {
		compareAccounts(t, ctx, n, src, dst)
	}
}
