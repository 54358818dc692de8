package integration

// A private Dovecot (Debian's dovecot-imapd) for tests that need a real
// remote IMAP server: its own config, users, mail and sockets in a temp
// directory, listening on loopback ports, run as an unprivileged user
// (nobody when the tests run as root) and stopped when the test ends.

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/posthouse/posthouse/certs/certstest"
)

// dovecot is one running private Dovecot.
type dovecot struct {
	Dir       string
	IMAPAddr  string // STARTTLS
	IMAPSAddr string // TLS from the start
	uid, gid  int
	cmd       *exec.Cmd
	exited    chan struct{}
}

// dovecotUser is a passwd-file user with a Maildir under Dir/home.
type dovecotUser struct {
	Name, Password string
}

// dovecotMailbox configures a folder's special use in the inbox namespace.
type dovecotMailbox struct {
	Name, SpecialUse string
}

var dovecotConf = template.Must(template.New("").Parse(`# Posthouse test: a private Dovecot (dovecot -F -c {{.Dir}}/dovecot.conf)
instance_name = posthouse-test-{{.Port}}
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{{.Dir}}/cert.pem
ssl_key = <{{.Dir}}/key.pem
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
mail_fsync = never
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = {{.User}}
default_internal_group = {{.Group}}
default_login_user = {{.User}}
passdb {
  driver = passwd-file
  args = scheme=PLAIN {{.Dir}}/users
}
userdb {
  driver = passwd-file
  args = {{.Dir}}/users
}
namespace inbox {
  inbox = yes
  separator = .
{{- range .Mailboxes}}
  mailbox "{{.Name}}" {
    special_use = {{.SpecialUse}}
  }
{{- end}}
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Port}}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = {{.SPort}}
    ssl = yes
  }
}
service anvil {
  chroot =
}
service stats {
  chroot =
}
`))

// startDovecot writes the config, users and (through fill, before the
// server starts) their mail, starts Dovecot and waits until it accepts.
// It skips the test when Dovecot is not installed.
func startDovecot(t *testing.T, users []dovecotUser, mailboxes []dovecotMailbox, fill func(home func(user string) string)) *dovecot {
	t.Helper()
	bin := "/usr/sbin/dovecot"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("dovecot"); err != nil {
			t.Skip("dovecot is not installed (apt-get install dovecot-imapd, as .ci/run does); skipping")
		}
	}
	if _, err := os.Stat("/usr/lib/dovecot/imap"); err != nil {
		t.Skip("dovecot-imapd is not installed (apt-get install dovecot-imapd, as .ci/run does); skipping")
	}
	// Not t.TempDir: the unprivileged user must reach it.
	dir, err := os.MkdirTemp("", "posthouse-dovecot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &dovecot{Dir: dir, uid: os.Getuid(), gid: os.Getgid(), exited: make(chan struct{})}
	uname, gname := "", ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		d.uid, _ = strconv.Atoi(u.Uid)
		d.gid, _ = strconv.Atoi(u.Gid)
		uname = u.Username
	} else {
		u, err := user.Current()
		if err != nil {
			t.Fatal(err)
		}
		uname = u.Username
	}
	if g, err := user.LookupGroupId(strconv.Itoa(d.gid)); err == nil {
		gname = g.Name
	} else {
		t.Fatal(err)
	}
	d.IMAPAddr, d.IMAPSAddr = freeTCPAddr(t), freeTCPAddr(t)
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	for _, sub := range []string{"run", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	certstest.WriteFiles(t, certstest.Default().Leaf("localhost"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	f, err := os.Create(filepath.Join(dir, "dovecot.conf"))
	if err != nil {
		t.Fatal(err)
	}
	err = dovecotConf.Execute(f, map[string]any{"Dir": dir, "Port": port(d.IMAPAddr), "SPort": port(d.IMAPSAddr),
		"User": uname, "Group": gname, "Mailboxes": mailboxes})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	home := func(name string) string { return filepath.Join(dir, "home", name) }
	for _, u := range users {
		lines = append(lines, fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::", u.Name, u.Password, d.uid, d.gid, home(u.Name)))
		if err := os.MkdirAll(filepath.Join(home(u.Name), "Maildir"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		fill(home)
	}
	// Everything belongs to the user Dovecot runs as.
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, d.uid, d.gid)
	}); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, "-F", "-c", filepath.Join(dir, "dovecot.conf"))
	d.cmd.Stdout, d.cmd.Stderr = os.Stderr, os.Stderr
	if os.Geteuid() == 0 {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(d.uid), Gid: uint32(d.gid)}}
	}
	d.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot log:\n%s", log)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for probe("imaps", d.IMAPSAddr) != nil || probe("imap", d.IMAPAddr) != nil {
		select {
		case <-d.exited:
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot does not accept after 20s:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}
