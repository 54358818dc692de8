package maildir

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/mailstore"
)

// TestCheckAccount runs the check and the repair on each kind of damage,
// with a second Store standing for the running server: the check changes
// nothing, the repair fixes the damage, and the "server" sees the result.
func TestCheckAccount(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(t *testing.T, acctDir string)
		problem string
	}{
		{name: "healthy", damage: func(*testing.T, string) {}},
		{name: "lost file", problem: "indexed messages have no file (UID 3)", damage: func(t *testing.T, acctDir string) {
			files, _ := filepath.Glob(filepath.Join(acctDir, maildirDir, "1", "cur", "*"))
			for _, f := range files {
				b, _ := os.ReadFile(f)
				if strings.Contains(string(b), "inbox 2\r\n") {
					os.Remove(f)
				}
			}
		}},
		{name: "unindexed file", problem: "1 message files have no index row", damage: func(t *testing.T, acctDir string) {
			cur := filepath.Join(acctDir, maildirDir, "1", "cur")
			old := filepath.Join(cur, "1600000000.M1P1Q1.other:2,S")
			os.WriteFile(old, []byte(testMessage("old unindexed", "x")), 0o600)
			past := time.Now().Add(-2 * time.Hour)
			os.Chtimes(old, past, past)
			// A young one may be a delivery of the server: left alone.
			os.WriteFile(filepath.Join(cur, "1900000000.M1P1Q1.other:2,"), []byte(testMessage("young unindexed", "x")), 0o600)
		}},
		{name: "counters", problem: `mailbox "INBOX": counters say`, damage: func(t *testing.T, acctDir string) {
			db, err := sql.Open("sqlite3", filepath.Join(acctDir, indexFile))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(`UPDATE mailboxes SET msgs = msgs + 5, bytes = bytes + 5000 WHERE name = 'INBOX'`); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "damaged index", problem: "index unusable: ", damage: func(t *testing.T, acctDir string) {
			idx := filepath.Join(acctDir, indexFile)
			root, size := pageOf(t, idx, "messages_snapshot")
			f, _ := os.OpenFile(idx, os.O_WRONLY, 0)
			f.WriteAt(garbage(size), (root-1)*size)
			f.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			srv, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			fillAccount(t, srv, testAccount, 10)
			acc := openAccount(t, srv, testAccount)
			before, beforeBoxes := accountState(t, acc)
			acc.Close()
			acctDir := filepath.Join(dir, accountDirName(testAccount))
			if tc.name == "damaged index" {
				// Damage to the file itself: with the server stopped, so
				// the write-ahead log holds no newer copy of the page.
				srv.Close()
				tc.damage(t, acctDir)
				if srv, err = Open(ctx, dir, Options{}); err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
			} else {
				tc.damage(t, acctDir)
			}

			adm, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer adm.Close()
			if _, err := adm.CheckAccount(ctx, "nobody@example.org", false); !errors.Is(err, mailstore.ErrNoSuchAccount) {
				t.Errorf("check of an unknown account: %v", err)
			}
			idxBefore, _ := os.ReadFile(filepath.Join(acctDir, indexFile))
			rep, err := adm.CheckAccount(ctx, testAccount, false)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem == "" {
				if len(rep.Problems) != 0 || rep.Messages != len(before) {
					t.Fatalf("healthy account: %+v", rep)
				}
				return
			}
			if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], tc.problem) {
				t.Fatalf("problems %q, want one containing %q", rep.Problems, tc.problem)
			}
			idxAfter, _ := os.ReadFile(filepath.Join(acctDir, indexFile))
			if string(idxBefore) != string(idxAfter) {
				t.Errorf("a check without --repair changed the index")
			}
			if aside, _ := filepath.Glob(filepath.Join(acctDir, indexFile+".corrupt-*")); len(aside) != 0 {
				t.Errorf("a check without --repair moved the index aside")
			}

			rep, err = adm.CheckAccount(ctx, testAccount, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Repaired) == 0 || len(rep.Remaining) != 0 {
				t.Errorf("repair: %+v", rep)
			}
			// The "server" opens the account again and sees the repair.
			acc = openAccount(t, srv, testAccount)
			after, afterBoxes := accountState(t, acc)
			// Counters and usage as a fresh open sees them: a running
			// server refreshes its usage figure when it next opens the
			// account.
			fresh, err := Open(ctx, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			checkCounters(t, openAccount(t, fresh, testAccount))
			switch tc.name {
			case "lost file":
				if _, ok := after[testAccount+" inbox 2"]; ok || len(after) != len(before)-1 {
					t.Errorf("lost message still listed: %d messages", len(after))
				}
			case "unindexed file":
				if _, ok := after["old unindexed"]; !ok {
					t.Errorf("old file not indexed")
				}
				if _, ok := after["young unindexed"]; ok {
					t.Errorf("young file indexed by the check")
				}
			case "damaged index":
				for subj, b := range before {
					if a := after[subj]; a != b {
						t.Errorf("%q: %+v, was %+v", subj, a, b)
					}
				}
				if afterBoxes["INBOX"].uidValidity != beforeBoxes["INBOX"].uidValidity {
					t.Errorf("UIDVALIDITY changed")
				}
				if aside, _ := filepath.Glob(filepath.Join(acctDir, indexFile+".corrupt-*[0-9]")); len(aside) != 1 {
					t.Errorf("damaged index not kept aside: %v", aside)
				}
			}
			if rep, err := adm.CheckAccount(ctx, testAccount, false); err != nil || len(rep.Problems) != 0 {
				t.Errorf("check after repair: %+v, %v", rep, err)
			}
		})
	}
}
