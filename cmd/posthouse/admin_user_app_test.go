package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAdminRolesAndAppPasswords drives user add --admin, user role,
// app-password add/list/revoke and 2fa-off: output shapes and exit codes.
func TestAdminRolesAndAppPasswords(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "p.toml")
	cfg := "hostname = \"mail.a.test\"\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\n[listen]\npop3 = \"\"\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var secret string
	secretRE := regexp.MustCompile(`(?m)^    ([a-z]{4}(?:-[a-z]{4}){4})$`)
	tests := []struct {
		name           string
		args           []string
		stdin          string
		code           int
		stdout, stderr string
	}{
		{"domain", []string{"domain", "add", "a.test"}, "", 0, "", ""},
		{"admin", []string{"user", "add", "--password-stdin", "--admin", "boss@a.test"}, "secret-pass-1\n", 0, "added user boss@a.test (quota unlimited, unlimited, admin)", ""},
		{"user", []string{"user", "add", "--password-stdin", "alice@a.test"}, "secret-pass-2\n", 0, "", ""},
		{"list roles", []string{"user", "list"}, "", 0, "alice@a.test", ""},
		{"role", []string{"user", "role", "alice@a.test", "admin"}, "", 0, "alice@a.test is now an admin", ""},
		{"role back", []string{"user", "role", "alice@a.test", "user"}, "", 0, "alice@a.test is now a user", ""},
		{"bad role", []string{"user", "role", "alice@a.test", "root"}, "", exitUsage, "", "bad role"},
		{"role of nobody", []string{"user", "role", "bob@a.test", "admin"}, "", exitNotFound, "", "no such user"},
		{"app add", []string{"user", "app-password", "add", "alice@a.test", "Alice's phone"}, "", 0, "shown only now", ""},
		{"app add bad name", []string{"user", "app-password", "add", "alice@a.test", " "}, "", exitUsage, "", "invalid name"},
		{"app add nobody", []string{"user", "app-password", "add", "bob@a.test", "phone"}, "", exitNotFound, "", "no such user"},
		{"app list", []string{"user", "app-password", "list", "alice@a.test"}, "", 0, "never      -     Alice's phone", ""},
		{"app revoke bad id", []string{"user", "app-password", "revoke", "alice@a.test", "x"}, "", exitUsage, "", "bad app password id"},
		{"app revoke missing", []string{"user", "app-password", "revoke", "alice@a.test", "99"}, "", exitNotFound, "", "no such app password"},
		{"app revoke", []string{"user", "app-password", "revoke", "alice@a.test", "1"}, "", 0, "revoked app password 1 of alice@a.test", ""},
		{"app list empty", []string{"user", "app-password", "list", "alice@a.test"}, "", 0, "ID  CREATED", ""},
		{"2fa-off", []string{"user", "2fa-off", "alice@a.test"}, "", 0, "two-factor login is off", ""},
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
			switch tc.name {
			case "list roles":
				if !regexp.MustCompile(`(?m)^boss@a\.test .* admin +off$`).MatchString(stdout.String()) ||
					!regexp.MustCompile(`(?m)^alice@a\.test .* user +off$`).MatchString(stdout.String()) {
					t.Errorf("user list lacks roles:\n%s", stdout.String())
				}
			case "app add":
				m := secretRE.FindStringSubmatch(stdout.String())
				if m == nil {
					t.Fatalf("no secret in %q", stdout.String())
				}
				secret = m[1]
			case "app list":
				if strings.Contains(stdout.String(), secret) {
					t.Error("list shows the secret")
				}
			}
		})
	}
}
