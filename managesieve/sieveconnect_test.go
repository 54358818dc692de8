package managesieve

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/certs/certstest"
)

// TestSieveConnect drives Debian's sieve-connect (a Perl client with
// STARTTLS and SASL PLAIN) against the server: upload, list, activate,
// download, deactivate and delete a script, and a script that does not
// compile is refused with its line. Loopback is not taken as secure, so
// the client has to use STARTTLS, verified against the test CA.
func TestSieveConnect(t *testing.T) {
	bin, err := exec.LookPath("sieve-connect")
	if err != nil {
		t.Skip("sieve-connect not installed (Debian package sieve-connect; .ci/run installs it)")
	}
	ts := newTestServer(t, withOptions(func(o *Options) { o.LoopbackIsSecure = false }))
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, certstest.Default().PEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ts.addr)
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		pw.WriteString(testPass + "\n")
		pw.Close()
		base := []string{"--server", host, "--port", port, "--user", testUser, "--authmech", "PLAIN",
			"--passwordfd", "3", "--tlscafile", caFile, "--tlshostname", "localhost", "--noclearauth"}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		cmd.ExtraFiles = []*os.File{pr}
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		return out.String(), err
	}
	mustRun := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := run(t, args...)
		if err != nil {
			t.Fatalf("sieve-connect %q: %v\n%s", args, err, out)
		}
		return out
	}

	local := filepath.Join(dir, "vacation.sieve")
	if err := os.WriteFile(local, []byte(script1), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--upload", "--localsieve", local, "--remotesieve", "filters")
	if out := mustRun(t, "--list"); !strings.Contains(out, "filters") || strings.Contains(out, "ACTIVE") {
		t.Fatalf("list after upload:\n%s", out)
	}
	mustRun(t, "--activate", "--remotesieve", "filters")
	if out := mustRun(t, "--list"); !strings.Contains(out, "filters") || !strings.Contains(out, "ACTIVE") {
		t.Fatalf("list after activate:\n%s", out)
	}
	got := filepath.Join(dir, "downloaded.sieve")
	mustRun(t, "--download", "--remotesieve", "filters", "--localsieve", got)
	if b, err := os.ReadFile(got); err != nil || string(b) != script1 {
		t.Fatalf("downloaded %q, %v; want %q", b, err, script1)
	}
	if out, err := run(t, "--delete", "--remotesieve", "filters"); err == nil {
		t.Fatalf("deleting the active script succeeded:\n%s", out)
	}
	mustRun(t, "--deactivate")
	mustRun(t, "--delete", "--remotesieve", "filters")
	if out := mustRun(t, "--list"); strings.Contains(out, "filters") {
		t.Fatalf("list after delete:\n%s", out)
	}

	bad := filepath.Join(dir, "bad.sieve")
	os.WriteFile(bad, []byte("keep;\nkeep;\nnosuchcommand;\n"), 0o600)
	out, err := run(t, "--upload", "--localsieve", bad, "--remotesieve", "bad")
	if err == nil || !strings.Contains(out, "line 3") {
		t.Fatalf("bad script: %v\n%s", err, out)
	}
	if !strings.Contains(ts.logs.String(), "msg=\"TLS up\"") {
		t.Error("sieve-connect did not use STARTTLS")
	}
}
