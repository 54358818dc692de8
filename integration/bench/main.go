// Command bench measures Posthouse and, side by side on the same machine,
// Postfix + Dovecot from Debian's packages, with one load generator for
// both, and prints a Markdown table of medians.
//
//	go run ./integration/bench                  # full sizes, 3 runs, both systems
//	go run ./integration/bench -quick -runs 1   # small counts
//	go run ./integration/bench -workloads smtp,imap -systems posthouse
//	go run ./integration/bench -workloads smtp,imap,pop3 -systems posthouse,posthouse-pg,postfix
//
// Posthouse is the real binary (built with go build ./cmd/posthouse) with a
// TOML config in a temporary directory; Postfix and Dovecot are installed
// with apt-get when missing and run from their own temporary configuration
// (postfix -c DIR, dovecot -c FILE), never from /etc/postfix or
// /etc/dovecot. Every listener is on 127.0.0.1. Everything is stopped and
// removed at the end, also on error or interrupt (BENCH_KEEP=1 keeps the
// directories for inspection).
//
// posthouse-pg is the same binary with [store] backend = "postgres" (mail,
// users and queue in PostgreSQL), in its own column, against a private
// PostgreSQL started for the run (internal/pgtest: initdb in a temporary
// directory, run as nobody under root, 127.0.0.1 only, fsync and
// synchronous_commit on). Its mailboxes are filled through the store's
// import path; its CPU rows include PostgreSQL's processes and its disk
// row PostgreSQL's data directory (WAL included); the notes give
// PostgreSQL's statements (round trips), WAL bytes and WAL fsyncs per
// delivery and per IMAP command, from pg_stat_statements and pg_stat_wal.
//
// Workloads (-workloads, comma-separated; default all):
//
//	smtp   inbound SMTP, 10 KB messages, 1 and 20 connections, until every
//	       message is visible by IMAP STATUS; also bytes on disk per message
//	imap   SELECT and UID FETCH 1:* (FLAGS) on a 100,000-message mailbox,
//	       FETCH of 1,000 full 50 KB messages, SEARCH TEXT over 10,000
//	pop3   RETR+DELE of 1,000 messages of 50 KB in one session
//	mem    resident memory with 1,000 idle authenticated IMAP connections
//	relay  outbound relay to a loopback SMTP receiver, 1 and 20 domains
//	stress imaptest's stress mode (10 clients, 30 s) when an imaptest
//	       binary is given: commands/s and ms per FETCH, STORE, EXPUNGE,
//	       APPEND; Dovecot at the faster of two client_limit settings
//	idle   10,000 IMAP connections in IDLE: memory and CPU while they
//	       wait and while one delivery wakes one of them
//	hostile  20 hostile MIME messages of 50 MiB at once (nested
//	       message/rfc822, 100,000 parts, huge headers, deep multipart, …):
//	       peak memory, whether every protocol keeps answering, then FETCH
//	       1:* (BODYSTRUCTURE) over them
//
// Nothing here asserts on time: the command reports figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	runs      int
	quick     bool
	workloads map[string]bool
	systems   map[string]bool
	install   bool
	populate  string // "auto", "append", "maildir"
	out       string
	bin       string
	// requireOthers fails when Postfix + Dovecot cannot be set up; when
	// false (the smoke test) that column is left n/a.
	requireOthers bool
	// sizes overrides the full or quick sizes (the smoke test's tiny set).
	sizes *sizes
	// settle is how long the memory workload waits after the last login
	// before reading /proc, and after closing the connections.
	settle time.Duration
	// idleWindow is how long the idle workload measures CPU while the
	// connections wait.
	idleWindow time.Duration

	dovecotClientLimit, dovecotProcessLimit int
	imaptest                                string // -imaptest
}

var systemNames = []string{"posthouse", "posthouse-pg", "postfix"}

var workloadNames = []string{"mem", "smtp", "imap", "pop3", "relay", "hostile", "stress", "idle"}

func parseSet(s string, allowed []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if f == "all" {
			for _, a := range allowed {
				out[a] = true
			}
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == f
		}
		if !ok {
			return nil, fmt.Errorf("unknown %q (choose from %s)", f, strings.Join(allowed, ", "))
		}
		out[f] = true
	}
	return out, nil
}

