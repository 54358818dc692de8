package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"
)

// debianPackages are what the Postfix + Dovecot side needs.
var debianPackages = []string{"postfix", "dovecot-core", "dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd"}

// ensurePostfixDovecot installs the Debian packages when a binary is
// missing. Postfix is preseeded to "No configuration", so the package
// writes no live /etc/postfix/main.cf; policy-rc.d or the absence of an init
// system keeps the packaged services from starting, and we never start them.
func ensurePostfixDovecot(ctx context.Context, log *slog.Logger, install bool) error {
	missing := false
	for _, bin := range []string{"/usr/sbin/postfix", "/usr/sbin/dovecot", "/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3", "/usr/lib/dovecot/lmtp"} {
		if _, err := os.Stat(bin); err != nil {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	if !install {
		return errors.New("postfix/dovecot not installed (run without -install=false, or apt-get install " + strings.Join(debianPackages, " ") + ")")
	}
	if os.Geteuid() != 0 {
		return errors.New("postfix/dovecot not installed and not root: apt-get install " + strings.Join(debianPackages, " "))
	}
	log.Info("installing Debian packages", "packages", strings.Join(debianPackages, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	steps := [][]string{
		{"sh", "-c", `echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections`},
		{"apt-get", "update"},
		append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, debianPackages...),
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, s[0], s[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(s, " "), err, tail(out, 2000))
		}
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// versions reports the Postfix and Dovecot versions for the table header.
func postfixDovecotVersions() string {
	pv, _ := exec.Command("postconf", "-dh", "mail_version").Output()
	dv, _ := exec.Command("dovecot", "--version").Output()
	d := strings.Fields(string(dv))
	dver := ""
	if len(d) > 0 {
		dver = d[0]
	}
	return fmt.Sprintf("Postfix %s + Dovecot %s", strings.TrimSpace(string(pv)), dver)
}

// pdServer is Postfix (smtpd, queue, LMTP client) in front of Dovecot (LMTP
// delivery to Maildir, IMAP, POP3), both configured entirely inside dir.
type pdServer struct {
	log  *slog.Logger
	dir  string
	opts pdOptions

	ports
	uid, gid int

	mu       sync.Mutex
	users    []string
	dovecot  *exec.Cmd
	dovDone  chan struct{}
	pfMaster int
}

type pdOptions struct {
	// IMAPProcessLimit and IMAPClientLimit size Dovecot's imap service for
	// the idle-connection workload.
	IMAPProcessLimit, IMAPClientLimit int
	// RelayPort is the loopback SMTP receiver Postfix relays foreign
	// domains to (workload f); RelayDomains are routed there by
	// transport_maps, since Postfix resolves through the system resolver.
	RelayPort    int
	RelayDomains []string
}

// Mail is stored as this unprivileged system user (Dovecot refuses root).
const pdMailUser = "nobody"

func startPostfixDovecot(ctx context.Context, log *slog.Logger, opts pdOptions) (_ *pdServer, err error) {
	dir, err := os.MkdirTemp("", "posthouse-bench-pd-")
	if err != nil {
		return nil, err
	}
	s := &pdServer{log: log, dir: dir, opts: opts}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// The postfix and dovecot users must reach the files below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	u, err := user.Lookup(pdMailUser)
	if err != nil {
		return nil, err
	}
	s.uid, _ = strconv.Atoi(u.Uid)
	s.gid, _ = strconv.Atoi(u.Gid)
	p, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	s.ports = ports{"smtp": p[0], "imap": p[1], "pop3": p[2], "lmtp": p[3], "submission": p[4]}
	for _, d := range []string{"postfix", "postfix-queue", "postfix/data", "dovecot", "dovecot/run", "dovecot/state", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(filepath.Join(dir, "mail"), s.uid, s.gid); err != nil {
		return nil, err
	}
	// Postfix's master takes its lock in data_directory as mail_owner.
	pfu, err := user.Lookup("postfix")
	if err != nil {
		return nil, err
	}
	pfuid, _ := strconv.Atoi(pfu.Uid)
	pfgid, _ := strconv.Atoi(pfu.Gid)
	if err := os.Chown(filepath.Join(dir, "postfix", "data"), pfuid, -1); err != nil {
		return nil, err
	}
	// Dovecot puts its SASL socket for Postfix's submission service in
	// the queue's private directory, which must exist before it starts.
	priv := filepath.Join(dir, "postfix-queue", "private")
	if err := os.MkdirAll(priv, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(priv, pfuid, pfgid); err != nil {
		return nil, err
	}
	if err := writeSelfSigned(filepath.Join(dir, "postfix", "tls.crt"), filepath.Join(dir, "postfix", "tls.key"), "pd.bench.test"); err != nil {
		return nil, err
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// pdName is Postfix + Dovecot's column.
const pdName = "Postfix + Dovecot"

func (s *pdServer) Name() string { return pdName }

func (s *pdServer) MailRoot() string      { return filepath.Join(s.dir, "mail") }
func (s *pdServer) FileOwner() (int, int) { return s.uid, s.gid }
func (s *pdServer) pf() string            { return filepath.Join(s.dir, "postfix") }
func (s *pdServer) dc() string            { return filepath.Join(s.dir, "dovecot", "dovecot.conf") }
func (s *pdServer) userHome(a string) string {
	local, domain, _ := strings.Cut(a, "@")
	return filepath.Join(s.dir, "mail", domain, local)
}

var pdTemplates = template.Must(template.New("").Parse(`
{{define "main.cf"}}# Posthouse benchmark: a private Postfix instance (postfix -c {{.Dir}}/postfix).
compatibility_level = 3.6
queue_directory = {{.Dir}}/postfix-queue
data_directory = {{.Dir}}/postfix/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = pd.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
biff = no
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =
message_size_limit = 104857600
virtual_mailbox_domains = bench.test
virtual_mailbox_maps = texthash:{{.Dir}}/postfix/vmailbox
virtual_transport = lmtp:inet:127.0.0.1:{{.LMTP}}
transport_maps = texthash:{{.Dir}}/postfix/transport
maillog_file_prefixes = {{.Dir}}
maillog_file = {{.Dir}}/postfix/maillog
smtp_dns_support_level = disabled
smtp_tls_security_level = may
smtputf8_enable = yes
{{end}}
{{define "master.cf"}}# service type private unpriv chroot wakeup maxproc command
127.0.0.1:{{.SMTP}} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
127.0.0.1:{{.Submission}} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_cert_file={{.Dir}}/postfix/tls.crt
  -o smtpd_tls_key_file={{.Dir}}/postfix/tls.key
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_sasl_type=dovecot
  -o smtpd_sasl_path=private/auth
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
{{end}}
{{define "dovecot.conf"}}# Posthouse benchmark: a private Dovecot instance (dovecot -c {{.Dir}}/dovecot/dovecot.conf).
instance_name = posthouse-bench-{{.LMTP}}
base_dir = {{.Dir}}/dovecot/run
state_dir = {{.Dir}}/dovecot/state
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {{.Dir}}/dovecot/dovecot.log
mail_location = maildir:~/Maildir
mail_fsync = optimized
first_valid_uid = 1
default_client_limit = 4000
default_vsz_limit = 1G
{{- if gt .IMAPClientLimit 1}}
# Best throughput: verified logins are cached (Posthouse caches them too).
auth_cache_size = 10M
{{- end}}
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT {{.Dir}}/dovecot/users
}
userdb {
  driver = passwd-file
  args = {{.Dir}}/dovecot/users
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{.IMAP}}
  }
  inet_listener imaps {
    port = 0
  }
  process_limit = 200
{{- if gt .IMAPClientLimit 1}}
  # High-performance login mode: long-lived login processes, one per core.
  service_count = 0
  process_min_avail = {{.Cores}}
{{- end}}
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = {{.POP3}}
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = {{.LMTP}}
  }
}
service imap {
  process_limit = {{.IMAPProcessLimit}}
  client_limit = {{.IMAPClientLimit}}
  # A process serving several clients must outlive its first one.
  service_count = {{if gt .IMAPClientLimit 1}}0{{else}}1{{end}}
}
service anvil {
  client_limit = 4000
}
service auth {
  client_limit = 4000
  unix_listener {{.Dir}}/postfix-queue/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
protocol imap {
  mail_max_userip_connections = 5000
}
protocol pop3 {
  mail_max_userip_connections = 100
}
{{end}}`))

func (s *pdServer) writeConfig() error {
	data := map[string]any{
		"Dir": s.dir, "SMTP": s.ports["smtp"], "IMAP": s.ports["imap"], "POP3": s.ports["pop3"], "LMTP": s.ports["lmtp"], "Submission": s.ports["submission"],
		"IMAPProcessLimit": s.opts.IMAPProcessLimit, "IMAPClientLimit": s.opts.IMAPClientLimit, "Cores": runtime.NumCPU(),
	}
	files := map[string]string{
		"postfix/main.cf": "main.cf", "postfix/master.cf": "master.cf", "dovecot/dovecot.conf": "dovecot.conf",
	}
	for path, name := range files {
		var b bytes.Buffer
		if err := pdTemplates.ExecuteTemplate(&b, name, data); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.dir, path), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	var tr bytes.Buffer
	for _, d := range s.opts.RelayDomains {
		fmt.Fprintf(&tr, "%s smtp:[127.0.0.1]:%d\n", d, s.opts.RelayPort)
	}
	if err := os.WriteFile(filepath.Join(s.pf(), "transport"), tr.Bytes(), 0o644); err != nil {
		return err
	}
	return s.writeUsers()
}

// writeUsers rewrites Postfix's virtual mailbox list and Dovecot's
// passwd-file from s.users; passwords are kept as SHA512-CRYPT hashes.
func (s *pdServer) writeUsers() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vm bytes.Buffer
	for _, line := range s.users {
		addr, _, _ := strings.Cut(line, ":")
		fmt.Fprintf(&vm, "%s %s\n", addr, addr)
	}
	if err := os.WriteFile(filepath.Join(s.pf(), "vmailbox"), vm.Bytes(), 0o644); err != nil {
		return err
	}
	var pw bytes.Buffer
	for _, line := range s.users {
		pw.WriteString(line + "\n")
	}
	return os.WriteFile(filepath.Join(s.dir, "dovecot", "users"), pw.Bytes(), 0o644)
}

func (s *pdServer) start(ctx context.Context) error {
	// Dovecot in the foreground as our child, so it dies with us.
	s.dovecot = exec.Command("/usr/sbin/dovecot", "-F", "-c", s.dc())
	s.dovecot.Stdout = os.Stderr
	s.dovecot.Stderr = os.Stderr
	s.dovecot.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.dovecot.Start(); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	s.dovDone = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(s.dovecot, s.dovDone)

	out, err := exec.CommandContext(ctx, "/usr/sbin/postfix", "-c", s.pf(), "start").CombinedOutput()
	if err != nil {
		return fmt.Errorf("postfix start: %w\n%s%s", err, out, tail(s.readLog("postfix/maillog"), 2000))
	}
	if b, err := os.ReadFile(filepath.Join(s.dir, "postfix-queue", "pid", "master.pid")); err == nil {
		s.pfMaster, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if err := waitPorts(ctx, 20*time.Second, s.Addr("smtp"), s.Addr("submission"), s.Addr("imap"), s.Addr("pop3"), s.Addr("lmtp")); err != nil {
		return fmt.Errorf("%w\ndovecot log:\n%s\npostfix log:\n%s", err, tail(s.readLog("dovecot/dovecot.log"), 2000), tail(s.readLog("postfix/maillog"), 2000))
	}
	return nil
}

func (s *pdServer) readLog(rel string) []byte {
	b, _ := os.ReadFile(filepath.Join(s.dir, rel))
	return b
}

func (s *pdServer) stop() {
	if s.pfMaster > 0 || fileExists(filepath.Join(s.dir, "postfix-queue", "pid", "master.pid")) {
		c := exec.Command("/usr/sbin/postfix", "-c", s.pf(), "stop")
		c.Run()
		// Wait for master and its children to go; then make sure.
		for i := 0; i < 50 && s.pfMaster > 0 && syscall.Kill(s.pfMaster, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if s.pfMaster > 0 && syscall.Kill(s.pfMaster, 0) == nil {
			for _, pid := range descendants(s.pfMaster) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		s.pfMaster = 0
	}
	if s.dovecot != nil && s.dovecot.Process != nil {
		s.dovecot.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.dovDone:
		case <-time.After(10 * time.Second):
			for _, pid := range descendants(s.dovecot.Process.Pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			<-s.dovDone
		}
		s.dovecot = nil
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// FastPopulate: Dovecot indexes a maildir of new files in seconds, while
// concurrent APPENDs to one Maildir queue on its dotlocked uidlist.
func (s *pdServer) FastPopulate() string { return "maildir" }

func (s *pdServer) Reindex(ctx context.Context) error { return nil }

func (s *pdServer) Close() error {
	s.stop()
	if os.Getenv("BENCH_KEEP") != "" {
		s.log.Info("keeping Postfix + Dovecot directory", "dir", s.dir)
		return nil
	}
	return os.RemoveAll(s.dir)
}

func (s *pdServer) AddUser(ctx context.Context, address, password string) error {
	out, err := exec.CommandContext(ctx, "doveadm", "pw", "-s", "SHA512-CRYPT", "-p", password).Output()
	if err != nil {
		return fmt.Errorf("doveadm pw: %w", err)
	}
	hash := strings.TrimSpace(string(out))
	home := s.userHome(address)
	line := fmt.Sprintf("%s:%s:%d:%d::%s::", address, hash, s.uid, s.gid, home)
	s.mu.Lock()
	s.users = append(s.users, line)
	s.mu.Unlock()
	if err := s.writeUsers(); err != nil {
		return err
	}
	// texthash maps are read at process start: make Postfix's smtpd and
	// cleanup see the new recipient.
	if out, err := exec.CommandContext(ctx, "/usr/sbin/postfix", "-c", s.pf(), "reload").CombinedOutput(); err != nil {
		return fmt.Errorf("postfix reload: %w: %s", err, out)
	}
	// Dovecot's passwd-file is re-read when it changes.
	return nil
}

func (s *pdServer) PIDs() []int {
	var pids []int
	if s.pfMaster > 0 {
		pids = append(pids, descendants(s.pfMaster)...)
	}
	if s.dovecot != nil && s.dovecot.Process != nil {
		pids = append(pids, descendants(s.dovecot.Process.Pid)...)
	}
	return pids
}
