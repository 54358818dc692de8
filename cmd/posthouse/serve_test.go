package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/pop3d"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	c := config.Default()
	c.Hostname = "mail.example.com"
	c.DataDir = filepath.Join(t.TempDir(), "data")
	c.Listen.Admin = "127.0.0.1:0" // never the default port: tests run in parallel
	return c
}

// lifecycleLog records, in order, the lifecycle lines serve logs:
// "listening <proto>" and "stopped <service>".
type lifecycleLog struct {
	mu     sync.Mutex
	events []string
	attrs  []slog.Attr
	shared *lifecycleLog // the recorder handlers made by WithAttrs write to
}

func (h *lifecycleLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *lifecycleLog) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]string{}
	for _, a := range h.attrs {
		attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	var ev string
	switch r.Message {
	case "listening":
		ev = "listening " + attrs["proto"]
	case "service stopped":
		ev = "stopped " + attrs["service"]
	case "posthouse started":
		ev = "started"
	default:
		return nil
	}
	rec := h.recorder()
	rec.mu.Lock()
	rec.events = append(rec.events, ev)
	rec.mu.Unlock()
	return nil
}

func (h *lifecycleLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &lifecycleLog{attrs: append(slices.Clone(h.attrs), attrs...), shared: h.recorder()}
}

func (h *lifecycleLog) WithGroup(string) slog.Handler { return h }

func (h *lifecycleLog) recorder() *lifecycleLog {
	if h.shared != nil {
		return h.shared
	}
	return h
}

func (h *lifecycleLog) get() []string {
	rec := h.recorder()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.events)
}

// loopbackConfig is testConfig with every listener on a free loopback
// port.
func loopbackConfig(t *testing.T) *config.Config {
	t.Helper()
	c := testConfig(t)
	for _, p := range []*string{&c.Listen.SMTP, &c.Listen.Submission, &c.Listen.Submissions, &c.Listen.IMAP,
		&c.Listen.IMAPS, &c.Listen.POP3, &c.Listen.POP3S, &c.Listen.ManageSieve, &c.Listen.HTTP, &c.Listen.HTTPS, &c.Listen.Admin} {
		*p = "127.0.0.1:0"
	}
	return c
}

// TestServeLifecycle: serve starts the queue, then the listeners in their
// fixed order, and stops them in reverse once ctx is done.
func TestServeLifecycle(t *testing.T) {
	rec := &lifecycleLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, loopbackConfig(t), slog.New(rec)) }()
	for deadline := time.Now().Add(20 * time.Second); !slices.Contains(rec.get(), "started"); {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %q", rec.get())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{
		"listening smtp", "listening submission", "listening submissions",
		"listening imap", "listening imaps", "listening pop3", "listening pop3s", "listening managesieve",
		"listening http", "listening https", "listening admin", "started",
		"stopped admin", "stopped http", "stopped managesieve", "stopped pop3", "stopped imap", "stopped smtp", "stopped junk learner", "stopped queue",
	}
	if got := rec.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}

// TestServeStartFailure: a listener that cannot bind stops serve before it
// serves; what started before it is stopped in reverse, what comes after
// it never starts.
func TestServeStartFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := loopbackConfig(t)
	cfg.Listen.IMAPS = busy.Addr().String()
	rec := &lifecycleLog{}
	err = serve(context.Background(), cfg, slog.New(rec))
	if err == nil || !strings.HasPrefix(err.Error(), "imap: listen.imaps: ") ||
		strings.Count(err.Error(), "another program holds this port") != 1 {
		t.Fatalf("err = %v, want the imaps bind error, explained once", err)
	}
	want := []string{
		"listening smtp", "listening submission", "listening submissions", "listening imap",
		"stopped smtp", "stopped junk learner", "stopped queue",
	}
	if got := rec.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}

func TestShutdownStuckService(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	list := []running{
		{"stuck", func(ctx context.Context) error { <-release; return nil }},
		{"ok", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	}
	saved := shutdownForce
	shutdownForce = 50 * time.Millisecond
	defer func() { shutdownForce = saved }()
	// A zero grace period: the stuck service gets shutdownForce, then is
	// reported; the next one still gets its turn.
	err := shutdownServices(slog.New(slog.DiscardHandler), 0, list)
	if err == nil || !strings.Contains(err.Error(), "stuck") || strings.Contains(err.Error(), "ok") {
		t.Errorf("err = %v, want only the stuck service named", err)
	}
}

func TestAppListen(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	c := testConfig(t)
	c.Listen.SMTP = busy.Addr().String()
	c.Listen.IMAP = "127.0.0.1:0"
	c.Listen.POP3 = ""
	a := &app{cfg: c, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := a.listen("smtp"); err == nil || !strings.Contains(err.Error(), "listen.smtp") || !strings.Contains(err.Error(), "another program holds this port") {
		t.Errorf("busy port: %v", err)
	}
	ln, err := a.listen("imap")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if ln, err := a.listen("pop3"); ln != nil || err != nil {
		t.Errorf("disabled listener: %v, %v", ln, err)
	}
	if _, err := a.listen("gopher"); err == nil {
		t.Error("unknown listener accepted")
	}
}

// TestLoginTimeoutsAligned: IMAP and POP3 get the same pre-login timeout
// from [limits] login_timeout, and POP3's own default is no longer than
// that default.
func TestLoginTimeoutsAligned(t *testing.T) {
	cfg := config.Default()
	a := &app{cfg: cfg}
	if d := pop3d.DefaultLoginTimeout; d > cfg.Limits.LoginTimeout.Duration {
		t.Errorf("pop3d.DefaultLoginTimeout %s > login_timeout default %s", d, cfg.Limits.LoginTimeout)
	}
	cfg.Limits.LoginTimeout.Duration = 17 * time.Second
	for _, name := range []string{"imap", "imaps"} {
		if got := imapOptions(a, name, nil).LoginTimeout; got != 17*time.Second {
			t.Errorf("%s LoginTimeout = %s", name, got)
		}
	}
	for _, name := range []string{"pop3", "pop3s"} {
		if got := pop3Options(a, name, nil).LoginTimeout; got != 17*time.Second {
			t.Errorf("%s LoginTimeout = %s", name, got)
		}
	}
	if got := manageSieveOptions(a, nil).LoginTimeout; got != 17*time.Second {
		t.Errorf("managesieve LoginTimeout = %s", got)
	}
	cfg.IMAP.LoopbackIsSecure = false
	if manageSieveOptions(a, nil).LoopbackIsSecure {
		t.Error("managesieve takes loopback as secure while [imap] does not")
	}
}