func main() {
	var (
		o         options
		workloads string
		systems   string
		verbose   bool
		setSizes  string
	)
	flag.IntVar(&o.runs, "runs", 3, "runs of each measurement; the table shows medians")
	flag.BoolVar(&o.quick, "quick", false, "small counts (about a minute instead of half an hour)")
	flag.StringVar(&workloads, "workloads", "all", "comma-separated workloads: "+strings.Join(workloadNames, ", "))
	flag.StringVar(&systems, "systems", "posthouse,postfix", "comma-separated systems: posthouse, posthouse-pg (Posthouse with [store] backend = \"postgres\" on a private PostgreSQL), postfix (Postfix + Dovecot)")
	flag.BoolVar(&o.install, "install", true, "apt-get install Postfix and Dovecot when missing")
	flag.StringVar(&o.populate, "populate", "auto", "how the test mailboxes are filled (not timed): append (IMAP APPEND, 4 pipelined connections), maildir (files written into the server's maildir folder, then indexed by the server; the postgres backend imports instead: its store's import path, in batches), auto (each system's faster way: maildir for Posthouse and Dovecot, import for the postgres backend)")
	flag.StringVar(&o.out, "out", "", "also write the table to this file")
	flag.StringVar(&o.bin, "posthouse-bin", "", "use this posthouse binary instead of building ./cmd/posthouse")
	flag.IntVar(&o.dovecotClientLimit, "dovecot-imap-client-limit", 1, "Dovecot service imap client_limit (1 = Debian default, a process per connection)")
	flag.IntVar(&o.dovecotProcessLimit, "dovecot-imap-process-limit", 0, "Dovecot service imap process_limit (0: the larger of 1024, the Debian default, and idle connections + 100)")
	flag.StringVar(&setSizes, "set", "", "override sizes, e.g. IdleConns=200,BigMsgs=20000 (fields: "+strings.Join(sizeFields(), ", ")+")")
	flag.StringVar(&o.imaptest, "imaptest", "", "Dovecot's imaptest binary for the stress workload (default: $IMAPTEST, then imaptest in PATH; without one the workload is skipped)")
	flag.BoolVar(&verbose, "v", false, "debug logging")
	flag.Parse()
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var err error
	if o.workloads, err = parseSet(workloads, workloadNames); err != nil {
		log.Error("bad -workloads", "err", err)
		os.Exit(2)
	}
	if o.systems, err = parseSet(systems, systemNames); err != nil {
		log.Error("bad -systems", "err", err)
		os.Exit(2)
	}
	if o.runs < 1 {
		log.Error("-runs must be at least 1")
		os.Exit(2)
	}
	if setSizes != "" {
		sz := fullSizes
		if o.quick {
			sz = quickSizes
		}
		if err := applySizes(&sz, setSizes); err != nil {
			log.Error("bad -set", "err", err)
			os.Exit(2)
		}
		o.sizes = &sz
	}
	o.requireOthers = true
	o.settle = 2 * time.Second
	o.idleWindow = 10 * time.Second
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, log); err != nil {
		log.Error("benchmark failed", "err", err)
		stop()
		os.Exit(1)
	}
}

