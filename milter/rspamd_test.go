package milter

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/internal/loopport"
)

// rspamdConf is a private rspamd configuration: the packaged modules and
// rules ($CONFDIR is /etc/rspamd), everything else in the test's temp dir
// ($LOCAL_CONFDIR, $DBDIR, $RUNDIR, $LOGDIR), and no hyperscan (its
// compilation would take most of the test's time). Two proxy workers in milter
// mode scan by themselves (self_scan, no normal worker): one as packaged,
// one that asks for quarantine instead of rejecting. Every DNS query goes
// to the test's loopback DNS server; no Redis is configured, so the
// modules that need it switch themselves off.
const rspamdConf = `
.include "$CONFDIR/common.conf"
options {
	pidfile = "$RUNDIR/rspamd.pid";
	# Before the packaged options: the first value wins. Else rspamd
	# asks the system's resolver, and compiles the whole public suffix
	# list (half a minute on a busy machine; the messages have no links).
	url_tld = "$DBDIR/tld.dat";
	dns { nameserver = ["%[1]s"]; timeout = 1s; retransmits = 1; }
	.include "$CONFDIR/options.inc"
	control_socket = "$RUNDIR/rspamd.sock mode=0600";
	disable_hyperscan = true;
	local_addrs = [];
}
logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "info"; }
worker "rspamd_proxy" {
	bind_socket = "127.0.0.1:%[2]d";
	milter = yes;
	timeout = 120s;
	upstream "local" { default = yes; self_scan = yes; }
	count = 1;
	reject_message = "Spam message rejected";
}
worker "rspamd_proxy" {
	bind_socket = "127.0.0.1:%[3]d";
	milter = yes;
	timeout = 120s;
	upstream "local" { default = yes; self_scan = yes; }
	count = 1;
	quarantine_on_reject = true;
}
`

// rspamdLocal are local.d files: the headers rspamd adds through the
// milter, and the modules that would go to the network switched off.
var rspamdLocal = map[string]string{
	"milter_headers.conf": `use = ["x-spamd-result", "x-rspamd-server", "x-rspamd-queue-id", "x-spam-status"];
skip_local = false;
skip_authenticated = false;
routines {
	x-rspamd-server { hostname = "rspamd.test"; }
	# Remove the first of these a client sent (SMFIR_CHGHEADER, empty).
	x-spamd-result { remove = 1; }
	x-spam-status { remove = 1; }
}
`,
	"fuzzy_check.conf":    "enabled = false;\n",
	"rbl.conf":            "enabled = false;\n",
	"surbl.conf":          "enabled = false;\n",
	"asn.conf":            "enabled = false;\n",
	"phishing.conf":       "enabled = false;\n",
	"url_redirector.conf": "enabled = false;\n",
	"rspamd_update.conf":  "enabled = false;\n",
	"spf.conf":            "enabled = false;\n",
	"dkim.conf":           "enabled = false;\n",
	"dmarc.conf":          "enabled = false;\n",
	"arc.conf":            "enabled = false;\n",
	"multimap.conf":       "enabled = false;\n",
	"mx_check.conf":       "enabled = false;\n",
	"emails.conf":         "enabled = false;\n",
}

// rspamd is a running rspamd.
type rspamd struct {
	dns              *dnstest.Server
	cmd              *exec.Cmd
	milter, quarantn string // milter addresses of the two proxies
	log              string // its log file
	done             chan struct{}
}

