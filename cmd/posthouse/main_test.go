package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/auth"
)

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantPos   []string
		wantQuota string
		wantStdin bool
	}{
		{"flags first", []string{"--password-stdin", "--quota", "2GiB", "a@b.c"}, []string{"a@b.c"}, "2GiB", true},
		{"flags last", []string{"a@b.c", "--quota=1MB", "--password-stdin"}, []string{"a@b.c"}, "1MB", true},
		{"mixed", []string{"x", "-quota", "5", "y"}, []string{"x", "y"}, "5", false},
		{"dash dash", []string{"--", "--quota", "z"}, []string{"--quota", "z"}, "", false},
		{"none", nil, nil, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFlagSet("t", "t", &bytes.Buffer{})
			quota := fs.String("quota", "", "")
			stdin := fs.Bool("password-stdin", false, "")
			pos, err := parseFlags(fs, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tc.wantPos) || *quota != tc.wantQuota || *stdin != tc.wantStdin {
				t.Errorf("got %q quota=%q stdin=%v", pos, *quota, *stdin)
			}
		})
	}
	fs := newFlagSet("t", "t", &bytes.Buffer{})
	if _, err := parseFlags(fs, []string{"--nope"}); adminExitCodeOf(err) != exitUsage {
		t.Errorf("unknown flag: %v", err)
	}
}

func adminExitCodeOf(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return adminExitCode(err)
}

func TestAdminExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("x: %w", auth.ErrInvalidAddress), exitUsage},
		{auth.ErrEmptyPassword, exitUsage},
		{auth.ErrNoSuchDomain, exitNotFound},
		{fmt.Errorf("%w: u", auth.ErrNoSuchUser), exitNotFound},
		{auth.ErrExists, exitExists},
		{auth.ErrDomainNotEmpty, exitRefused},
		{errors.New("disk on fire"), exitFailure},
	} {
		if got := adminExitCode(tc.err); got != tc.code {
			t.Errorf("adminExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

func TestRunCommands(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(cfgPath, []byte("data_dir = \""+filepath.Join(dir, "data")+"\"\n[listen]\nsmtp = \":2525\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[listen]\nsmtp = \":2525\"\n\n[limits]\nmax_recipents = 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderr     string
		stderrLine bool // stderr must be exactly one line
	}{
		{"no args", nil, exitUsage, "", "Usage: posthouse", false},
		{"help", []string{"--help"}, 0, "Commands:", "", false},
		{"unknown", []string{"frobnicate"}, exitUsage, "", "unknown command \"frobnicate\"", true},
		{"version", []string{"version"}, 0, "posthouse ", "", false},
		{"version help", []string{"version", "--help"}, 0, "Usage: posthouse version", "", false},
		{"serve help", []string{"serve", "--help"}, 0, "--config", "", false},
		{"serve extra arg", []string{"serve", "x.toml"}, exitUsage, "", "did you mean --config x.toml", true},
		{"check-config help", []string{"check-config", "-h"}, 0, "--quiet", "", false},
		{"check-config", []string{"check-config", "--config", cfgPath}, 0, "smtp = ':2525'", "", false},
		{"check-config quiet", []string{"check-config", "--quiet", "--config", cfgPath}, 0, "", "", false},
		{"check-config bad", []string{"check-config", "--config", bad}, exitFailure, "", bad + ":5: limits.max_recipents: unknown key (hint: did you mean max_recipients in [limits]?)", true},
		{"check-config missing", []string{"check-config", "--config", filepath.Join(dir, "nope.toml")}, exitFailure, "", "cannot read config file", true},
		{"admin help", []string{"admin", "--help"}, 0, "Exit codes:", "", false},
		{"admin user help", []string{"admin", "--config", cfgPath, "user", "--help"}, 0, "passwd", "", false},
		{"admin user add help", []string{"admin", "user", "add", "--help"}, 0, "--password-stdin", "", false},
		{"admin unknown", []string{"admin", "frob"}, exitUsage, "", "unknown command \"frob\"", true},
		{"admin unknown verb", []string{"admin", "--config", cfgPath, "user", "frob"}, exitUsage, "", "unknown verb \"frob\"", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.stdout)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
			if tc.stderrLine && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("stderr is not one line: %q", stderr.String())
			}
		})
	}
}

func TestVersionString(t *testing.T) {
	old := version
	defer func() { version = old }()
	version = "1.2.3"
	if s := versionString(); !strings.HasPrefix(s, "posthouse 1.2.3 (go") {
		t.Errorf("versionString() = %q", s)
	}
	version = ""
	if s := versionString(); !strings.HasPrefix(s, "posthouse ") || strings.Contains(s, "posthouse  ") {
		t.Errorf("versionString() = %q", s)
	}
}
