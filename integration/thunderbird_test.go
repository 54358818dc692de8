package integration

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestThunderbirdAccountHub runs clients/thunderbird.sh with the binary
// TestMain built: real Thunderbird, under Xvfb in its own network and mount
// namespaces, sets up an account through its Account Hub from Posthouse's
// autoconfig, lists the inbox and sends a message (see the script's header).
// It needs root, the thunderbird, xvfb and libnss3-tools packages and about
// half a minute of both cores, so it runs only with POSTHOUSE_THUNDERBIRD=1.
// Screenshots and logs stay in POSTHOUSE_THUNDERBIRD_OUT (default: a new
// directory under /tmp, named in the test log).
func TestThunderbirdAccountHub(t *testing.T) {
	if os.Getenv("POSTHOUSE_THUNDERBIRD") != "1" {
		t.Skip("set POSTHOUSE_THUNDERBIRD=1 to run real Thunderbird (root, apt-get install thunderbird xvfb libnss3-tools)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for its network and mount namespaces")
	}
	needTool(t, "thunderbird")
	needTool(t, "Xvfb")
	needTool(t, "certutil")
	statSources()
	out := os.Getenv("POSTHOUSE_THUNDERBIRD_OUT")
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "posthouse-thunderbird-"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "clients/thunderbird.sh", "--binary", binary, out)
	cmd.Env = cleanEnv()
	b, err := cmd.CombinedOutput()
	t.Logf("clients/thunderbird.sh:\n%s", b)
	if err != nil {
		t.Fatalf("clients/thunderbird.sh: %v (screenshots and logs in %s)", err, out)
	}
	t.Logf("screenshots and logs in %s", out)
}
