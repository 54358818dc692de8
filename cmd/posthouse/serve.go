package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/certs"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/diskspace"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/backend"
	"github.com/posthouse/posthouse/metrics"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/sievestore"
	"github.com/posthouse/posthouse/srs"
	"github.com/posthouse/posthouse/web"
)

// app is what every listener's start function gets: the configuration
// and the shared resources. serve builds it once, after everything in it is
// open and before the first listener starts; nothing changes it afterwards.
type app struct {
	cfg   *config.Config
	log   *slog.Logger
	tls   *tls.Config  // shared by every TLS listener; certificates come from certs
	certs certs.Source // the one certificate source behind tls.GetCertificate
	auth  *auth.DB
	store mailstore.Store
	queue *queue.Queue
	// delivery is the local delivery pipeline (package delivery).
	delivery *delivery.Pipeline
	// srs reverses bounces to the SRS addresses the queue makes; nil when
	// [queue] srs is off.
	srs *srs.Rewriter
	// junk is the built-in junk filter; nil when [inbound] junk_filter
	// is off.
	junk *junkFilter
	// sieve holds users' Sieve scripts (data_dir/sieve.sqlite).
	sieve *sievestore.Store
	// web is the web console, served on [listen] admin (and /account on
	// https); nil when both are off.
	web *web.Server
	// space watches data_dir's free space against [limits]
	// min_free_space (package diskspace).
	space *diskspace.Monitor
	// metrics counts what the services do (package metrics); the admin
	// listener serves its Handler and the dashboard its Last24h.
	metrics *metrics.Recorder
	// dns is the resolver the services share (one answer cache).
	dns resolver
	// pool is the PostgreSQL pool of the postgres backend (openUserDB),
	// where the shared tables live; nil for the default backend.
	pool *pgxpool.Pool
}

// Shutdown timing. Phase one (stop accepting, let sessions finish) lasts
// shutdownGrace; then services cut remaining connections and get
// shutdownForce more to return. The sum stays under the 10 s a container
// runtime waits between SIGTERM and SIGKILL.
var (
	shutdownGrace = 6 * time.Second
	shutdownForce = 3 * time.Second
	// secondSignalAfter: a signal within this time of the first is the
	// same request delivered twice.
	secondSignalAfter = time.Second
)

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("posthouse serve", "posthouse serve [--config FILE]", stdout)
	cfgPath := configFlag(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("serve takes no arguments (did you mean --config %s?)", rest[0])
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	applyMemoryLimit(cfg, log, "/")
	applyHeapFloor(log)

	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(sigCtx, cfg, log)
}