// run sets the systems up, runs the workloads and writes the table to w.
func run(ctx context.Context, o options, w io.Writer, log *slog.Logger) (err error) {
	raiseHardFileLimit()
	if lim, err := raiseFileLimit(); err != nil {
		log.Warn("could not raise the open-file limit", "err", err)
	} else {
		log.Debug("open-file limit", "n", lim)
	}
	sz, mode := fullSizes, "full"
	if o.quick {
		sz, mode = quickSizes, "quick"
	}
	if o.sizes != nil {
		sz = *o.sizes
	}
	switch o.populate {
	case "auto", "append", "maildir":
	default:
		return fmt.Errorf("-populate %q: want auto, append or maildir", o.populate)
	}
	h := header{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		machine:   runtime.GOOS + "/" + runtime.GOARCH,
		cores:     fmt.Sprint(runtime.NumCPU()),
		goVersion: runtime.Version(),
		posthouse: "Posthouse",
		others:    "Postfix + Dovecot: not run",
		mode:      mode,
		runs:      o.runs,
	}
	if m := cpuModel(); m != "" {
		h.machine = m
	}

	// The relay workload's DNS server is Posthouse's resolver in every run:
	// its port-25 checks (SPF, DMARC, iprev) look up every message's
	// sender, and the server answers them on loopback (NXDOMAIN with a SOA), as a
	// local caching resolver would.
	var relay *relaySink
	if o.workloads["relay"] || o.systems["posthouse"] || o.systems["posthouse-pg"] {
		if relay, err = startRelaySink(log); err != nil {
			return err
		}
		defer relay.Close()
	}

	defer cpuAcct.close() // after the systems' Close below
	var srvs []server
	defer func() {
		for _, s := range srvs {
			if cerr := s.Close(); cerr != nil {
				log.Warn("cleanup", "system", s.Name(), "err", cerr)
			}
		}
	}()
	if o.systems["posthouse"] {
		popts := phOptions{Bin: o.bin}
		if relay != nil {
			popts.RelayPort, popts.DNSAddr = relay.port, relay.dnsAddr
		}
		log.Info("starting Posthouse")
		ph, err := startPosthouse(ctx, log, popts)
		if err != nil {
			return err
		}
		srvs = append(srvs, ph)
		h.posthouse = posthouseVersion(ph.bin)
	}
	if o.systems["posthouse-pg"] {
		popts := phOptions{Bin: o.bin}
		for _, s := range srvs {
			if ph, ok := s.(*phServer); ok && popts.Bin == "" {
				popts.Bin = ph.bin // built once for both
			}
		}
		if relay != nil {
			popts.RelayPort, popts.DNSAddr = relay.port, relay.dnsAddr
		}
		log.Info("starting PostgreSQL and Posthouse on it")
		pg, err := startPosthousePG(ctx, log, popts)
		if err != nil {
			return err
		}
		srvs = append(srvs, pg)
		h.posthouse = posthouseVersion(pg.bin)
		h.pg = pg.describe()
	}
	if o.systems["postfix"] {
		pd, err := setupPostfixDovecot(ctx, log, o, sz, relay)
		switch {
		case err != nil && o.requireOthers:
			return err
		case err != nil:
			log.Warn("Postfix + Dovecot side skipped", "err", err)
		default:
			srvs = append(srvs, pd)
			h.others = postfixDovecotVersions()
			h.others += fmt.Sprintf(" (imap client_limit=%d process_limit=%d)", pd.opts.IMAPClientLimit, pd.opts.IMAPProcessLimit)
		}
	}
	if len(srvs) == 0 {
		return errors.New("no system to benchmark")
	}
	for _, s := range srvs {
		for _, u := range allUsers {
			if err := s.AddUser(ctx, u, password); err != nil {
				return fmt.Errorf("%s: add user %s: %w", s.Name(), u, err)
			}
		}
	}
	b := &bench{log: log, o: o, sz: sz, srvs: srvs, res: newResults(), relay: relay}
	if o.workloads["stress"] {
		if b.imaptest = findImaptest(o.imaptest); b.imaptest == "" {
			log.Warn("imaptest not found (-imaptest, $IMAPTEST or PATH): the stress workload is skipped")
			b.note("imaptest stress: skipped, no imaptest binary (-imaptest, $IMAPTEST or PATH). imaptest is Dovecot's IMAP test tool; it has no Debian package and is never built by the benchmark.")
		}
	}
	b.note(cpuAcct.method())
	if o.systems["posthouse-pg"] {
		b.note(pgMethodology)
	}
	b.declareRows()
	for _, wl := range workloadNames {
		if !o.workloads[wl] {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Info("workload", "name", wl)
		b.runWorkload(ctx, wl)
	}
	// The columns: the Posthouse systems run, then Postfix + Dovecot
	// (n/a when not run), as the ratio compares the first with it.
	var cols []string
	for _, s := range srvs {
		if s.Name() != pdName {
			cols = append(cols, s.Name())
		}
	}
	if len(cols) == 0 {
		cols = append(cols, "Posthouse")
	}
	cols = append(cols, pdName)
	b.res.write(w, h, cols)
	b.writeNotes(w)
	b.res.logRuns(log, cols)
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		b.res.write(f, h, cols)
		b.writeNotes(f)
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

func setupPostfixDovecot(ctx context.Context, log *slog.Logger, o options, sz sizes, relay *relaySink) (*pdServer, error) {
	if err := ensurePostfixDovecot(ctx, log, o.install); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("Postfix + Dovecot need root to start (postfix drops to its mail_owner, dovecot to its service users)")
	}
	po := pdOptions{IMAPClientLimit: o.dovecotClientLimit, IMAPProcessLimit: o.dovecotProcessLimit}
	if po.IMAPProcessLimit == 0 {
		po.IMAPProcessLimit = max(1024, sz.IdleConns+100)
	}
	if relay != nil {
		po.RelayPort, po.RelayDomains = relay.port, relay.domains
	}
	log.Info("starting Postfix + Dovecot")
	return startPostfixDovecot(ctx, log, po)
}

// cpuModel is the processor name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
