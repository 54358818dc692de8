package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminSieveCommands drives admin sieve and vacation: output shapes,
// compile errors with their line, exit codes, and user remove clearing
// the scripts.
func TestAdminSieveCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "p.toml")
	cfg := "hostname = \"mail.a.test\"\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\n[listen]\npop3 = \"\"\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "rules.sieve")
	os.WriteFile(good, []byte("require \"fileinto\";\nif header :contains \"subject\" \"x\" { fileinto \"Junk\"; }\n"), 0o644)
	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(bad, []byte("keep;\nfileinto \"x\";\n"), 0o644)
	msg := filepath.Join(dir, "away.txt")
	os.WriteFile(msg, []byte("I am away.\n"), 0o644)
	tests := []struct {
		name           string
		args           []string
		stdin          string
		code           int
		stdout, stderr string
	}{
		{"domain", []string{"domain", "add", "a.test"}, "", 0, "", ""},
		{"user", []string{"user", "add", "--password-stdin", "alice@a.test"}, "secret-pass-1\n", 0, "", ""},
		{"list empty", []string{"sieve", "list", "alice@a.test"}, "", 0, "has no Sieve scripts", ""},
		{"no such user", []string{"sieve", "list", "bob@a.test"}, "", exitNotFound, "", ""},
		{"put bad", []string{"sieve", "put", "alice@a.test", "bad", bad}, "", exitUsage, "", "line 2, column 1"},
		{"put file", []string{"sieve", "put", "alice@a.test", "rules", good}, "", 0, "stored script rules", ""},
		{"put stdin activate", []string{"sieve", "put", "--activate", "alice@a.test", "other"}, "keep;\n", 0, "script other is active", ""},
		{"bad name", []string{"sieve", "put", "alice@a.test", "a/b"}, "keep;", exitUsage, "", "bad script name"},
		{"list", []string{"sieve", "list", "alice@a.test"}, "", 0, "other  yes     6", ""},
		{"get", []string{"sieve", "get", "Alice@A.test", "rules"}, "", 0, "fileinto \"Junk\"", ""},
		{"get missing", []string{"sieve", "get", "alice@a.test", "nope"}, "", exitNotFound, "", "no such script"},
		{"remove active", []string{"sieve", "remove", "alice@a.test", "other"}, "", exitRefused, "", "--force"},
		{"activate", []string{"sieve", "activate", "alice@a.test", "rules"}, "", 0, "script rules of alice@a.test is active", ""},
		{"remove", []string{"sieve", "remove", "alice@a.test", "other"}, "", 0, "removed script other", ""},
		{"remove force", []string{"sieve", "remove", "--force", "alice@a.test", "rules"}, "", 0, "removed script rules", ""},
		{"vacation show none", []string{"vacation", "show", "alice@a.test"}, "", exitNotFound, "", "no out-of-office"},
		{"vacation set usage", []string{"vacation", "set", "alice@a.test"}, "", exitUsage, "", "required"},
		{"vacation bad date", []string{"vacation", "set", "--subject", "Away", "--message-file", msg, "--from", "soon", "alice@a.test"}, "", exitUsage, "", "bad date"},
		{"vacation backwards", []string{"vacation", "set", "--subject", "Away", "--message-file", msg, "--from", "2027-07-10", "--until", "2027-07-01", "alice@a.test"}, "", exitUsage, "", "ends before it starts"},
		{"vacation set", []string{"vacation", "set", "--subject", "Away", "--message-file", msg, "--from", "2027-07-01", "--until", "2027-07-14", "--days", "3", "alice@a.test"}, "", 0, "out-of-office set for alice@a.test (from 2027-07-01 00:00", ""},
		{"vacation show", []string{"vacation", "show", "alice@a.test"}, "", 0, "Subject: Away\nRepeat:  once per sender every 3 days", ""},
		{"vacation off", []string{"vacation", "off", "alice@a.test"}, "", 0, "out-of-office off", ""},
		{"vacation off again", []string{"vacation", "off", "alice@a.test"}, "", exitNotFound, "", ""},
		{"put for removal", []string{"sieve", "put", "alice@a.test", "left"}, "keep;", 0, "", ""},
		{"user remove", []string{"user", "remove", "alice@a.test"}, "", 0, "removed user", ""},
		{"user again", []string{"user", "add", "--password-stdin", "alice@a.test"}, "secret-pass-1\n", 0, "", ""},
		{"scripts gone", []string{"sieve", "list", "alice@a.test"}, "", 0, "has no Sieve scripts", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"admin", "--config", cfgPath}, tc.args...)
			code := run(context.Background(), args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
		})
	}
}
