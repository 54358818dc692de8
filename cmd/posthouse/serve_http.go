package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/posthouse/posthouse/autoconfig"
	"github.com/posthouse/posthouse/certs"
)

func init() { registerService("http", 50, startHTTP) }

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
// http, TLS-ALPN-01 on https).
func startHTTP(ctx context.Context, a *app) (func(context.Context) error, error) {
	acme, _ := a.certs.(*certs.ACME)
	handler := http.Handler(autoconfig.New(autoconfig.Options{
		Logger:      a.log.With("proto", "http"),
		Hostname:    a.cfg.Hostname,
		Domains:     a.auth,
		IMAPS:       advertised(a.cfg.Listen.IMAPS, false),
		IMAP:        advertised(a.cfg.Listen.IMAP, true),
		POP3S:       advertised(a.cfg.Listen.POP3S, false),
		POP3:        advertised(a.cfg.Listen.POP3, true),
		Submissions: advertised(a.cfg.Listen.Submissions, false),
		Submission:  advertised(a.cfg.Listen.Submission, true),
	}))
	var (
		servers  []*http.Server
		wg       sync.WaitGroup
		prefetch = make(chan struct{})
	)
	shutdown := func(ctx context.Context) error {
		var errs []error
		for _, s := range servers {
			if err := s.Shutdown(ctx); err != nil {
				errs = append(errs, err, s.Close())
			}
		}
		wg.Wait()
		if acme != nil {
			// autocert cannot be cancelled: wait for a prefetch in flight
			// only as long as the shutdown allows.
			select {
			case <-prefetch:
			case <-ctx.Done():
			}
		}
		return errors.Join(errs...)
	}
	for _, name := range []string{"http", "https"} {
		ln, err := a.listen(name)
		if err != nil {
			shutdown(context.Background())
			return nil, err
		}
		if ln == nil {
			continue
		}
		h := handler
		if name == "http" && acme != nil {
			h = acme.HTTPHandler(handler)
		}
		if name == "https" {
			cfg := a.tls.Clone()
			cfg.NextProtos = []string{"http/1.1"}
			if acme != nil {
				cfg.NextProtos = append(cfg.NextProtos, acme.NextProtos()...)
			}
			ln = tls.NewListener(ln, cfg)
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: httpReadHeaderTimeout,
			ReadTimeout:       httpReadTimeout,
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       httpIdleTimeout,
			MaxHeaderBytes:    httpMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelError),
			BaseContext:       func(net.Listener) context.Context { return ctx },
		}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("http listener stopped", "proto", name, "err", err)
			}
		}()
	}
	if acme != nil {
		// The challenge listeners are up: obtain the hostname's certificate
		// now rather than on the first client's handshake. autocert bounds
		// the exchange; a failure is logged and retried on demand.
		go func() {
			defer close(prefetch)
			acme.Prefetch()
		}()
	}
	if len(servers) == 0 {
		return nil, nil
	}
	return shutdown, nil
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
