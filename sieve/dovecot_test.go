package sieve

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestDovecotSieveTest runs the conformance table through Dovecot
// Pigeonhole's sieve-test (Debian's dovecot-sieve) and compares what
// both do with each message: the copies stored and their flags,
// redirects, rejects, a vacation sent, and which scripts fail to compile.
// Cases marked notDovecot are left out (see the package doc for the
// deliberate differences).
func TestDovecotSieveTest(t *testing.T) {
	bin, err := exec.LookPath("sieve-test")
	if err != nil {
		t.Skip("sieve-test not installed (apt-get install dovecot-sieve); skipping the comparison with Dovecot")
	}
	if testing.Short() {
		t.Skip("short mode")
	}
	// sieve-test drops to nobody: t.TempDir's parent is private.
	dir, err := os.MkdirTemp("", "sieve-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "dovecot.conf")
	// sieve-test refuses to run as root: it drops to nobody, so every
	// file it reads must be readable by all.
	writeFile(t, conf, `mail_uid = 65534
mail_gid = 65534
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:`+dir+`/mail
plugin {
  sieve = file:`+dir+`/personal
  sieve_global = `+dir+`/global
  sieve_extensions = +editheader +vacation-seconds +spamtest +spamtestplus
  sieve_spamtest_status_type = score
  sieve_spamtest_status_header = X-Spam-Score
  sieve_spamtest_max_value = 1
  sieve_vacation_min_period = 1d
}
`)
	compared := 0
	for i, tc := range confCases {
		// sieve-test takes no null sender on its command line.
		if tc.notDovecot != "" || tc.runErr != nil || tc.env.Duplicates != nil || tc.env.Mailboxes != nil || tc.env.Envelope.From == "<>" {
			continue
		}
		compared++
		t.Run(tc.name, func(t *testing.T) {
			cdir := filepath.Join(dir, fmt.Sprintf("case%03d", i))
			for _, sub := range []string{"", "personal", "global"} {
				if err := os.MkdirAll(filepath.Join(cdir, sub), 0o777); err != nil {
					t.Fatal(err)
				}
				os.Chmod(filepath.Join(cdir, sub), 0o777)
			}
			if fs, ok := tc.env.Scripts.(fakeScripts); ok {
				for k, src := range fs {
					loc, name, _ := strings.Cut(k, "/")
					writeFile(t, filepath.Join(cdir, loc, name+".sieve"), src)
				}
			}
			c := strings.ReplaceAll(readFile(t, conf), dir+"/personal", cdir+"/personal")
			c = strings.ReplaceAll(c, dir+"/global", cdir+"/global")
			cconf := filepath.Join(cdir, "dovecot.conf")
			writeFile(t, cconf, c)
			script := filepath.Join(cdir, "script.sieve")
			writeFile(t, script, tc.script)
			msg := tc.msg
			if msg == "" {
				msg = msgPlain
			}
			mfile := filepath.Join(cdir, "msg.eml")
			writeFile(t, mfile, msg)
			env := testEnv(t, msg, tc.env)
			cmd := exec.Command(bin, "-c", cconf, "-f", env.Envelope.From, "-r", env.Envelope.To, script, mfile)
			cmd.Env = append(os.Environ(), "TZ=Etc/GMT-1") // testNow's zone, +0100
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			runErr := cmd.Run()
			if tc.compileErr != "" {
				if runErr == nil && !strings.Contains(errOut.String(), "error") {
					t.Errorf("Posthouse refuses the script (%s); sieve-test accepts it:\n%s", tc.compileErr, out.String())
				}
				return
			}
			if runErr != nil {
				t.Fatalf("sieve-test: %v\n%s%s", runErr, out.String(), errOut.String())
			}
			res, cerr, err := runCase(t, tc)
			if cerr != nil || err != nil {
				t.Fatalf("posthouse: %v %v", cerr, err)
			}
			got, want := summary(res), parseSieveTest(out.String())
			if !reflect.DeepEqual(got, want) {
				t.Errorf("posthouse %q, sieve-test %q\n%s", got, want, out.String())
			}
		})
	}
	t.Logf("compared %d cases with sieve-test", compared)
}

// parseSieveTest reads sieve-test's report into summary's form.
func parseSieveTest(out string) []string {
	var list []string
	var cur *string
	var flags []string
	flush := func() {
		if cur != nil {
			s := *cur
			if len(flags) > 0 {
				sort.Strings(flags)
				s += " [" + strings.Join(flags, " ") + "]"
			}
			list = append(list, s)
		}
		cur, flags = nil, nil
	}
	for _, line := range strings.Split(out, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "* store message in folder: "):
			flush()
			s := "store " + strings.TrimPrefix(l, "* store message in folder: ")
			cur = &s
		case strings.HasPrefix(l, "+ add IMAP flags: "):
			for _, f := range strings.Fields(strings.TrimPrefix(l, "+ add IMAP flags: ")) {
				flags = append(flags, strings.ToLower(f))
			}
		case strings.HasPrefix(l, "* redirect message to: "):
			flush()
			s := "redirect " + strings.ToLower(strings.Trim(strings.TrimPrefix(l, "* redirect message to: "), "<>"))
			cur = &s
		case strings.HasPrefix(l, "* reject message"):
			flush()
			s := "reject"
			cur = &s
		case strings.HasPrefix(l, "* send vacation message"):
			flush()
			s := "vacation"
			cur = &s
		case strings.HasPrefix(l, "* "):
			flush()
		}
	}
	flush()
	sort.Strings(list)
	return list
}

func writeFile(t *testing.T, name, s string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
