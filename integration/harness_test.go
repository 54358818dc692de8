package integration

// The harness: TestMain builds posthouse once; startServer runs it on free
// loopback ports with a temporary data dir and stops it when the test ends.
// Tests drive it only from outside (network, the admin command, files), never
// by importing Posthouse packages; only the test helpers dns/dnstest (a
// loopback DNS server) and certs/certstest (test certificates) are shared.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/internal/loopport"
)

// binary is the posthouse executable built by TestMain.
var binary string

// testVersion is the version TestMain builds into the binary.
const testVersion = "0.0.0-integration"

// raceBuild is set by race_test.go when tests run with -race: the server is
// then built with the race detector too.
var raceBuild bool

// binaryEnv hands the built binary to a test process this one re-executes
// (in a private mount namespace, faults_test.go), which then builds none.
const binaryEnv = "POSTHOUSE_TEST_BINARY"

func TestMain(m *testing.M) {
	if b := os.Getenv(binaryEnv); b != "" {
		binary = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "posthouse-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: temp dir:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "posthouse")
	// The version is set the way a release build sets it, so
	// TestVersionCommand checks -ldflags without a second build.
	args := []string{"build", "-o", binary, "-ldflags", "-X main.version=" + testVersion}
	if raceBuild {
		args = append(args, "-race")
	}
	args = append(args, "github.com/posthouse/posthouse/cmd/posthouse")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration: go %s: %v\n%s", strings.Join(args, " "), err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// statSources stats every Go source file and go.mod/go.sum of the module,
// once, from inside a test (the go command only records what tests look at
// after TestMain hands over to m.Run). The go command caches a test's result
// keyed on the files it looked at; this package imports nothing of
// Posthouse, so without this a changed server would not re-run the tests
// that drive its binary. Everything that runs the binary calls it.
func statSources() { statSourcesOnce.Do(walkSources) }

var statSourcesOnce sync.Once

func walkSources() {
	filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || name == "data") {
				return filepath.SkipDir
			}
			return nil
		}
		if name := d.Name(); strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" {
			os.Stat(path)
		}
		return nil
	})
}

