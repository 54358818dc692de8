// Package pgtest runs a private PostgreSQL server for tests: initdb into a
// temporary directory, postgres listening only on a unix socket in that
// directory (no TCP port at all, so it works inside `unshare -n`; a
// benchmark may ask for 127.0.0.1 as well with StartOptions.Loopback), run as
// the unprivileged user nobody when the tests run as root, and stopped
// when the package's tests end.
//
// The shared server is tuned for tests, not for keeping data: fsync,
// synchronous_commit and full_page_writes are off (tests run faster and
// spare the disk), so a crash of the machine may lose what it held, which
// is thrown away anyway. Benchmarks comparing with a store that fsyncs
// start their own with StartWith(StartOptions{Durable: true}). Every test
// gets a database of its own (CREATE DATABASE), so tests share nothing.
//
// A package using it starts the server lazily and stops it in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.NewDatabase(t) // skips when PostgreSQL is not installed
//		…
//	}
//
// The binaries are looked up in PATH, then in /usr/lib/postgresql/*/bin
// (Debian's layout, newest version first). When they are missing the tests
// skip with a message saying so, unless PGTEST_REQUIRE is set: .ci/run
// installs the postgresql package and sets it, so CI never skips.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/internal/loopport"
)

// port names the socket file (.s.PGSQL.<port>); nothing listens on TCP.
const port = 5432

// Server is a running private PostgreSQL.
type Server struct {
	dir  string // temporary directory: data/ and the socket
	cmd  *exec.Cmd
	done chan struct{} // closed when postgres exited
	log  string        // path of postgres's log
	dbs  atomic.Int64  // databases created, for unique names
	// tcpPort is the loopback TCP port (StartOptions.Loopback), 0 when
	// only the unix socket listens.
	tcpPort int
}

var (
	shared    *Server
	sharedErr error
	startOnce sync.Once
	// ErrNotInstalled: no PostgreSQL binaries were found.
	ErrNotInstalled = errors.New("pgtest: PostgreSQL is not installed (no initdb/postgres in PATH or /usr/lib/postgresql/*/bin)")
)

// Main runs the package's tests and stops the shared server, if one was
// started, afterwards. Use it from TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: stop:", err)
		}
	}
	return code
}

// Shared returns the package's server, starting it on first use. A test
// calling it skips when PostgreSQL is not installed and fails when it does
// not start.
func Shared(t testing.TB) *Server {
	t.Helper()
	startOnce.Do(func() { shared, sharedErr = Start() })
	if errors.Is(sharedErr, ErrNotInstalled) {
		if os.Getenv("PGTEST_REQUIRE") != "" {
			t.Fatalf("%v, and PGTEST_REQUIRE is set (as .ci/run sets it)", sharedErr)
		}
		t.Skip(sharedErr.Error())
	}
	if sharedErr != nil {
		t.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// NewDatabase creates an empty database on the shared server and returns
// its DSN (key=value form, with the socket directory as host). The
// database is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := Shared(t)
	name, err := s.CreateDatabase(context.Background())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		// Pools of the test are closed by now (cleanups run last in,
		// first out, and the database is made before them).
		s.exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return s.DSN(name)
}

// binDir finds the directory holding initdb and postgres.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a new server tuned for tests (fsync off).
// Stop it with Stop.
func Start() (*Server, error) { return StartWith(StartOptions{}) }

// StartOptions configure StartWith.
type StartOptions struct {
	// Durable keeps PostgreSQL's defaults of fsync, synchronous_commit
	// and full_page_writes on, so that a commit waits for the disk, as
	// in production: for benchmarks that compare with a store that
	// fsyncs.
	Durable bool
	// Loopback listens on 127.0.0.1 at a free TCP port as well as on
	// the socket, and DSN names that address: clients then pay a TCP
	// round trip per statement, as nodes on other machines do.
	Loopback bool
}

// StartWith initialises and starts a new server. Stop it with Stop.
func StartWith(opts StartOptions) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempParent(), "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, done: make(chan struct{}), log: filepath.Join(dir, "postgres.log")}
	// PostgreSQL refuses to run as root: run it as nobody, owning the
	// directory.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root and no user nobody: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v: %s", err, out)
	}
	logf, err := os.Create(s.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	listen := "" // unix socket only
	if opts.Loopback {
		if s.tcpPort, err = loopport.Pick(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		listen = "127.0.0.1"
	}
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-k", dir, "-p", strconv.Itoa(s.port()),
		"-c", "listen_addresses="+listen,
		"-c", "max_connections=400", "-c", "shared_buffers=64MB",
		"-c", "dynamic_shared_memory_type=mmap", "-c", "huge_pages=off",
	)
	if !opts.Durable {
		s.cmd.Args = append(s.cmd.Args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	// pg_stat_statements, where installed, lets a test count the
	// statements an operation runs.
	if _, err := os.Stat(filepath.Join(bin, "..", "lib", "pg_stat_statements.so")); err == nil {
		s.cmd.Args = append(s.cmd.Args, "-c", "shared_preload_libraries=pg_stat_statements")
	}
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Its own process group: a ^C to the test binary does not reach it
	// first, Stop shuts it down cleanly.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	logf.Close()
	go func() { s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls until the server accepts connections, postgres exits,
// or a minute passes.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(s.log)
			return fmt.Errorf("pgtest: postgres exited: %s", log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(s.log)
			return fmt.Errorf("pgtest: postgres not ready: %v; log: %s", err, log)
		}
	}
}

// tempParent is where the server's directory goes: the usual temporary
// directory, unless running as root and nobody could not reach into it
// (a TMPDIR under /root): then /tmp. The socket's path must also stay
// short (a unix socket path has about 100 bytes).
func tempParent() string {
	dir := os.TempDir()
	if os.Geteuid() != 0 || len(dir) > 60 {
		if len(dir) > 60 {
			return "/tmp"
		}
		return dir
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// DSN returns the DSN of database db on the server: over loopback TCP
// when it was started with Loopback, else over its unix socket.
func (s *Server) DSN(db string) string {
	host := s.dir
	if s.tcpPort != 0 {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", host, s.port(), db)
}

// port is the server's port: the TCP port with Loopback, else the one
// the socket file is named after.
func (s *Server) port() int {
	if s.tcpPort != 0 {
		return s.tcpPort
	}
	return port
}

// DataDir is the server's data directory (tables, indexes and pg_wal).
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// PID is the postmaster's process ID; every backend is its child.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) exec(ctx context.Context, sql string) error {
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

// CreateDatabase creates a new, empty database and returns its name.
// FILE_COPY copies the template's files (fsync is off): much faster than
// the default of writing it through the WAL.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", s.dbs.Add(1))
	if err := s.exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 STRATEGY FILE_COPY"); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return name, nil
}

// Stop shuts the server down (fast shutdown: sessions are ended) and
// removes its directory.
func (s *Server) Stop() error {
	var err error
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
			err = errors.New("postgres did not stop within 30s; killed")
		}
	}
	if rmErr := os.RemoveAll(s.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// Log returns the server's log so far, for a failing test to show.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log)
	return strings.TrimSpace(string(b))
}
