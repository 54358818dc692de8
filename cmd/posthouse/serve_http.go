package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/autoconfig"
	"github.com/posthouse/posthouse/certs"
	"github.com/posthouse/posthouse/config"
)

// HTTP limits: autoconfig requests are tiny and answered at once.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 60 * time.Second
	httpMaxHeaderBytes    = 16 << 10
)

// startHTTP opens "http" (80) and "https" (443): client autoconfiguration
// for Thunderbird and Outlook, and with ACME the CA's challenges (HTTP-01 on
// http, TLS-ALPN-01 on https); https also serves self-service (/account).
func startHTTP(ctx context.Context, a *app) (func(context.Context) error, error) {
	acme, _ := a.certs.(*certs.ACME)
	handler := http.Handler(autoconfig.New(autoconfigOptions(a.cfg, a.auth, a.log.With("proto", "http"))))
	shutdown, err := serveEach(ctx, a, []string{"http", "https"}, http.ErrServerClosed, func(name string) (mailServer, error) {
		srv := httpServer{Server: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: httpReadHeaderTimeout,
			ReadTimeout:       httpReadTimeout,
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       httpIdleTimeout,
			MaxHeaderBytes:    httpMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelError),
			BaseContext:       func(net.Listener) context.Context { return ctx },
		}}
		switch {
		case name == "http" && acme != nil:
			srv.Handler = acme.HTTPHandler(handler)
		case name == "https":
			srv.Handler = withAccount(a, handler)
			srv.tls = a.tls.Clone()
			srv.tls.NextProtos = []string{"http/1.1"}
			if acme != nil {
				srv.tls.NextProtos = append(srv.tls.NextProtos, acme.NextProtos()...)
			}
		}
		return srv, nil
	})
	if err != nil || shutdown == nil || acme == nil {
		return shutdown, err
	}
	// The challenge listeners are up: obtain the hostname's certificate now
	// rather than on the first client's handshake. autocert bounds the
	// exchange and cannot be cancelled, so shutdown waits for it only as
	// long as its context allows; a failure is logged and retried on demand.
	prefetch := make(chan struct{})
	go func() {
		defer close(prefetch)
		acme.Prefetch()
	}()
	return func(ctx context.Context) error {
		err := shutdown(ctx)
		select {
		case <-prefetch:
		case <-ctx.Done():
		}
		return err
	}, nil
}

// httpServer adapts net/http's server to mailServer; with tls set it
// serves HTTPS.
type httpServer struct {
	*http.Server
	tls *tls.Config
}

func (s httpServer) Serve(_ context.Context, ln net.Listener) error {
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	return s.Server.Serve(ln)
}

// Shutdown lets requests in flight finish until ctx ends, then cuts them.
func (s httpServer) Shutdown(ctx context.Context) error {
	if err := s.Server.Shutdown(ctx); err != nil {
		s.Server.Close()
		return err
	}
	return nil
}

// autoconfigOptions describes the configured listeners to mail clients;
// serve's http listeners and `admin user profile` share it.
func autoconfigOptions(cfg *config.Config, domains *auth.DB, log *slog.Logger) autoconfig.Options {
	return autoconfig.Options{
		Logger:      log,
		Hostname:    cfg.Hostname,
		Domains:     domains,
		IMAPS:       advertised(cfg.Listen.IMAPS, false),
		IMAP:        advertised(cfg.Listen.IMAP, true),
		POP3S:       advertised(cfg.Listen.POP3S, false),
		POP3:        advertised(cfg.Listen.POP3, true),
		Submissions: advertised(cfg.Listen.Submissions, false),
		Submission:  advertised(cfg.Listen.Submission, true),
		HTTPS:       advertised(cfg.Listen.HTTPS, false).Port,
	}
}

// advertised turns a listen address into what autoconfig tells clients: its
// port, or 0 when the listener is off.
func advertised(addr string, starttls bool) autoconfig.Service {
	if addr == "" {
		return autoconfig.Service{}
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return autoconfig.Service{}
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 {
		return autoconfig.Service{}
	}
	return autoconfig.Service{Port: port, STARTTLS: starttls}
}