// serve runs until ctx is done, then shuts down. It reads in the order
// things start: data_dir → databases (users, mailstore, outbound queue) →
// mailstore reconciliation → certificates and the shared *tls.Config →
// queue workers → listeners (smtp, imap, pop3, managesieve, http, admin). They stop in reverse,
// in two phases (shutdownServices); the databases close last.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	started := time.Now()

	// data_dir, owner-only (see makePrivate).
	privateUmask()
	if err := os.MkdirAll(cfg.DataDir, privateDirMode); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	makePrivate(cfg.DataDir, log)

	// Metrics first, so every service can be counted; closed last.
	rec, err := openMetrics(cfg, log.With("proto", "metrics"))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer closeLogged(log, "metrics", rec)

	// runCtx outlives the signal: sessions derive from it, and it is only
	// cancelled once every service has stopped, so in-flight transactions
	// are not cut by the signal itself.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()

	// Databases. Deferred closes run after every service stopped.
	authDB, pool, err := openUserDB(runCtx, cfg, authOptions(cfg, log.With("proto", "auth")))
	if err != nil {
		return fmt.Errorf("open user database: %w", err)
	}
	if pool != nil {
		defer pool.Close()
	}
	defer closeLogged(log, "user database", authDB)
	storeOpts := storeOptions(cfg, log, authDB)
	storeOpts.Pool = pool
	store, err := backend.Open(runCtx, storeOpts)
	if err != nil {
		return fmt.Errorf("open mailstore: %w", err)
	}
	defer closeLogged(log, "mailstore", store)
	junkF, err := openJunk(runCtx, cfg, pool, log.With("proto", "junk"), store)
	if err != nil {
		return fmt.Errorf("junk filter: %w", err)
	}
	if junkF != nil {
		defer closeLogged(log, "junk database", junkF.db)
	}
	rewriter, err := openSRS(runCtx, cfg, pool, log)
	if err != nil {
		return fmt.Errorf("srs: %w", err)
	}
	res := newResolver(cfg, rec)
	local := &pipelineLater{}
	q, err := openQueue(runCtx, cfg, log.With("proto", "queue"), authDB, local, rewriter, rec, res)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer closeLogged(log, "queue", q)
	// Every local copy goes through one delivery pipeline: SMTP intake and
	// the queue's local transport; its redirects go to the queue.
	inbound, err := newInboundFilter(cfg, log.With("proto", "inbound"), authDB, res)
	if err != nil {
		return fmt.Errorf("inbound checks: %w", err)
	}
	milters, err := milterFilters(cfg, log, res)
	if err != nil {
		return fmt.Errorf("delivery filters: %w", err)
	}
	sieveDB, err := openSieveStore(runCtx, cfg, pool, log.With("proto", "sieve"))
	if err != nil {
		return fmt.Errorf("sieve scripts: %w", err)
	}
	defer closeLogged(log, "sieve database", sieveDB)
	sieveF, err := sieveFilter(cfg, log.With("proto", "sieve"), sieveDB, q, store)
	if err != nil {
		return fmt.Errorf("sieve filter: %w", err)
	}
	filters := append(append(append([]delivery.Filter{inbound}, milters...), junkF.filters()...), sieveF)
	pipeline, err := newPipeline(log, authDB, deliveryStore(store, rec), q, filters...)
	if err != nil {
		return fmt.Errorf("delivery pipeline: %w", err)
	}
	local.p = pipeline

	t := time.Now()
	if err := store.Reconcile(runCtx); err != nil {
		if runCtx.Err() != nil {
			return fmt.Errorf("mailstore reconciliation: %w", err)
		}
		// One account's broken storage must not keep the others from
		// their mail: it answers temporary errors until it can be opened
		// (posthouse admin check USER says why).
		log.Error("mailstore reconciliation failed for some accounts; they answer temporary errors until repaired", "err", err)
	}
	log.Info("mailstore reconciled", "dur", time.Since(t).Round(time.Millisecond))

	certSource, err := newCertSource(cfg, log, authDB.IsLocalDomain)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	watchSIGHUP(runCtx, log, certSource)

	a := &app{
		cfg:      cfg,
		log:      log,
		tls:      newTLSConfig(certSource),
		certs:    certSource,
		auth:     authDB,
		store:    store,
		queue:    q,
		delivery: pipeline,
		srs:      rewriter,
		junk:     junkF,
		sieve:    sieveDB,
		space:    newSpaceMonitor(cfg, log.With("proto", "disk")),
		metrics:  rec,
		dns:      res,
		pool:     pool,
	}
	if cfg.Listen.Admin != "" || cfg.Listen.HTTPS != "" {
		webSrv, webDB, err := newWeb(runCtx, a)
		if err != nil {
			return fmt.Errorf("web console: %w", err)
		}
		defer closeLogged(log, "web session database", webDB)
		a.web = webSrv
	}

	// Queue workers, then the listeners; up records what started, to be
	// stopped in reverse. A listener that fails to start stops what came
	// before it, with the usual grace: no session is open yet, but the
	// queue's first housekeeping pass may be under way and must end before
	// its database closes.
	var up []running
	q.Start()
	up = append(up, running{"queue", q.Shutdown})
	if junkF != nil {
		// Stopped after the listeners: IMAP sessions report to it.
		junkF.learner.Start()
		up = append(up, running{"junk learner", junkF.learner.Shutdown})
	}
	listeners := []struct {
		name  string
		start func(ctx context.Context, a *app) (shutdown func(context.Context) error, err error)
	}{
		{"smtp", startSMTP},
		{"imap", startIMAP},
		{"pop3", startPOP3},
		{"managesieve", startManageSieve},
		{"http", startHTTP},
		{"admin", startWeb},
	}
	for _, l := range listeners {
		if ctx.Err() != nil {
			break // signalled while starting: stop what is up
		}
		shutdown, err := l.start(runCtx, a)
		if err != nil {
			shutdownServices(log, shutdownGrace, reversed(up))
			return fmt.Errorf("%s: %w", l.name, err)
		}
		if shutdown != nil {
			up = append(up, running{l.name, shutdown})
		}
	}
	log.Info("posthouse started", "version", versionString(), "hostname", cfg.Hostname, "data_dir", cfg.DataDir,
		"services", len(up), "dur", time.Since(started).Round(time.Millisecond))

	<-ctx.Done()
	log.Info("shutting down", "grace", shutdownGrace)
	err = shutdownServices(log, shutdownGrace, reversed(up))
	cancelRun()
	if err != nil {
		return err
	}
	log.Info("posthouse stopped")
	return nil
}

// quotas is where the mailstore reads the users' quotas (auth.DB).
type quotas interface {
	Quota(ctx context.Context, account string) (int64, error)
	MessageQuota(ctx context.Context, account string) (int64, error)
}