// listenerNames are the [listen] entries the harness always enables.
var listenerNames = []string{"smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "managesieve", "admin"}

// Server is one running posthouse serve.
type Server struct {
	Dir        string // the test's directory: config, log, data
	DataDir    string
	ConfigPath string
	Hostname   string
	// DNS is the loopback DNS server [dns] resolver points at unless the
	// test's TOML says otherwise: it answers NXDOMAIN to every name a test
	// has not added, so inbound checks find no records (spf=none,
	// dmarc=none) rather than a dead resolver (temperror, 451).
	DNS *dnstest.Server

	addrs     map[string]string // [listen] name → "127.0.0.1:port", enabled ones
	proxied   map[string]bool   // [listen] proxy_protocol: the probe sends a PROXY header first
	env       []string
	serveArgs []string // after the binary: "serve", "--config", ConfigPath
	cmd       *exec.Cmd
	logPath   string
	logFile   *os.File
	exited    chan struct{}
	waitErr   error
	mu        sync.Mutex
}

// TestHostname is the hostname every test server has.
const TestHostname = "posthouse.test"

// startServer starts posthouse serve with a config listening on free
// loopback ports for every listener, data in a temp dir, and [dns] resolver
// pointing at s.DNS, a loopback test DNS server (so nothing reaches a real
// resolver).
// extraTOML is merged over that config, key by key: a test may set any key,
// including ones in [listen] and [dns]; a [listen] value ending in ":0"
// (e.g. http = "127.0.0.1:0") gets a free port too. The server is stopped
// with SIGTERM when the test ends, and must exit cleanly; its log is printed
// if the test failed.
func startServer(t testing.TB, extraTOML string) *Server {
	t.Helper()
	statSources()
	dir := t.TempDir()
	s := &Server{
		Dir:        dir,
		DataDir:    filepath.Join(dir, "data"),
		ConfigPath: filepath.Join(dir, "posthouse.toml"),
		Hostname:   TestHostname,
		logPath:    filepath.Join(dir, "server.log"),
		env:        cleanEnv(),
		DNS:        dnstest.NewServer(t),
	}
	s.serveArgs = []string{"serve", "--config", s.ConfigPath}

	cfg := map[string]any{
		"hostname": TestHostname,
		"data_dir": s.DataDir,
		"listen":   map[string]any{},
		"dns":      map[string]any{"resolver": s.DNS.Addr},
		"log":      map[string]any{"level": "debug"},
	}
	for _, name := range listenerNames {
		cfg["listen"].(map[string]any)[name] = "127.0.0.1:0"
	}
	if extraTOML != "" {
		var extra map[string]any
		if err := toml.Unmarshal([]byte(extraTOML), &extra); err != nil {
			t.Fatalf("startServer: extra TOML: %v", err)
		}
		mergeTOML(cfg, extra)
	}
	s.addrs = map[string]string{}
	listen, _ := cfg["listen"].(map[string]any)
	s.proxied = map[string]bool{}
	if names, ok := listen["proxy_protocol"].([]any); ok {
		for _, n := range names {
			s.proxied[fmt.Sprint(n)] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(listen)) {
		v, _ := listen[name].(string)
		if strings.HasSuffix(v, ":0") {
			v = freeTCPAddr(t)
			listen[name] = v
		}
		if v != "" {
			s.addrs[name] = v
		}
	}
	data, err := toml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigPath, data, 0o644); err != nil {
		t.Fatal(err)
	}

	s.start(t)
	s.stopOnCleanup(t)
	return s
}

// stopOnCleanup stops the server when the test ends and prints its log if
// the test failed.
func (s *Server) stopOnCleanup(t testing.TB) {
	t.Cleanup(func() {
		if s.running() {
			s.stop(t)
		}
		if t.Failed() {
			s.dumpLog(t)
			repeatFailures(t)
		}
	})
}

// failures holds, per test, what errorf and fatalf reported, so that the
// end of a failed test's output (after its server log, which can run to
// thousands of lines) says again why it failed: CI shows only the tail.
var (
	failuresMu sync.Mutex
	failures   = map[string][]string{} // test name → messages
)

// errorf is t.Errorf, repeated after the server log if the test fails.
func errorf(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	failuresMu.Lock()
	failures[t.Name()] = append(failures[t.Name()], msg)
	failuresMu.Unlock()
	t.Error(msg)
}

// fatalf is t.Fatalf, repeated after the server log.
func fatalf(t testing.TB, format string, args ...any) {
	t.Helper()
	errorf(t, format, args...)
	t.FailNow()
}

// repeatFailures logs again what errorf and fatalf reported for t.
func repeatFailures(t testing.TB) {
	t.Helper()
	failuresMu.Lock()
	msgs := failures[t.Name()]
	failuresMu.Unlock()
	if len(msgs) > 0 {
		t.Logf("%s failed (repeated after the server log):\n%s", t.Name(), strings.Join(msgs, "\n"))
	}
}

// mergeTOML sets every key of src into dst, recursing into tables.
func mergeTOML(dst, src map[string]any) {
	for k, v := range src {
		if sub, ok := v.(map[string]any); ok {
			if d, ok := dst[k].(map[string]any); ok {
				mergeTOML(d, sub)
				continue
			}
		}
		dst[k] = v
	}
}

// cleanEnv is the environment without POSTHOUSE_* variables, so the
// developer's shell cannot change what a test runs.
//
// With the race detector, each process would sleep a second at exit
// waiting for late reports (GORACE atexit_sleep_ms, default 1000): a
// second per admin command adds up to minutes, so it is turned off. Races
// are still reported when they happen, and make the process exit with
// status 66, which the harness treats as a failure.
func cleanEnv() []string {
	var env []string
	gorace := "atexit_sleep_ms=0"
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "POSTHOUSE_"):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=") + " " + gorace
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GORACE="+gorace)
}

