package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

const testAccount = "ann@example.org"

// testData makes a data_dir with one account holding n messages in INBOX
// (the first flagged \Seen) and a few other files; it returns data_dir and
// the open store (closed at cleanup).
func testData(t testing.TB, n int) (string, *maildir.Store) {
	t.Helper()
	ctx := context.Background()
	dataDir := filepath.Join(t.TempDir(), "data")
	st, err := maildir.Open(ctx, filepath.Join(dataDir, "accounts"), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	acct, err := st.Open(ctx, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: %d\r\nMessage-ID: <%d@test>\r\n\r\nbody %d\r\n", i, i, i)
		if _, err := acct.Deliver(ctx, strings.NewReader(msg), mailstore.DeliverOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mb, err := acct.Mailbox(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acct.StoreFlags(ctx, mb.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dataDir, "tls"), 0o700)
	os.WriteFile(filepath.Join(dataDir, "tls", "cert.pem"), []byte("certificate"), 0o644)
	os.MkdirAll(filepath.Join(dataDir, "spool", "smtpd"), 0o700)
	os.WriteFile(filepath.Join(dataDir, "spool", "smtpd", "inflight"), []byte("not yet accepted"), 0o600)
	return dataDir, st
}

func run1(t testing.TB, opts Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func rows(t *testing.T, db, query string) int {
	t.Helper()
	d, err := sqlitedb.OpenFile(db, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBackupIncrementalVerifyRestore(t *testing.T) {
	ctx := context.Background()
	dataDir, st := testData(t, 10)
	dir := filepath.Join(t.TempDir(), "backups")
	cfg := filepath.Join(t.TempDir(), "posthouse.toml")
	os.WriteFile(cfg, []byte("data_dir = \"x\"\n"), 0o600)
	opts := Options{DataDir: dataDir, Dir: dir, External: []External{{Path: cfg, Role: "config"}}, Copy: true}

	res := run1(t, opts)
	if res.Messages != 10 || res.Copied != 10 || res.Reused != 0 || res.Linked != 0 || res.Databases != 1 || res.Externals != 1 {
		t.Fatalf("first backup: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(res.Snapshot, "data", "spool")); err == nil {
		t.Error("spool/ (mail not yet accepted) was saved")
	}
	if _, err := Verify(ctx, dir); err != nil {
		t.Fatal(err)
	}

	// Two more messages: the second backup copies those two only.
	acct, _ := st.Open(ctx, testAccount)
	for i := 0; i < 2; i++ {
		acct.Deliver(ctx, strings.NewReader("Subject: new\r\n\r\nnew\r\n"), mailstore.DeliverOptions{})
	}
	acct.Close()
	res2 := run1(t, opts)
	if res2.Messages != 12 || res2.Copied != 2 || res2.Reused != 10 || res2.Previous != res.Snapshot {
		t.Fatalf("second backup: %+v", res2)
	}
	// Without --copy, on one file system: links to data_dir.
	res3 := run1(t, Options{DataDir: dataDir, Dir: filepath.Join(t.TempDir(), "b2")})
	if res3.Linked != 12 || res3.Copied != 0 {
		t.Fatalf("linked backup: %+v", res3)
	}

	// Keep prunes the oldest.
	opts.Keep = 2
	res4 := run1(t, opts)
	if len(res4.Pruned) != 1 || res4.Pruned[0] != res.Snapshot {
		t.Fatalf("pruned %v, want the first snapshot", res4.Pruned)
	}
	if _, err := Verify(ctx, res2.Snapshot); err != nil {
		t.Fatalf("the second snapshot after pruning the first: %v", err)
	}

	// Restore: refused into a non-empty data_dir, done into an empty one.
	if _, err := Restore(ctx, RestoreOptions{Dir: dir, DataDir: dataDir}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore over data_dir: %v", err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	cfgOut := filepath.Join(t.TempDir(), "restored.toml")
	rr, err := Restore(ctx, RestoreOptions{Dir: dir, DataDir: target, ConfigTo: cfgOut})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Snapshot != res4.Snapshot || rr.ConfigWritten != cfgOut {
		t.Fatalf("%+v", rr)
	}
	if b, _ := os.ReadFile(cfgOut); string(b) != "data_dir = \"x\"\n" {
		t.Fatalf("configuration %q", b)
	}
	rst, err := maildir.Open(ctx, filepath.Join(target, "accounts"), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	if err := rst.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	a1, _ := st.Open(ctx, testAccount)
	defer a1.Close()
	a2, err := rst.Open(ctx, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	m1, _ := a1.Mailbox(ctx, "INBOX")
	m2, _ := a2.Mailbox(ctx, "INBOX")
	s1, _ := a1.Status(ctx, m1.ID)
	s2, _ := a2.Status(ctx, m2.ID)
	if m1.UIDValidity != m2.UIDValidity || fmt.Sprint(s1) != fmt.Sprint(s2) {
		t.Fatalf("restored INBOX %+v %+v, source %+v %+v", m2, s2, m1, s1)
	}

	// Force replaces what data_dir holds.
	os.WriteFile(filepath.Join(target, "stray"), nil, 0o600)
	if _, err := Restore(ctx, RestoreOptions{Dir: dir, DataDir: target, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(target, "stray")); err == nil {
		t.Fatal("--force kept a file")
	}
}

// TestBackupRefusesDirInsideDataDir: a backup inside data_dir would back
// itself up.
func TestBackupRefusesDirInsideDataDir(t *testing.T) {
	dataDir, _ := testData(t, 1)
	if _, err := Run(context.Background(), Options{DataDir: dataDir, Dir: filepath.Join(dataDir, "b")}); err == nil {
		t.Fatal("backup into data_dir accepted")
	}
}

// TestBackupFilesVanish: a message expunged after the index copy is
// handled by copying again; one that keeps vanishing is trimmed from the
// copy as an expunge. Either way verify passes.
func TestBackupFilesVanish(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		every       bool // remove a file after every copy, not just the first
		wantRetries int
		wantTrimmed int
		wantSaved   int
	}{
		// …and a mailbox created after the walk, with a message.
		{name: "expunged once", wantRetries: 1, wantSaved: 6},
		{name: "expunged without pause", every: true, wantRetries: maxSnapshotTries - 1, wantTrimmed: 1, wantSaved: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir, st := testData(t, 6)
			acct, _ := st.Open(ctx, testAccount)
			defer acct.Close()
			inbox, _ := acct.Mailbox(ctx, "INBOX")
			index := ""
			var next imap.UID = 6
			testHookCopied = func(rel string, try int) {
				if !strings.HasSuffix(rel, "/index.sqlite") || (try > 1 && !tc.every) {
					return
				}
				index = rel
				if tc.every {
					// A file gone from under its row, every time.
					files, _ := maildir.SnapshotFiles(ctx, filepath.Join(dataDir, filepath.FromSlash(rel)))
					os.Remove(filepath.Join(dataDir, filepath.Dir(filepath.FromSlash(rel)), filepath.FromSlash(files[len(files)-1])))
					return
				}
				if _, err := acct.CreateMailbox(ctx, "New", ""); err != nil {
					t.Error(err)
				}
				if _, err := acct.Append(ctx, "New", strings.NewReader("Subject: n\r\n\r\nn\r\n"), mailstore.AppendOptions{}); err != nil {
					t.Error(err)
				}
				uids := imap.UIDSetNum(next)
				acct.StoreFlags(ctx, inbox.ID, uids, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0)
				inboxDir := filepath.Join(dataDir, filepath.Dir(filepath.FromSlash(rel)), "maildir", fmt.Sprint(inbox.ID))
				before := messageFiles(t, inboxDir)
				if _, err := acct.Expunge(ctx, inbox.ID, &uids); err != nil {
					t.Error(err)
				}
				waitMessageFiles(t, inboxDir, before-1)
				next--
			}
			defer func() { testHookCopied = nil }()
			dir := filepath.Join(t.TempDir(), "b")
			res := run1(t, Options{DataDir: dataDir, Dir: dir, Copy: true})
			if res.Retries != tc.wantRetries || res.Expunged != tc.wantTrimmed || res.Messages != tc.wantSaved {
				t.Fatalf("%+v", res)
			}
			if _, err := Verify(ctx, dir); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(res.Snapshot, "data", filepath.FromSlash(index))
			if n := rows(t, db, `SELECT count(*) FROM messages`); n != tc.wantSaved {
				t.Fatalf("%d rows in the saved index", n)
			}
			if tc.every {
				if n := rows(t, db, `SELECT count(*) FROM expunged`); n == 0 {
					t.Fatal("trimmed message not recorded as expunged")
				}
			}
		})
	}
}

// messageFiles counts the message files of a Maildir folder. (Errors are
// reported with Error: the backup's hooks call it.)
func messageFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Error(err)
		}
		n += len(entries)
	}
	return n
}

// waitMessageFiles waits until the folder holds want message files: the
// store unlinks an expunged message's file after Expunge returns.
func waitMessageFiles(t *testing.T, dir string, want int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		n := messageFiles(t, dir)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s holds %d message files, want %d", dir, n, want)
			return
		}
	}
}

// TestVerifyFindsDamage: a changed, missing or extra file, a damaged
// database.
func TestVerifyFindsDamage(t *testing.T) {
	ctx := context.Background()
	dataDir, _ := testData(t, 3)
	for _, tc := range []struct {
		name   string
		damage func(snap string, m *Manifest)
		want   string
	}{
		{"changed message", func(snap string, m *Manifest) {
			for _, e := range m.Entries {
				if e.Kind == KindMessage {
					os.Remove(filepath.Join(snap, e.Path)) // a link: replace, not write through
					os.WriteFile(filepath.Join(snap, e.Path), []byte("other"), 0o600)
					return
				}
			}
		}, "differs"},
		{"missing file", func(snap string, m *Manifest) {
			for _, e := range m.Entries {
				if e.Kind == KindMessage {
					os.Remove(filepath.Join(snap, e.Path))
					return
				}
			}
		}, "missing"},
		{"extra file", func(snap string, m *Manifest) {
			os.WriteFile(filepath.Join(snap, "data", "extra"), nil, 0o600)
		}, "not in its manifest"},
		{"damaged database", func(snap string, m *Manifest) {
			for i, e := range m.Entries {
				if e.Kind == KindDatabase {
					p := filepath.Join(snap, e.Path)
					b, _ := os.ReadFile(p)
					for j := 4096; j < len(b); j++ {
						b[j] ^= 0x5a
					}
					os.Remove(p)
					os.WriteFile(p, b, 0o600)
					// The manifest agrees, so only integrity_check can tell.
					sum, n, _ := hashFile(p)
					m.Entries[i].SHA256, m.Entries[i].Size = sum, n
					os.Remove(filepath.Join(snap, ManifestName))
					writeManifest(snap, m)
					return
				}
			}
		}, "integrity_check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run1(t, Options{DataDir: dataDir, Dir: filepath.Join(t.TempDir(), "b"), Copy: true})
			m, err := ReadManifest(res.Snapshot)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(res.Snapshot, m)
			v, err := Verify(ctx, res.Snapshot)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(strings.Join(v.Problems, "\n"), tc.want) {
				t.Fatalf("err %v, problems %q; want one about %q", err, v.Problems, tc.want)
			}
		})
	}
}

func TestParseManifest(t *testing.T) {
	good := `{"format":"posthouse-backup","version":1,"created":"2027-01-01T00:00:00Z","data_dir":"/d"}
{"path":"data","kind":"dir","mode":448}
{"path":"data/users.sqlite","kind":"database","mode":384,"size":3,"sha256":"` + strings.Repeat("a", 64) + `"}
{"end":true,"entries":2}
`
	m, err := parseManifest(strings.NewReader(good))
	if err != nil || len(m.Entries) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	for _, tc := range []struct{ name, in string }{
		{"cut short", strings.TrimSuffix(good, "{\"end\":true,\"entries\":2}\n")},
		{"wrong count", strings.Replace(good, `"entries":2`, `"entries":3`, 1)},
		{"escapes", strings.Replace(good, `data/users.sqlite`, `data/../../etc/passwd`, 1)},
		{"absolute", strings.Replace(good, `data/users.sqlite`, `/etc/passwd`, 1)},
		{"outside data", strings.Replace(good, `data/users.sqlite`, `users.sqlite`, 1)},
		{"no checksum", strings.Replace(good, strings.Repeat("a", 64), "", 1)},
		{"kind", strings.Replace(good, `"database"`, `"device"`, 1)},
		{"format", strings.Replace(good, `posthouse-backup`, `other`, 1)},
		{"after end", good + good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseManifest(strings.NewReader(tc.in)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":"posthouse-backup","version":1}` + "\n" + `{"end":true,"entries":0}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, e := range m.Entries {
			if err := e.check(); err != nil {
				t.Fatalf("accepted entry fails check: %v", err)
			}
			if !filepath.IsLocal(filepath.FromSlash(e.Path)) {
				t.Fatalf("accepted path %q", e.Path)
			}
		}
	})
}
