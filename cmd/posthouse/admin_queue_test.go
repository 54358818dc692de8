package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminQueueCommands drives admin queue, dkim and dns on an empty data
// directory: output shapes and exit codes.
func TestAdminQueueCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "p.toml")
	cfg := "hostname = \"mail.a.test\"\ndata_dir = \"" + filepath.Join(dir, "data") + "\"\n[listen]\npop3 = \"\"\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"queue list empty", []string{"queue", "list"}, 0, "queue is empty", ""},
		{"queue show bad id", []string{"queue", "show", "xyz"}, exitUsage, "", "16 hex digits"},
		{"queue show missing", []string{"queue", "show", "0123456789abcdef"}, exitNotFound, "", "no such message"},
		{"queue retry all", []string{"queue", "retry", "all"}, 0, "0 recipient(s) due now", ""},
		{"queue remove missing", []string{"queue", "remove", "0123456789abcdef"}, exitNotFound, "", "no such message"},
		{"queue retry no arg", []string{"queue", "retry"}, exitUsage, "", "missing ID or all"},
		{"dkim generate ed25519", []string{"dkim", "generate", "--algorithm", "ed25519", "--selector", "s1", "a.test"}, 0, `s1._domainkey.a.test. 3600 IN TXT "v=DKIM1; k=ed25519; p=`, "Publish this DNS record"},
		{"dkim generate rsa", []string{"dkim", "generate", "a.test"}, 0, `IN TXT "v=DKIM1; k=rsa; p=MII`, ""},
		{"dkim generate again", []string{"dkim", "generate", "--algorithm", "ed25519", "--selector", "s1", "a.test"}, exitExists, "", "already exists"},
		{"dkim bad algorithm", []string{"dkim", "generate", "--algorithm", "dsa", "a.test"}, exitUsage, "", "want rsa or ed25519"},
		{"dkim bad domain", []string{"dkim", "generate", "not a domain"}, exitFailure, "", "invalid domain"},
		{"dkim list", []string{"dkim", "list"}, 0, "s1._domainkey.a.test", ""},
		{"dns", []string{"dns", "a.test"}, 0, "_pop3._tcp.a.test. 3600 IN SRV 0 0 0 .", "not a local domain"},
		{"dkim remove", []string{"dkim", "remove", "a.test", "s1"}, 0, "removed DKIM key s1", ""},
		{"dkim remove again", []string{"dkim", "remove", "a.test", "s1"}, exitNotFound, "", "no such DKIM key: selector s1 for a.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"admin", "--config", cfgPath}, tc.args...)
			code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
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