// freeTCPAddr returns a loopback address with a port free right now and
// never returned before in this process (loopport).
func freeTCPAddr(t testing.TB) string {
	t.Helper()
	p, err := loopport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// unusedUDPAddr returns a loopback UDP address nobody answers on: DNS
// queries sent there fail at once instead of leaking to a real resolver.
func unusedUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// start runs the binary and waits until every enabled listener accepts.
func (s *Server) start(t testing.TB) {
	t.Helper()
	statSources()
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s.logFile = f
	cmd := exec.Command(binary, s.serveArgs...)
	cmd.Dir = s.Dir
	cmd.Env = s.env
	cmd.Stdout = f
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start posthouse: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.exited = make(chan struct{})
	s.mu.Unlock()
	exited := s.exited
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()

	deadline := time.Now().Add(30 * time.Second)
	for _, name := range slices.Sorted(maps.Keys(s.addrs)) {
		addr := s.addrs[name]
		for {
			err := probeProxied(name, addr, s.proxied[name])
			if err == nil {
				break
			}
			select {
			case <-exited:
				s.dumpLog(t)
				t.Fatalf("posthouse serve exited before %s (%s) accepted: %v", name, addr, s.exitErr())
			default:
			}
			if time.Now().After(deadline) {
				s.dumpLog(t)
				t.Fatalf("posthouse serve: %s (%s) does not accept connections after 30s", name, addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// implicitTLS lists the listeners that start with a TLS handshake.
var implicitTLS = map[string]bool{"submissions": true, "pop3s": true, "imaps": true, "https": true}

// probe connects to a listener and, for mail protocols, reads the first
// line of the greeting (after the TLS handshake on implicit-TLS ports), so
// "ready" means serving, not just bound.
func probe(name, addr string) error { return probeProxied(name, addr, false) }

// probeProxied is probe for a listener that expects a PROXY header when
// proxied is set: it sends one that keeps the connection's own address.
func probeProxied(name, addr string, proxied bool) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if proxied {
		if _, err := io.WriteString(c, "PROXY UNKNOWN\r\n"); err != nil {
			return err
		}
	}
	if name == "http" || name == "https" || name == "admin" {
		return nil
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if implicitTLS[name] {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true}) // only a readiness probe
		if err := tc.Handshake(); err != nil {
			return err
		}
		c = tc
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// Say goodbye properly so the server logs a normal disconnect.
	switch {
	case strings.HasPrefix(line, "* "):
		fmt.Fprintf(c, "a LOGOUT\r\n")
	default:
		fmt.Fprintf(c, "QUIT\r\n")
	}
	bufio.NewReader(c).ReadString('\n')
	return nil
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *Server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// Stop sends SIGTERM and fails the test unless the server exits with
// status 0 within its shutdown deadline.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop(t)
}

func (s *Server) stop(t testing.TB) {
	t.Helper()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("stop posthouse: %v", err)
	}
	select {
	case <-s.exited:
		if err := s.exitErr(); err != nil {
			t.Errorf("posthouse serve did not exit cleanly after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		s.Kill()
		t.Errorf("posthouse serve still running 20s after SIGTERM; killed")
	}
	s.logFile.Close()
}

// Kill ends the server with SIGKILL (a crash) and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same config and data, after Stop
// or Kill.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.running() {
		t.Fatal("Restart: server still running")
	}
	s.start(t)
}

// Signal sends sig to the server.
func (s *Server) Signal(sig os.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("not started")
	}
	return s.cmd.Process.Signal(sig)
}

// Wait waits up to d for the server to exit and returns its exit error
// (nil for status 0); ok is false if it is still running.
func (s *Server) Wait(d time.Duration) (err error, ok bool) {
	select {
	case <-s.exited:
		return s.exitErr(), true
	case <-time.After(d):
		return nil, false
	}
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *Server) dumpLog(t testing.TB) {
	t.Helper()
	t.Logf("posthouse serve log (%s):\n%s", s.logPath, s.Log())
}

// Addr returns "127.0.0.1:port" of a listener: "smtp", "submission",
// "submissions", "pop3", "pop3s", "imap", "imaps" (and any other the
// test's TOML enabled).
func (s *Server) Addr(name string) string {
	a, ok := s.addrs[name]
	if !ok {
		panic("integration: no listener " + name)
	}
	return a
}

// CACertPool trusts the server's self-signed certificate.
func (s *Server) CACertPool() *x509.CertPool {
	pem, err := os.ReadFile(filepath.Join(s.DataDir, "tls", "cert.pem"))
	if err != nil {
		panic("integration: self-signed certificate: " + err.Error())
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		panic("integration: no certificate in " + filepath.Join(s.DataDir, "tls", "cert.pem"))
	}
	return pool
}

// AdminResult is what one `posthouse admin` run did.
type AdminResult struct {
	Stdout, Stderr string
	Code           int
}

// RunAdmin runs `posthouse admin --config … args…` with stdin and returns
// its output and exit code, whatever they are.
func (s *Server) RunAdmin(t testing.TB, stdin string, args ...string) AdminResult {
	t.Helper()
	return runPosthouse(t, s.Dir, s.env, stdin, append([]string{"admin", "--config", s.ConfigPath}, args...)...)
}

// Admin runs `posthouse admin --config … args…`, fails the test unless it
// exits 0, and returns its stdout.
func (s *Server) Admin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := s.RunAdmin(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("posthouse admin %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// AddUser adds address's domain (if needed) and the user with password.
func (s *Server) AddUser(t testing.TB, address, password string) {
	t.Helper()
	_, domain, ok := strings.Cut(address, "@")
	if !ok {
		t.Fatalf("AddUser: %q has no domain", address)
	}
	if r := s.RunAdmin(t, "", "domain", "add", domain); r.Code != 0 && r.Code != 4 {
		t.Fatalf("posthouse admin domain add %s: exit %d: %s", domain, r.Code, r.Stderr)
	}
	s.Admin(t, password+"\n", "user", "add", "--password-stdin", address)
}

// runPosthouse runs the binary to completion (at most a minute).
func runPosthouse(t testing.TB, dir string, env []string, stdin string, args ...string) AdminResult {
	t.Helper()
	return runIn(t, dir, env, stdin, binary, args...)
}

// runCommand runs any program to completion (at most a minute) with the
// clean environment and no stdin.
func runCommand(t testing.TB, name string, args ...string) AdminResult {
	t.Helper()
	return runIn(t, "", cleanEnv(), "", name, args...)
}

func runIn(t testing.TB, dir string, env []string, stdin string, name string, args ...string) AdminResult {
	t.Helper()
	statSources()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	r := AdminResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return r
}

// needTool skips the test when an external program is not installed
// (.ci/run installs them all).
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install the package .ci/run lists); skipping", name)
	}
	return p
}
