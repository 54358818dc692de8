package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/pop3d"
)

// withServices replaces the registry for one test.
func withServices(t *testing.T, list []service) {
	t.Helper()
	servicesMu.Lock()
	saved := services
	services = list
	servicesMu.Unlock()
	t.Cleanup(func() {
		servicesMu.Lock()
		services = saved
		servicesMu.Unlock()
	})
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	c := config.Default()
	c.Hostname = "mail.example.com"
	c.DataDir = filepath.Join(t.TempDir(), "data")
	return c
}

// recorder logs lifecycle events in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func recordingService(r *recorder, name string, order int, startErr error) service {
	return service{name: name, order: order, start: func(ctx context.Context, a *app) (func(context.Context) error, error) {
		if a.auth == nil || a.store == nil || a.tls == nil || a.cfg == nil || a.log == nil {
			return nil, errors.New("app not ready")
		}
		if startErr != nil {
			return nil, startErr
		}
		r.add("start " + name)
		return func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); !ok {
				r.add("stop " + name + " without deadline")
			}
			r.add("stop " + name)
			return nil
		}, nil
	}}
}

func TestServeLifecycle(t *testing.T) {
	r := &recorder{}
	// Registered out of order on purpose.
	withServices(t, []service{
		recordingService(r, "pop3", 40, nil),
		recordingService(r, "queue", 10, nil),
		recordingService(r, "smtp", 20, nil),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, testConfig(t), slog.New(slog.DiscardHandler)) }()
	deadline := time.Now().Add(20 * time.Second)
	for len(r.get()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"start queue", "start smtp", "start pop3", "stop pop3", "stop smtp", "stop queue"}
	if got := r.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestServeStartFailure(t *testing.T) {
	r := &recorder{}
	bindErr := &net.OpError{Op: "listen", Net: "tcp", Err: &net.AddrError{Err: "address already in use"}}
	withServices(t, []service{
		recordingService(r, "queue", 10, nil),
		recordingService(r, "smtp", 20, nil),
		recordingService(r, "imap", 30, bindErr),
		recordingService(r, "pop3", 40, nil),
	})
	err := serve(context.Background(), testConfig(t), slog.New(slog.DiscardHandler))
	if err == nil || !strings.HasPrefix(err.Error(), "imap: ") {
		t.Fatalf("err = %v, want the imap start error", err)
	}
	want := []string{"start queue", "start smtp", "stop smtp", "stop queue"}
	if got := r.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
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
}
