package mailimport

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

type env struct {
	store  *maildir.Store
	ledger *Ledger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := maildir.Open(ctx, filepath.Join(dir, "accounts"), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := OpenLedger(ctx, filepath.Join(dir, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &env{store: st, ledger: l}
}

func (e *env) account(t *testing.T, name string) mailstore.Account {
	t.Helper()
	a, err := e.store.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func (e *env) importPath(t *testing.T, acct mailstore.Account, path string, opts PathOptions) Summary {
	t.Helper()
	im, err := New(context.Background(), acct, e.ledger, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := im.ImportPath(context.Background(), path, opts); err != nil {
		t.Fatalf("ImportPath: %v", err)
	}
	return im.Summary()
}

// stored is a message as the account has it.
type stored struct {
	hash  string
	flags string
	date  string
}

// contents lists every mailbox's messages, in UID order.
func contents(t *testing.T, acct mailstore.Account) map[string][]stored {
	t.Helper()
	ctx := context.Background()
	list, err := acct.ListMailboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]stored{}
	for _, mb := range list {
		snap, err := acct.Snapshot(ctx, mb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Messages) == 0 {
			continue
		}
		var set imap.UIDSet
		set.AddRange(1, 0)
		infos, err := acct.Fetch(ctx, mb.ID, set, mailstore.FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			r, _, err := acct.OpenMessage(ctx, mb.ID, info.UID)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, r)
			r.Close()
			var fl []string
			for _, f := range info.Flags {
				fl = append(fl, strings.ToLower(string(f)))
			}
			slices.Sort(fl)
			out[mb.Name] = append(out[mb.Name], stored{fmt.Sprintf("%x", h.Sum(nil))[:12], strings.Join(fl, " "), info.InternalDate.Format(time.RFC3339)})
		}
	}
	return out
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestImportThunderbirdIdempotent imports a Thunderbird "Local Folders"
// directory twice: the second run stores nothing.
func TestImportThunderbirdIdempotent(t *testing.T) {
	e := newEnv(t)
	acct := e.account(t, "alice@example.com")
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "Inbox"), "From - Mon Jan  1 10:00:00 2024\nX-Mozilla-Status: 0001\nSubject: read\n\nhello\n\n"+
		"From - Mon Jan  1 11:00:00 2024\nX-Mozilla-Status: 0000\nSubject: unread\n\n>From me\n\n"+
		"From - Mon Jan  1 12:00:00 2024\nX-Mozilla-Status: 0009\nSubject: deleted\n\nx\n\n"+
		"From - Mon Jan  1 13:00:00 2024\nSubject: read\n\nhello\n\n") // the same bytes as the first, once flags are taken out
	writeFile(t, filepath.Join(root, "Inbox.msf"), "// <!-- <mdb:mork:z v=\"1.4\"/> -->\n")
	writeFile(t, filepath.Join(root, "Sent"), "From - Tue Jan  2 10:00:00 2024\nX-Mozilla-Status: 0003\nSubject: sent\n\nbody\n")
	writeFile(t, filepath.Join(root, "Projects.sbd", "Posthouse"), "From - Tue Jan  2 10:00:00 2024\nX-Mozilla-Keys: $label1\nSubject: p\n\nbody\n")
	writeFile(t, filepath.Join(root, "Empty"), "")
	writeFile(t, filepath.Join(root, "popstate.dat"), "# POP3 State File\n")

	sum := e.importPath(t, acct, root, PathOptions{})
	if sum.Messages != 4 || sum.Skipped[SkipTBDeleted] != 1 || sum.Skipped[SkipDuplicate] != 1 {
		t.Fatalf("first run: %+v", sum)
	}
	if want := []string{"INBOX", "Projects/Posthouse", "Sent"}; !slices.Equal(sum.Mailboxes, want) {
		t.Errorf("mailboxes %q, want %q", sum.Mailboxes, want)
	}
	got := contents(t, acct)
	if len(got["INBOX"]) != 2 || got["INBOX"][0].flags != `\seen` || got["INBOX"][1].flags != "" {
		t.Errorf("INBOX: %+v", got["INBOX"])
	}
	if got["INBOX"][0].date != "2024-01-01T10:00:00Z" {
		t.Errorf("internal date %s, want the From_ line's", got["INBOX"][0].date)
	}
	if len(got["Sent"]) != 1 || got["Sent"][0].flags != `\answered \seen` {
		t.Errorf("Sent: %+v", got["Sent"])
	}
	if len(got["Projects/Posthouse"]) != 1 || got["Projects/Posthouse"][0].flags != "$label1" {
		t.Errorf("Projects/Posthouse: %+v", got["Projects/Posthouse"])
	}
	if _, err := acct.Mailbox(context.Background(), "Empty"); err != nil {
		t.Errorf("empty folder not created: %v", err)
	}
	mb, _ := acct.Mailbox(context.Background(), "INBOX")
	r, _, err := acct.OpenMessage(context.Background(), mb.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "Subject: unread\r\n\r\nFrom me\r\n" {
		t.Errorf("stored %q", b)
	}

	sum = e.importPath(t, acct, root, PathOptions{})
	if sum.Messages != 0 || sum.Skipped[SkipDuplicate] != 5 {
		t.Fatalf("second run: %+v", sum)
	}
	if again := contents(t, acct); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Errorf("second run changed the account")
	}
}

func TestImportTakeoutLabels(t *testing.T) {
	e := newEnv(t)
	acct := e.account(t, "bob@example.com")
	msg := func(labels, subject string) string {
		return "From 1@xxx Thu Jun 13 10:12:43 +0000 2024\nX-Gmail-Labels: " + labels + "\nSubject: " + subject + "\n\nbody\n\n"
	}
	path := filepath.Join(t.TempDir(), "All mail Including Spam and Trash.mbox")
	writeFile(t, path, msg("Inbox,Opened,Starred", "a")+msg("Sent,Opened", "b")+msg("Work/Clients,Opened", "c")+
		msg("Opened", "d")+msg("Spam,Unread", "e")+msg("Trash,Opened", "f")+msg("Chat", "g")+msg("Category Updates,Inbox,Unread", "h"))
	sum := e.importPath(t, acct, path, PathOptions{})
	if sum.Messages != 7 || sum.Skipped[SkipChat] != 1 {
		t.Fatalf("summary %+v", sum)
	}
	got := contents(t, acct)
	want := map[string][]string{
		"INBOX": {`\flagged \seen`, ""}, "Sent": {`\seen`}, "Work/Clients": {`\seen`}, "Archive": {`\seen`}, "Junk": {""}, "Trash": {`\seen`},
	}
	for name, flags := range want {
		var have []string
		for _, m := range got[name] {
			have = append(have, m.flags)
		}
		if !slices.Equal(have, flags) {
			t.Errorf("%s: flags %q, want %q", name, have, flags)
		}
	}
}

func TestImportMaildirTree(t *testing.T) {
	e := newEnv(t)
	acct := e.account(t, "carol@example.com")
	root := t.TempDir()
	d1 := time.Date(2019, 3, 4, 5, 6, 7, 0, time.UTC)
	file := func(rel, content string, mtime time.Time) {
		writeFile(t, filepath.Join(root, rel), content)
		os.Chtimes(filepath.Join(root, rel), mtime, mtime)
	}
	file("cur/1551675967.M1P1.old,S=20,W=22:2,S", "Subject: 1\n\nbody\n", d1)
	file("new/1551675968.M2P1.old", "Subject: 2\n\nbody\n", d1.Add(time.Second))
	file(".Sent/cur/1551675969.M3P1.old:2,RSa", "Subject: 3\n\nbody\n", d1.Add(2*time.Second))
	writeFile(t, filepath.Join(root, ".Sent", "dovecot-keywords"), "0 $Forwarded-by-me\n")
	file(".Lists.Go&AOk-/cur/1551675970.M4P1.old:2,F", "Subject: 4\n\nbody\n", d1.Add(3*time.Second))
	writeFile(t, filepath.Join(root, "dovecot-uidlist"), "3 V1 N5\n")

	sum := e.importPath(t, acct, root, PathOptions{Under: "Old mail"})
	if sum.Messages != 4 {
		t.Fatalf("summary %+v", sum)
	}
	got := contents(t, acct)
	if len(got["Old mail"]) != 2 || got["Old mail"][0].flags != `\seen` || got["Old mail"][0].date != "2019-03-04T05:06:07Z" {
		t.Errorf("Old mail: %+v", got["Old mail"])
	}
	if m := got["Old mail/Sent"]; len(m) != 1 || m[0].flags != `$forwarded-by-me \answered \seen` {
		t.Errorf("Old mail/Sent: %+v", m)
	}
	if m := got["Old mail/Lists/Goé"]; len(m) != 1 || m[0].flags != `\flagged` {
		t.Errorf("Old mail/Lists/Goé: %+v (have %v)", m, got)
	}
	sum = e.importPath(t, acct, root, PathOptions{Under: "Old mail"})
	if sum.Messages != 0 || sum.Skipped[SkipDuplicate] != 4 {
		t.Fatalf("second run: %+v", sum)
	}
}

// TestPendingResolved: a run cut between the append and its ledger row
// leaves a pending row; the next Importer finds the message and the next
// import does not store it again.
func TestPendingResolved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	acct := e.account(t, "dave@example.com")
	body := "Subject: once\r\n\r\nbody\r\n"
	im, err := New(ctx, acct, e.ledger, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := spool(strings.NewReader(body), "")
	if err != nil {
		t.Fatal(err)
	}
	mb, err := im.mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	ent := entry{account: acct.Name(), mailbox: mb.ID, uidValidity: mb.UIDValidity, hash: sp.hash}
	// Another message arrives meanwhile, and then ours: the "crash" comes
	// before finish, and ours is found as start-up reconciliation
	// indexes a file whose row never committed: no flags, today's date.
	date := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := e.ledger.begin(ctx, ent, 1, sp.size, []imap.Flag{imap.FlagSeen}, date); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"Subject: other\r\n\r\nxxxxx\r\n", body} {
		if _, err := acct.Append(ctx, "INBOX", strings.NewReader(b), mailstore.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(ctx, acct, e.ledger, Options{}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.ledger.has(ctx, ent); !ok {
		t.Fatal("pending append not found in the mailbox")
	}
	im, err = New(ctx, acct, e.ledger, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := im.Put(ctx, Message{Mailbox: "INBOX", Body: strings.NewReader(body)}); ok || err != nil {
		t.Fatalf("Put after resolution: stored %v, %v", ok, err)
	}
	if rows, _ := e.ledger.pending(ctx, acct.Name()); len(rows) != 0 {
		t.Fatalf("pending rows left: %d", len(rows))
	}
	got := contents(t, acct)["INBOX"]
	if len(got) != 2 || got[1].flags != `\seen` || got[1].date != "2020-02-03T04:05:06Z" {
		t.Fatalf("INBOX after resolution: %+v", got)
	}
}

// TestExportImportRoundTrip exports an account in both formats and
// imports each into a new account: every mailbox holds the same messages,
// flags, keywords and internal dates.
func TestExportImportRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	src := e.account(t, "src@example.com")
	if _, err := src.CreateMailbox(ctx, "Projects/Go.dev", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := src.CreateMailbox(ctx, "Entwürfe & Co", ""); err != nil {
		t.Fatal(err)
	}
	zone := time.FixedZone("", 5*3600+1800)
	for i, m := range []struct {
		mailbox string
		flags   []imap.Flag
	}{
		{"INBOX", []imap.Flag{imap.FlagSeen, "$Label1"}},
		{"INBOX", nil},
		{"INBOX", []imap.Flag{imap.FlagFlagged, imap.FlagAnswered, imap.FlagDeleted, imap.FlagDraft, "$Forwarded", "Work"}},
		{"Sent", []imap.Flag{imap.FlagSeen}},
		{"Projects/Go.dev", []imap.Flag{"NonJunk"}},
		{"Entwürfe & Co", []imap.Flag{imap.FlagDraft}},
	} {
		body := fmt.Sprintf("From: a@example.com\r\nSubject: %d\r\n\r\nFrom the top\r\n>From quoted\r\n%s\r\n", i, strings.Repeat("line\r\n", i*100))
		date := time.Date(2020, 1, i+1, 12, 0, 0, 0, zone)
		if _, err := src.Append(ctx, m.mailbox, strings.NewReader(body), mailstore.AppendOptions{Flags: m.flags, InternalDate: date}); err != nil {
			t.Fatal(err)
		}
	}
	want := contents(t, src)
	for _, format := range []Format{FormatMaildir, FormatMbox} {
		t.Run(string(format), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "export")
			sum, err := Export(ctx, src, dir, format, nil)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Messages != 6 {
				t.Fatalf("exported %+v", sum)
			}
			if _, err := Export(ctx, src, dir, format, nil); err == nil {
				t.Fatal("export into a non-empty directory succeeded")
			}
			dst := e.account(t, "dst-"+string(format)+"@example.com")
			isum := e.importPath(t, dst, dir, PathOptions{})
			if isum.Messages != 6 {
				t.Fatalf("imported %+v", isum)
			}
			got := contents(t, dst)
			want := want
			if format == FormatMaildir {
				// A file's modification time keeps the instant, not
				// the zone.
				got, want = inUTC(t, got), inUTC(t, want)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("after the round trip:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func inUTC(t *testing.T, m map[string][]stored) map[string][]stored {
	out := map[string][]stored{}
	for k, list := range m {
		for _, s := range list {
			d, err := time.Parse(time.RFC3339, s.date)
			if err != nil {
				t.Fatal(err)
			}
			s.date = d.UTC().Format(time.RFC3339)
			out[k] = append(out[k], s)
		}
	}
	return out
}

// TestImportMemoryFlat imports a 128 MiB mbox with a 40 MiB one-line
// message (a quarter of that under the race detector) and checks that the
// heap does not grow with the file.
func TestImportMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 256 MiB")
	}
	e := newEnv(t)
	acct := e.account(t, "big@example.com")
	path := filepath.Join(t.TempDir(), "big.mbox")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	lineMiB, messages := 40, 22
	if raceEnabled {
		lineMiB, messages = 10, 5
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "From - Mon Jan  1 00:00:00 2024\nSubject: one line\n\n")
	line := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	for range lineMiB {
		w.WriteString(line)
	}
	w.WriteString("\n\n")
	para := strings.Repeat("The quick brown fox jumps over the lazy dog 0123456789.\n", 1<<10) // 56 KiB
	for i := range messages {
		fmt.Fprintf(w, "From - Mon Jan  1 00:00:%02d 2024\nSubject: %d\n\n", i, i)
		for range 73 {
			w.WriteString(para)
		}
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(path)

	var base, peak runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	peakInuse := base.HeapInuse
	sample := func(Progress) {
		runtime.ReadMemStats(&peak)
		peakInuse = max(peakInuse, peak.HeapInuse)
	}
	im, err := New(context.Background(), acct, e.ledger, Options{TempDir: t.TempDir(), Progress: sample})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := im.ImportPath(context.Background(), path, PathOptions{}); err != nil {
		t.Fatal(err)
	}
	dur := time.Since(start)
	sum := im.Summary()
	if sum.Messages != int64(messages+1) {
		t.Fatalf("summary %+v", sum)
	}
	growth := int64(peakInuse) - int64(base.HeapInuse)
	t.Logf("imported %d MiB in %v (%.1f MB/s); heap in use %d MiB before, peak growth %.1f MiB",
		fi.Size()>>20, dur.Round(time.Millisecond), float64(fi.Size())/1e6/dur.Seconds(), base.HeapInuse>>20, float64(growth)/(1<<20))
	if limit := int64(16 << 20); growth > limit {
		t.Errorf("heap grew by %d MiB importing %d MiB (limit %d MiB)", growth>>20, fi.Size()>>20, limit>>20)
	}
}
