package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dnscheck"
	"github.com/posthouse/posthouse/web"
)

// Web console limits: pages are small; a DNS check page may wait on
// several lookups.
const (
	webReadTimeout  = 30 * time.Second
	webWriteTimeout = 60 * time.Second
)

// newWeb builds the web console over serve's resources; the admin
// listener and https's /account share it and its session database
// (data_dir/web.sqlite; with the postgres backend, that database, so a
// login is valid on every node), which it returns for serve to close last.
func newWeb(ctx context.Context, a *app) (*web.Server, *web.SessionDB, error) {
	var sessions *web.SessionDB
	var err error
	if a.pool != nil {
		sessions, err = web.OpenSessionDBPostgres(ctx, a.pool)
	} else {
		sessions, err = web.OpenSessionDB(ctx, filepath.Join(a.cfg.DataDir, "web.sqlite"))
	}
	if err != nil {
		return nil, nil, err
	}
	opts := web.Options{
		Sessions:  sessions,
		Logger:    a.log.With("proto", "web"),
		Hostname:  a.cfg.Hostname,
		Accounts:  webAuth{a.auth},
		Directory: webAuth{a.auth},
		Queue:     a.queue,
		DKIM:      a.queue.DKIM(),
		Sieve:     a.sieve,
		Usage: func(ctx context.Context, account string) (int64, int64, error) {
			acct, err := a.store.Open(ctx, account)
			if err != nil {
				return 0, 0, err
			}
			defer acct.Close()
			return acct.Usage(ctx)
		},
		Ports:    dnscheck.Ports(a.cfg),
		Warnings: dnscheck.ClientSetupWarnings(a.cfg),
	}
	webMetrics(a, &opts)
	if r, err := dns.New(dns.Options{Server: a.cfg.DNS.Resolver}); err != nil {
		a.log.Warn("web: no DNS resolver for the DNS check page", "err", err)
	} else {
		opts.Resolver = r
	}
	srv, err := web.New(opts)
	if err != nil {
		sessions.Close()
		return nil, nil, err
	}
	return srv, sessions, nil
}

// webMetrics gives the console /metrics and the dashboard's last 24 hours.
func webMetrics(a *app, opts *web.Options) {
	if a.metrics == nil {
		return
	}
	opts.Metrics = a.metrics.Handler()
	opts.Last24h = func(now time.Time) web.Traffic {
		s := a.metrics.Last24h(now)
		return web.Traffic{In: s.In, Out: s.Out, Rejected: s.Rejected}
	}
}

// startWeb opens [listen] admin: the admin console, self-service and
// /metrics. On a loopback address it speaks plain HTTP (reach it through
// an SSH tunnel); on any other, HTTPS with the server's certificate.
func startWeb(ctx context.Context, a *app) (func(context.Context) error, error) {
	if a.web == nil {
		return nil, nil
	}
	handler := a.web.AdminHandler()
	return serveEach(ctx, a, []string{"admin"}, http.ErrServerClosed, func(string) (mailServer, error) {
		srv := httpServer{Server: &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: httpReadHeaderTimeout,
			ReadTimeout:       webReadTimeout,
			WriteTimeout:      webWriteTimeout,
			IdleTimeout:       httpIdleTimeout,
			MaxHeaderBytes:    httpMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelError),
			BaseContext:       func(net.Listener) context.Context { return ctx },
		}}
		if !loopbackAddr(a.cfg.Listen.Admin) {
			srv.tls = a.tls.Clone()
			srv.tls.NextProtos = []string{"http/1.1"}
		}
		return srv, nil
	})
}

// loopbackAddr reports whether a listen address binds loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// withAccount sends self-service paths (/account, login, logout, the
// style sheet) on the https listener to the web console, the rest to h.
func withAccount(a *app, h http.Handler) http.Handler {
	if a.web == nil {
		return h
	}
	account := a.web.AccountHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/account" || strings.HasPrefix(p, "/account/") || p == "/login" || strings.HasPrefix(p, "/login/") ||
			p == "/logout" || strings.HasPrefix(p, "/static/") {
			account.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
