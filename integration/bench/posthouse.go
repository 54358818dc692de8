package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// repoRoot finds the Posthouse module root above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/posthouse/posthouse\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the Posthouse repository (no go.mod for github.com/posthouse/posthouse above the working directory)")
		}
		dir = parent
	}
}

// buildPosthouse builds ./cmd/posthouse into dir and returns the binary.
func buildPosthouse(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "posthouse")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/posthouse")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/posthouse: %w\n%s", err, out)
	}
	return bin, nil
}

// phServer is the posthouse binary serving from a temporary directory.
type phServer struct {
	log     *slog.Logger
	dir     string
	bin     string
	cfgPath string
	opts    phOptions
	ports

	cmd     *exec.Cmd
	done    chan struct{}
	logf    *os.File
	domains map[string]bool // added with admin domain add
}

type phOptions struct {
	Bin       string // prebuilt binary; empty: build ./cmd/posthouse
	RelayPort int    // [queue] remote_port
	DNSAddr   string // [dns] resolver
	// StoreDSN, when set, is [store] dsn with backend "postgres": mail,
	// users and the queue in that PostgreSQL database.
	StoreDSN string
}

func startPosthouse(ctx context.Context, log *slog.Logger, opts phOptions) (_ *phServer, err error) {
	dir, err := os.MkdirTemp("", "posthouse-bench-ph-")
	if err != nil {
		return nil, err
	}
	s := &phServer{log: log, dir: dir, bin: opts.Bin, domains: map[string]bool{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.bin == "" {
		if s.bin, err = buildPosthouse(ctx, dir); err != nil {
			return nil, err
		}
	}
	s.opts = opts
	if err = s.configure(); err != nil {
		return nil, err
	}
	if s.logf, err = os.Create(filepath.Join(dir, "posthouse.log")); err != nil {
		return nil, err
	}
	if err = s.launch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// launch starts the server on its configured ports. A port picked free
// may be taken by another process before the server binds it, or while
// the server is stopped between runs (tests run in parallel on a shared
// machine, and outgoing connections take ports of the same range): it
// then picks new ones and tries again.
func (s *phServer) launch(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := s.start(ctx)
		if err == nil {
			return nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		s.log.Warn("a benchmark port was taken meanwhile; trying others", "err", firstLine(err.Error()))
		s.stop()
		if err := s.configure(); err != nil {
			return err
		}
	}
}

// configure picks free ports and writes the TOML for them.
func (s *phServer) configure() error {
	dir, opts := s.dir, s.opts
	p, err := freePorts(4)
	if err != nil {
		return err
	}
	s.ports = ports{"smtp": p[0], "submission": p[1], "imap": p[2], "pop3": p[3]}
	relayPort, resolver := opts.RelayPort, opts.DNSAddr
	if relayPort == 0 {
		relayPort = 25
	}
	cfg := fmt.Sprintf(`# Posthouse benchmark instance.
hostname = "ph.bench.test"
data_dir = %q

[listen]
smtp = "127.0.0.1:%d"
submission = "127.0.0.1:%d"
submissions = ""
imap = "127.0.0.1:%d"
imaps = ""
pop3 = "127.0.0.1:%d"
pop3s = ""
managesieve = ""
admin = ""

[limits]
max_message_size = "100MiB"
max_connections = 20000
max_connections_per_ip = 5000
max_connection_rate = 0

[queue]
remote_port = %d

[dns]
resolver = %q

[log]
level = "warn"
`, filepath.Join(dir, "data"), s.ports["smtp"], s.ports["submission"], s.ports["imap"], s.ports["pop3"], relayPort, resolver)
	if opts.StoreDSN != "" {
		cfg += fmt.Sprintf("\n[store]\nbackend = \"postgres\"\ndsn = %q\n", opts.StoreDSN)
	}
	s.cfgPath = filepath.Join(dir, "posthouse.toml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	return nil
}

func (s *phServer) start(ctx context.Context) error {
	var logStart int64
	if fi, err := s.logf.Stat(); err == nil {
		logStart = fi.Size()
	}
	s.cmd = exec.Command(s.bin, "serve", "--config", s.cfgPath)
	s.cmd.Stdout = s.logf
	s.cmd.Stderr = s.logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.done = done
	go func(cmd *exec.Cmd) { cmd.Wait(); close(done) }(s.cmd)
	addrs := []string{s.Addr("smtp"), s.Addr("imap"), s.Addr("pop3")}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-wctx.Done():
		}
	}()
	// Start-up reconciliation of a large maildir may take a while. The
	// services come up together; one that stays closed is reported, and
	// the workloads that need it fail on their own.
	if err := waitPorts(wctx, 5*time.Minute, addrs[0]); err != nil {
		return fmt.Errorf("posthouse serve: %w\n%s", err, s.logSince(logStart))
	}
	for _, a := range addrs[1:] {
		if err := waitPorts(wctx, 5*time.Second, a); err != nil {
			s.log.Warn("a Posthouse listener is not accepting", "err", err)
		}
	}
	// The listeners are bound one after another: the first may accept
	// while a later one fails to bind and the server exits.
	select {
	case <-done:
		return fmt.Errorf("posthouse serve exited after start-up\n%s", s.logSince(logStart))
	default:
	}
	return nil
}

// logSince is the tail of what the server logged from offset on (this
// start's part of its log file).
func (s *phServer) logSince(offset int64) string {
	b, _ := os.ReadFile(s.logf.Name())
	if offset <= int64(len(b)) {
		b = b[offset:]
	}
	return tail(b, 3000)
}

func (s *phServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.log.Warn("posthouse did not stop within 30s of SIGTERM; killing it")
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *phServer) Name() string { return "Posthouse" }

func (s *phServer) MailRoot() string { return filepath.Join(s.dir, "data") }

// FastPopulate: Posthouse's start-up reconciliation indexes a maildir of
// new files in batches, far faster than one durable APPEND at a time.
func (s *phServer) FastPopulate() string { return "maildir" }

func (s *phServer) FileOwner() (int, int) { return os.Getuid(), os.Getgid() }

func (s *phServer) Reindex(ctx context.Context) error {
	s.stop()
	return s.launch(ctx)
}

func (s *phServer) PIDs() []int {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	return descendants(s.cmd.Process.Pid)
}

// admin runs `posthouse admin --config F args…`.
func (s *phServer) admin(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, s.bin, append([]string{"admin", "--config", s.cfgPath}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("posthouse admin %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (s *phServer) AddUser(ctx context.Context, address, password string) error {
	_, dom, _ := strings.Cut(address, "@")
	if !s.domains[dom] {
		// Exit code 4: the domain already exists.
		if err := s.admin(ctx, "", "domain", "add", dom); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 4 {
				return err
			}
		}
		s.domains[dom] = true
	}
	return s.admin(ctx, password+"\n", "user", "add", address, "--password-stdin")
}

func (s *phServer) Close() error {
	s.stop()
	if s.logf != nil {
		s.logf.Close()
	}
	if os.Getenv("BENCH_KEEP") != "" {
		s.log.Info("keeping Posthouse directory", "dir", s.dir)
		return nil
	}
	return os.RemoveAll(s.dir)
}

// posthouseVersion asks the binary for its version line.
func posthouseVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "Posthouse"
	}
	return "Posthouse " + strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "posthouse"))
}