// startRspamd starts rspamd with a private configuration and waits until
// both proxies accept connections. It skips the test when rspamd is not
// installed.
func startRspamd(t *testing.T) *rspamd {
	t.Helper()
	bin, err := exec.LookPath("rspamd")
	if err != nil {
		t.Skip("rspamd is not installed (apt-get install rspamd; .ci/run installs it): skipping the test against a real rspamd")
	}
	dir := t.TempDir()
	for _, d := range []string{"local.d", "db", "run", "log"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "db", "tld.dat"), []byte("com\nnet\norg\ntest\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnstest.NewServer(t)
	// The sender's domain and client resolve, as a legitimate sender's do.
	dnsSrv.Add("remote.test. MX 10 client.remote.test.", "remote.test. A 192.0.2.10",
		"client.remote.test. A 192.0.2.10", "10.2.0.192.in-addr.arpa. PTR client.remote.test.")
	ports := []int{freePort(t), freePort(t)}
	conf := filepath.Join(dir, "rspamd.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, rspamdConf, dnsSrv.Addr, ports[0], ports[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, text := range rspamdLocal {
		if err := os.WriteFile(filepath.Join(dir, "local.d", name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-f", "-c", conf,
		"--var", "CONFDIR=/etc/rspamd", "--var", "LOCAL_CONFDIR=" + dir,
		"--var", "DBDIR=" + filepath.Join(dir, "db"), "--var", "RUNDIR=" + filepath.Join(dir, "run"),
		"--var", "LOGDIR=" + filepath.Join(dir, "log")}
	if os.Geteuid() == 0 {
		args = append(args, "-i") // CI runs as root; rspamd refuses root workers without it
	}
	r := &rspamd{
		dns:      dnsSrv,
		cmd:      exec.Command(bin, args...),
		milter:   fmt.Sprintf("inet:127.0.0.1:%d", ports[0]),
		quarantn: fmt.Sprintf("inet:127.0.0.1:%d", ports[1]),
		log:      filepath.Join(dir, "log", "rspamd.log"),
		done:     make(chan struct{}),
	}
	r.cmd.Dir = dir
	r.cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(dir, "log", "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); out.Close(); close(r.done) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			b, _ := os.ReadFile(r.log)
			s, _ := os.ReadFile(filepath.Join(dir, "log", "stdout"))
			t.Logf("rspamd stdout:\n%s\nrspamd log (tail):\n%s", s, tail(string(b), 60))
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for _, p := range ports {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-r.done:
				t.Fatalf("rspamd exited: %v", r.cmd.ProcessState)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("rspamd does not listen on port %d", p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return r
}

// stop ends rspamd (SIGTERM to its process group, SIGKILL after a while).
func (r *rspamd) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Log("rspamd ignored SIGTERM; killing it")
		syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
	}
}

// freePort picks a port for rspamd's workers (loopport).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := loopport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// gtube is the Generic Test for Unsolicited Bulk Email, which rspamd
// rejects whatever else the message says.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

func rspamdMsg(subject, body string) string {
	return "From: Sender <sender@remote.test>\r\n" +
		"To: alice@a.test\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Thu, 3 Dec 2026 20:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@remote.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" + body
}

// TestRspamd drives a real rspamd through the delivery pipeline: GTUBE is
// refused with rspamd's reply (or filed into Junk when rspamd asks for
// quarantine), a clean message is stored with rspamd's header fields, and
// a stopped rspamd gets the on_error action.
func TestRspamd(t *testing.T) {
	start := time.Now()
	rs := startRspamd(t)
	t.Logf("rspamd ready in %s", time.Since(start).Round(time.Millisecond))
	e := newEnv(t)
	res, err := dns.New(dns.Options{Server: rs.dns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	f := e.filter(Options{Address: rs.milter, Timeout: time.Minute, Resolver: res})
	clean := rspamdMsg("Lunch on Friday", "Hi Alice,\r\n\r\nshall we meet for lunch on Friday at noon?\r\n\r\nBest,\r\nSender\r\n")

	t.Run("gtube rejected", func(t *testing.T) {
		out := e.deliver([]delivery.Filter{f}, inbound(), rspamdMsg("GTUBE test", "This is spam.\r\n"+gtube+"\r\n"), alice)
		// rspamd answers SMFIR_REPLYCODE "554 5.7.1 Gtube pattern".
		wantReply(t, rejected(t, out, alice), delivery.Reply{Code: 554, Enhanced: [3]int{5, 7, 1}, Text: "Gtube pattern"})
	})

	t.Run("clean message passes with rspamd's fields", func(t *testing.T) {
		out := e.deliver([]delivery.Filter{f}, inbound(), clean, alice)
		if err := resultErr(t, out, alice); err != nil {
			t.Fatal(err)
		}
		got := e.mail(alice)
		if len(got) != 1 || got[0].Mailbox != "INBOX" || slices.Contains(got[0].Flags, JunkFlag) {
			t.Fatalf("stored %+v", got)
		}
		// rspamd asked the test's DNS server (and so no other): it
		// looked up the sender's domain.
		if rs.dns.Queries("remote.test", "MX")+rs.dns.Queries("remote.test", "A") == 0 {
			t.Error("rspamd did not ask the test's DNS server")
		}
		head := got[0].Body[:strings.Index(got[0].Body, "\r\nReceived: ")+2]
		for _, want := range []string{"\r\nX-Spamd-Result: default: False [", "\r\nX-Rspamd-Server: rspamd.test\r\n",
			"\r\nX-Rspamd-Queue-Id: Q1234\r\n", "\r\nX-Spam-Status: No, score="} {
			if !strings.Contains(head, want) {
				t.Errorf("stored header lacks %q:\n%s", want, head)
			}
		}
		// The client's confirmed name reached rspamd as the connection's.
		if strings.Contains(head, "RDNS_NONE") || strings.Contains(head, "HFILTER_HOSTNAME_UNKNOWN") {
			t.Error("rspamd did not get the client's host name")
		}
		if !strings.HasSuffix(got[0].Body, clean) {
			t.Error("message body changed")
		}
	})

	t.Run("forged fields replaced", func(t *testing.T) {
		e := newEnv(t)
		forged := strings.Replace(clean, "Subject: ", "X-Spamd-Result: default: False [-100.00 / 15.00];\r\n\tWHITELISTED(-100.00)\r\n"+
			"X-Spam-Status: No, score=-100.00\r\nSubject: ", 1)
		fr := e.filter(Options{Address: rs.milter, Timeout: time.Minute, Resolver: res})
		out := e.deliver([]delivery.Filter{fr}, inbound(), forged, alice)
		if err := resultErr(t, out, alice); err != nil {
			t.Fatal(err)
		}
		got := e.mail(alice)
		if len(got) != 1 {
			t.Fatalf("stored %+v", got)
		}
		body := got[0].Body
		if strings.Contains(body, "-100.00") || strings.Contains(body, "WHITELISTED") {
			t.Errorf("forged fields kept:\n%s", body)
		}
		if strings.Count(body, "X-Spamd-Result: default: False [") != 1 || strings.Count(body, "X-Spam-Status: No, score=") != 1 ||
			strings.Index(body, "X-Spamd-Result") > strings.Index(body, "\r\nReceived: ") {
			t.Errorf("want rspamd's own fields once, on top:\n%s", body)
		}
		if !strings.HasSuffix(body, clean[strings.Index(clean, "Subject: "):]) {
			t.Error("the rest of the message changed")
		}
		if !strings.Contains(e.logs.String(), "milter changed a header field") {
			t.Error("rspamd sent no header change")
		}
	})

	t.Run("gtube quarantined", func(t *testing.T) {
		e := newEnv(t)
		fq := e.filter(Options{Address: rs.quarantn, Timeout: time.Minute})
		out := e.deliver([]delivery.Filter{fq}, inbound(), rspamdMsg("GTUBE quarantine", gtube+"\r\n"), alice)
		if err := resultErr(t, out, alice); err != nil {
			t.Fatal(err)
		}
		got := e.mail(alice)
		if len(got) != 1 || got[0].Mailbox != Junk || !slices.Contains(got[0].Flags, JunkFlag) {
			t.Fatalf("stored %+v, want it in Junk with $Junk", got)
		}
	})

	t.Run("rspamd down", func(t *testing.T) {
		rs.stop(t)
		e := newEnv(t)
		out := e.deliver([]delivery.Filter{e.filter(Options{Address: rs.milter, Timeout: 5 * time.Second})}, inbound(), clean, alice)
		wantReply(t, rejected(t, out, alice), replyFailed)
		fa := e.filter(Options{Address: rs.milter, Timeout: 5 * time.Second, OnError: OnErrorAccept})
		out = e.deliver([]delivery.Filter{fa}, inbound(), clean, alice)
		if err := resultErr(t, out, alice); err != nil {
			t.Fatal(err)
		}
		if got := e.mail(alice); len(got) != 1 || strings.Contains(got[0].Body, "X-Spamd-Result") {
			t.Errorf("stored %+v, want the message without rspamd's fields", got)
		}
	})
	t.Logf("rspamd test took %s", time.Since(start).Round(time.Millisecond))
}