// storeOptions are the mailstore's: the backend [store] names, over
// data_dir, with the users' quotas (none when q is nil). serve and admin
// open it the same way; its log lines carry proto=mailstore.
func storeOptions(cfg *config.Config, log *slog.Logger, q quotas) backend.Options {
	opts := backend.Options{Backend: cfg.Store.Backend, DataDir: cfg.DataDir, DSN: cfg.Store.DSN, Logger: log.With("proto", "mailstore")}
	if q != nil {
		opts.Quota, opts.MessageQuota = q.Quota, q.MessageQuota
	}
	return opts
}

// closeLogged closes one of serve's databases; a failure is logged.
func closeLogged(log *slog.Logger, what string, c io.Closer) {
	if err := c.Close(); err != nil {
		log.Error("close "+what, "err", err)
	}
}

// running is a started service: the queue's workers or one protocol's
// listeners.
type running struct {
	name     string
	shutdown func(context.Context) error
}

// reversed returns list in reverse order, the order of shutdown.
func reversed(list []running) []running {
	rev := slices.Clone(list)
	slices.Reverse(rev)
	return rev
}

// shutdownServices calls each shutdown in the order given. They share one
// deadline, now+grace: those that cannot finish by then cut their
// connections and get shutdownForce more to return. A second SIGINT or
// SIGTERM ends the grace period at once.
func shutdownServices(log *slog.Logger, grace time.Duration, list []running) error {
	graceCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(again)
	watchDone := make(chan struct{})
	defer close(watchDone)
	start := time.Now()
	go func() {
		for {
			select {
			case <-again:
				// A supervisor that signals the whole process group (timeout,
				// some init scripts) delivers the first signal twice: only a
				// later one is an operator insisting.
				if time.Since(start) < secondSignalAfter {
					continue
				}
				log.Warn("second signal: stopping without waiting for sessions")
				cancel()
				return
			case <-watchDone:
				return
			}
		}
	}()

	var failed []string
	for _, r := range list {
		t := time.Now()
		done := make(chan error, 1)
		go func() { done <- r.shutdown(graceCtx) }()
		var err error
		select {
		case err = <-done:
		case <-graceCtx.Done():
			timer := time.NewTimer(shutdownForce)
			select {
			case err = <-done:
			case <-timer.C:
				err = fmt.Errorf("did not stop within %s after the grace period", shutdownForce)
			}
			timer.Stop()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			log.Error("service shutdown", "service", r.name, "err", err, "dur", time.Since(t).Round(time.Millisecond))
			failed = append(failed, r.name)
			continue
		}
		log.Info("service stopped", "service", r.name, "dur", time.Since(t).Round(time.Millisecond))
	}
	if len(failed) > 0 {
		return fmt.Errorf("unclean shutdown of %s", strings.Join(failed, ", "))
	}
	return nil
}

// listen opens a TCP listener for the [listen] entry name (services may use
// it so bind errors read the same everywhere). It returns nil, nil when the
// listener is disabled.
func (a *app) listen(name string) (net.Listener, error) {
	for _, l := range a.cfg.Listeners() {
		if l.Name != name {
			continue
		}
		if l.Addr == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen.%s: %w", name, explainListenError(err))
		}
		if a.cfg.Listen.Proxied(name) {
			ln = proxyListener(ln, a, name)
		}
		a.log.Info("listening", "proto", name, "addr", ln.Addr().String(), "proxy_protocol", a.cfg.Listen.Proxied(name))
		return countConns(ln, name, a.metrics), nil
	}
	return nil, fmt.Errorf("no listener named %q in [listen]", name)
}

// explainListenError adds the likely fix to a bind error.
func explainListenError(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%w (ports below 1024 need root or CAP_NET_BIND_SERVICE; or set high ports in [listen] or POSTHOUSE_LISTEN_*)", err)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w (another program holds this port; stop it, or change [listen])", err)
	}
	return err
}

// authOptions maps [auth] onto auth.Options.
func authOptions(cfg *config.Config, log *slog.Logger) auth.Options {
	return auth.Options{
		Logger:             log,
		TrustedNetworks:    cfg.Auth.Networks(),
		IPMaxFailures:      cfg.Auth.IPMaxFailures,
		IPWindow:           cfg.Auth.IPWindow.Duration,
		AccountMaxFailures: cfg.Auth.AccountMaxFailures,
		AccountWindow:      cfg.Auth.AccountWindow.Duration,
		AccountInterval:    cfg.Auth.AccountInterval.Duration,
		KnownAddressTTL:    cfg.Auth.KnownAddressTTL.Duration,
		// Protocol logins only; see auth doc.go "Two-factor login".
		RequireAppPasswords: cfg.Auth.RequireAppPasswords,
	}
}
