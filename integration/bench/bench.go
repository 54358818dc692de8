package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// bench runs the workloads over every system, interleaving the systems run
// by run so that a noisy neighbour on the machine hurts both alike.
type bench struct {
	log   *slog.Logger
	o     options
	sz    sizes
	srvs  []server
	res   *results
	relay *relaySink
	// imaptest is the imaptest binary for the stress workload ("": none).
	imaptest string

	mu    sync.Mutex // guards notes and errs
	notes []string
	errs  []string
}

func (b *bench) runWorkload(ctx context.Context, wl string) {
	switch wl {
	case "mem":
		b.mem(ctx)
	case "smtp":
		b.smtp(ctx)
	case "imap":
		b.imap(ctx)
	case "pop3":
		b.pop3(ctx)
	case "relay":
		b.relayOut(ctx)
	case "hostile":
		b.hostileMIME(ctx)
	case "stress":
		b.stress(ctx)
	case "idle":
		b.idleWake(ctx)
	}
}

// fail records that a system could not run a workload; its cells say so.
func (b *bench) fail(s server, what string, err error) {
	b.log.Error("workload failed", "system", s.Name(), "workload", what, "err", err)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, fmt.Sprintf("%s, %s: %v", s.Name(), what, firstLine(err.Error())))
}

// note adds a line to the notes under the table.
func (b *bench) note(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notes = append(b.notes, s)
}

func firstLine(s string) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func n(v int) string {
	s := fmt.Sprint(v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func kb(v int) string { return fmt.Sprintf("%d KB", v>>10) }

var (
	perSec = func(label string) metric {
		return metric{label: label, unit: "msg/s", higher: true, scale: 1, format: "%.1f"}
	}
	millis = func(label string) metric {
		return metric{label: label, unit: "ms", scale: 1, format: "%.1f"}
	}
	cpuMillis = func(label string) metric {
		return metric{label: label, unit: "CPU ms", scale: 1, format: "%.2f"}
	}
	mib = func(label string) metric {
		return metric{label: label, unit: "MiB", scale: 1.0 / (1 << 20), format: "%.1f"}
	}
	kib = func(label string) metric {
		return metric{label: label, unit: "KiB", scale: 1.0 / (1 << 10), format: "%.1f"}
	}
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// The table's rows, one constructor per workload.

func (b *bench) mSMTP(conns int) (accepted, visible, cpu metric) {
	return perSec(fmt.Sprintf("SMTP in, %s msgs, %d conn: all accepted (250)", kb(b.sz.SMTPSize), conns)),
		perSec(fmt.Sprintf("SMTP in, %s msgs, %d conn: all visible by IMAP", kb(b.sz.SMTPSize), conns)),
		cpuMillis(fmt.Sprintf("SMTP in, %s msgs, %d conn: CPU of all the system's processes per message", kb(b.sz.SMTPSize), conns))
}

func (b *bench) mDisk() metric {
	return kib("Disk per stored message (mail + indexes, after SMTP in)")
}

// selectSamples is how many SELECTs, each on a fresh connection, give a
// run's SELECT figure (their median).
const selectSamples = 9

func (b *bench) mIMAP() (sel, fetchFlags, fetchFlagsCPU, fetchBodies, fetchBodiesCPU, search, searchCPU metric) {
	sz := b.sz
	const cpu = ": CPU of all the system's processes, whole session"
	selMillis := millis(fmt.Sprintf("IMAP SELECT, %s-msg mailbox", n(sz.BigMsgs)))
	selMillis.format = "%.2f"
	return selMillis,
		millis(fmt.Sprintf("IMAP UID FETCH 1:* (FLAGS), %s msgs", n(sz.BigMsgs))),
		cpuMillis(fmt.Sprintf("IMAP login, SELECT, UID FETCH 1:* (FLAGS), %s msgs%s", n(sz.BigMsgs), cpu)),
		millis(fmt.Sprintf("IMAP FETCH 1:* BODY.PEEK[], %s × %s", n(sz.FetchMsgs), kb(sz.FetchSize))),
		cpuMillis(fmt.Sprintf("IMAP FETCH 1:* BODY.PEEK[], %s × %s%s", n(sz.FetchMsgs), kb(sz.FetchSize), cpu)),
		millis(fmt.Sprintf("IMAP SEARCH TEXT, %s msgs", n(sz.SearchMsgs))),
		cpuMillis(fmt.Sprintf("IMAP SEARCH TEXT, %s msgs%s", n(sz.SearchMsgs), cpu))
}

func (b *bench) mPOP() (wall, cpu metric) {
	return millis(fmt.Sprintf("POP3 RETR+DELE+QUIT, %s × %s", n(b.sz.POPMsgs), kb(b.sz.POPSize))),
		cpuMillis(fmt.Sprintf("POP3 RETR+DELE+QUIT, %s × %s: CPU of all the system's processes", n(b.sz.POPMsgs), kb(b.sz.POPSize)))
}

func (b *bench) mMem() (rss, pss, perRSS, perPSS metric) {
	k := n(b.sz.IdleConns)
	return mib(fmt.Sprintf("Memory with %s idle IMAP conns: RSS, all processes", k)),
		mib(fmt.Sprintf("Memory with %s idle IMAP conns: PSS, all processes", k)),
		kib(fmt.Sprintf("Memory per idle IMAP conn (RSS growth / %s)", k)),
		kib(fmt.Sprintf("Memory per idle IMAP conn (PSS growth / %s)", k))
}

func (b *bench) mRelay(dests int) (rate, cpu metric) {
	return perSec(fmt.Sprintf("Relay out, %s msgs of %s, %d destination domain(s)", n(b.sz.RelayMsgs), kb(b.sz.RelaySize), dests)),
		cpuMillis(fmt.Sprintf("Relay out, %s msgs of %s, %d destination domain(s): CPU of all the system's processes per message", n(b.sz.RelayMsgs), kb(b.sz.RelaySize), dests))
}

// declareRows fixes the table's row order (the workloads run in another
// order: memory first, on servers that have done nothing yet).
func (b *bench) declareRows() {
	w := b.o.workloads
	if w["smtp"] {
		for _, c := range []int{1, 20} {
			a, v, cpu := b.mSMTP(c)
			b.res.declare(a, v, cpu)
		}
		b.res.declare(b.mDisk())
	}
	if w["imap"] {
		a, c, d, e, f, g, h := b.mIMAP()
		b.res.declare(a, c, d, e, f, g, h, b.mQResync())
	}
	if w["pop3"] {
		a, c := b.mPOP()
		b.res.declare(a, c)
	}
	if w["mem"] {
		a, c, d, e := b.mMem()
		b.res.declare(a, c, d, e)
	}
	if w["relay"] {
		for _, d := range []int{1, relayDomains} {
			a, c := b.mRelay(d)
			b.res.declare(a, c)
		}
	}
	if w["hostile"] {
		a, c, d, e, f := b.mHostile()
		b.res.declare(a, c, d, e, f)
	}
	if w["stress"] && b.imaptest != "" {
		rate, cpu, per := b.mStress()
		b.res.declare(rate, cpu)
		b.res.declare(per...)
	}
	if w["idle"] {
		a, c, d, e, f := b.mIdleWake()
		b.res.declare(a, c, d, e, f)
	}
}

func (b *bench) smtp(ctx context.Context) {
	dm := b.mDisk()
	for _, conns := range []int{1, 20} {
		user := userSMTP1
		if conns > 1 {
			user = userSMTPN
		}
		acc, vis, cpu := b.mSMTP(conns)
		failed := map[string]bool{}
		for run := range b.o.runs {
			for _, s := range b.srvs {
				if failed[s.Name()] {
					continue
				}
				tag := fmt.Sprintf("smtp%d-run%d", conns, run)
				var probe *pgProbe
				if pg, ok := s.(*pgServer); ok && run == 0 {
					probe = b.pgProbe(ctx, pg)
				}
				r, err := runSMTP(ctx, s, tag, user, b.sz.SMTPMsgs, b.sz.SMTPSize, conns)
				if err == nil && probe != nil {
					b.pgNote(ctx, probe, fmt.Sprintf("SMTP in, %s msgs, %d conn, first run", kb(b.sz.SMTPSize), conns), "delivery", b.sz.SMTPMsgs)
				}
				if err != nil {
					failed[s.Name()] = true
					b.fail(s, fmt.Sprintf("SMTP in (%d conn)", conns), err)
					continue
				}
				b.log.Info("smtp", "system", s.Name(), "conns", conns, "run", run, "accepted/s", fmt.Sprintf("%.1f", r.accepted), "visible/s", fmt.Sprintf("%.1f", r.visible), "disk B/msg", fmt.Sprintf("%.0f", r.diskPerMsg))
				b.res.add(acc, s.Name(), r.accepted)
				b.res.add(vis, s.Name(), r.visible)
				b.res.add(dm, s.Name(), r.diskPerMsg)
				b.res.add(cpu, s.Name(), r.cpuPerMsg)
			}
		}
	}
	b.note(fmt.Sprintf("SMTP in: %s messages per run and connection count, one recipient each, on the plain MTA port; each connection sends its share sequentially; the clock stops when IMAP STATUS INBOX shows all of them (polled every 10 ms). Disk: growth of du (allocated blocks) of the whole mail store over a run, divided by its messages.", n(b.sz.SMTPMsgs)))
}

func (b *bench) imap(ctx context.Context) {
	sz := b.sz
	bigGen := func(i int) []byte { return makeMessage("big", i, sz.BigSize, userIMAP) }
	fetchGen := func(i int) []byte { return makeMessage("fetch", i, sz.FetchSize, userIMAP) }
	searchGen := func(i int) []byte { return makeMessage("search", i, sz.SearchSize, userIMAP) }
	var fetchBytes int64
	for i := range sz.FetchMsgs {
		fetchBytes += int64(len(fetchGen(i)))
	}
	wantHits := (sz.SearchMsgs + needleEvery - 1) / needleEvery
	// Filling is not timed, so the systems fill their mailboxes at the
	// same time.
	failed := make([]bool, len(b.srvs))
	parallel(ctx, len(b.srvs), len(b.srvs), func(ctx context.Context, i int) error {
		s := b.srvs[i]
		if l, ok := s.(loader); ok && b.populateMode(s) == "import" {
			// One import of the whole account.
			t0 := time.Now()
			if err := l.Load(ctx, userIMAP, []fill{{"Big", sz.BigMsgs, bigGen}, {"Fetch", sz.FetchMsgs, fetchGen}, {"Search", sz.SearchMsgs, searchGen}}); err != nil {
				failed[i] = true
				b.fail(s, "IMAP populate", err)
				return nil
			}
			b.log.Info("populated", "system", s.Name(), "messages", sz.BigMsgs+sz.FetchMsgs+sz.SearchMsgs, "mode", "import", "dur", time.Since(t0).Round(time.Millisecond))
			b.note(fmt.Sprintf("%s: filling Big, Fetch and Search with %s messages (one import of the account, concurrently with the other systems) took %s.", s.Name(), n(sz.BigMsgs+sz.FetchMsgs+sz.SearchMsgs), time.Since(t0).Round(time.Second)))
			return nil
		}
		for _, p := range []struct {
			mailbox string
			n       int
			gen     func(int) []byte
			mode    string
		}{
			{"Big", sz.BigMsgs, bigGen, b.populateMode(s)},
			{"Fetch", sz.FetchMsgs, fetchGen, b.populateMode(s)},
			{"Search", sz.SearchMsgs, searchGen, b.populateMode(s)},
		} {
			t0 := time.Now()
			if err := populate(ctx, s, userIMAP, p.mailbox, p.n, p.gen, p.mode); err != nil {
				failed[i] = true
				b.fail(s, "IMAP populate "+p.mailbox, err)
				return nil
			}
			b.log.Info("populated", "system", s.Name(), "mailbox", p.mailbox, "messages", p.n, "mode", p.mode, "dur", time.Since(t0).Round(time.Millisecond))
			b.note(fmt.Sprintf("%s: filling %s with %s messages (%s, concurrently with the other system) took %s.", s.Name(), p.mailbox, n(p.n), p.mode, time.Since(t0).Round(time.Second)))
		}
		return nil
	})
	sel, ff, ffc, fb, fbc, st, stc := b.mIMAP()
	qr := b.mQResync()
	// One untimed pass first, so every timed run sees warm caches, as a
	// mailbox in daily use does.
	for i, s := range b.srvs {
		if !failed[i] {
			imapSelectFetchFlags(s, "Big", sz.BigMsgs)
			imapFetchBodies(s, "Fetch", sz.FetchMsgs, fetchBytes)
			imapSearchText(s, "Search", wantHits)
		}
	}
	// PostgreSQL's costs of one SELECT + UID FETCH FLAGS session, outside
	// the timed runs (the probe waits for PostgreSQL's statistics).
	for i, s := range b.srvs {
		if pg, ok := s.(*pgServer); ok && !failed[i] {
			steps := []pgStep{
				{fmt.Sprintf("FETCH 1:* BODY.PEEK[] of %s × %s (EXAMINE included)", n(sz.FetchMsgs), kb(sz.FetchSize)), func() error {
					_, err := imapFetchBodies(s, "Fetch", sz.FetchMsgs, fetchBytes)
					return err
				}},
				{fmt.Sprintf("SEARCH TEXT over %s msgs (login and EXAMINE included)", n(sz.SearchMsgs)), func() error {
					_, err := imapSearchText(s, "Search", wantHits)
					return err
				}},
			}
			if line, err := pg.imapStatements(ctx, "Big", sz.BigMsgs, steps...); err != nil {
				b.log.Warn("PostgreSQL statements per IMAP command unreadable", "err", err)
			} else {
				b.note(line)
			}
			if probe := b.pgProbe(ctx, pg); probe != nil {
				if _, _, err := imapSelectFetchFlags(s, "Big", sz.BigMsgs); err == nil {
					b.pgNote(ctx, probe, fmt.Sprintf("IMAP login, SELECT and UID FETCH 1:* (FLAGS) of %s msgs", n(sz.BigMsgs)), "session", 1)
				}
			}
		}
	}
	for run := range b.o.runs {
		for i, s := range b.srvs {
			if failed[i] {
				continue
			}
			var ds, df, d, d2 time.Duration
			// Each session's CPU: from before its login to after its
			// connection has closed and the worker (if any) was reaped.
			session := func(m metric, f func() error) {
				c0 := systemCPU(s)
				if f() == nil {
					time.Sleep(cpuSettle)
					b.res.add(m, s.Name(), ms(systemCPU(s)-c0))
				}
			}
			session(ffc, func() (err error) {
				ds, df, err = imapSelectFetchFlags(s, "Big", sz.BigMsgs)
				if err != nil {
					b.fail(s, "IMAP SELECT/FETCH FLAGS", err)
					return err
				}
				b.res.add(ff, s.Name(), ms(df))
				return nil
			})
			// SELECT takes a fraction of a millisecond: one sample is
			// mostly the wake-up of an idle server, so the run's figure is
			// the median of selectSamples, each on a fresh connection.
			sels := []time.Duration{ds}
			for len(sels) < selectSamples && ds > 0 {
				d, err := imapSelect(s, "Big", sz.BigMsgs)
				if err != nil {
					b.fail(s, "IMAP SELECT", err)
					break
				}
				sels = append(sels, d)
			}
			if len(sels) == selectSamples {
				slices.Sort(sels)
				ds = sels[selectSamples/2]
				b.res.add(sel, s.Name(), ms(ds))
			}
			session(fbc, func() (err error) {
				d, err = imapFetchBodies(s, "Fetch", sz.FetchMsgs, fetchBytes)
				if err != nil {
					b.fail(s, "IMAP FETCH bodies", err)
					return err
				}
				b.res.add(fb, s.Name(), ms(d))
				return nil
			})
			session(stc, func() (err error) {
				d2, err = imapSearchText(s, "Search", wantHits)
				if err != nil {
					b.fail(s, "IMAP SEARCH TEXT", err)
					return err
				}
				b.res.add(st, s.Name(), ms(d2))
				return nil
			})
			b.log.Info("imap", "system", s.Name(), "run", run, "select", ds, "fetchflags", df, "fetchbodies", d, "search", d2)
		}
	}
	// QRESYNC changes flags in Big: only after every run above, so the
	// SELECT and UID FETCH rows always measure a mailbox nobody changed.
	for run := range b.o.runs {
		for i, s := range b.srvs {
			if failed[i] {
				continue
			}
			dq, err := imapQResync(s, "Big", sz.BigMsgs)
			if err != nil {
				b.fail(s, "IMAP SELECT (QRESYNC)", err)
				continue
			}
			b.res.add(qr, s.Name(), ms(dq))
			b.log.Info("imap", "system", s.Name(), "run", run, "qresync", dq)
		}
	}
	b.note(fmt.Sprintf("IMAP: after one untimed pass, each figure is one command on a fresh connection (SELECT, the median of %d such per run; UID FETCH 1:* (FLAGS) read to the end; these two through a minimal client that reads lines and counts the EXISTS and FETCH responses, since go-imap's client spent more CPU parsing 100,000 FETCH responses (260-380 ms) than either server spent writing them and its run-to-run spread was the row's; FETCH 1:* BODY.PEEK[] on an EXAMINEd mailbox, every byte read and counted; SEARCH TEXT of a word in 1 message in %d). Messages: %s, %s and %s, plain text.", selectSamples, needleEvery, kb(sz.BigSize), kb(sz.FetchSize), kb(sz.SearchSize)))
}

// populateMode resolves -populate for one system.
func (b *bench) populateMode(s server) string {
	if b.o.populate == "auto" || (b.o.populate == "maildir" && s.FastPopulate() == "import") {
		return s.FastPopulate()
	}
	return b.o.populate
}

func (b *bench) pop3(ctx context.Context) {
	sz := b.sz
	var total int64
	for i := range sz.POPMsgs {
		total += int64(len(makeMessage("pop", i, sz.POPSize, userPOP)))
	}
	m, mc := b.mPOP()
	failed := map[string]bool{}
	for run := range b.o.runs {
		for _, s := range b.srvs {
			if failed[s.Name()] {
				continue
			}
			gen := func(i int) []byte { return makeMessage("pop", i, sz.POPSize, userPOP) }
			if err := populate(ctx, s, userPOP, "INBOX", sz.POPMsgs, gen, b.populateMode(s)); err != nil {
				failed[s.Name()] = true
				b.fail(s, "POP3 populate", err)
				continue
			}
			d, cpu, err := pop3RetrDele(s, sz.POPMsgs, total)
			if err != nil {
				failed[s.Name()] = true
				b.fail(s, "POP3 RETR+DELE", err)
				continue
			}
			b.log.Info("pop3", "system", s.Name(), "run", run, "dur", d)
			b.res.add(m, s.Name(), ms(d))
			b.res.add(mc, s.Name(), ms(cpu))
		}
	}
	b.note("POP3: one session from connect to QUIT's +OK (deletions applied), USER/PASS, STAT, then RETR n and DELE n for every message, every byte read; the maildrop is refilled (not timed, as for IMAP) before each run.")
}

func (b *bench) mem(ctx context.Context) {
	k := b.sz.IdleConns
	rss, pss, per, perP := b.mMem()
	failed := map[string]bool{}
	first := map[string]*memResult{}
	for run := range b.o.runs {
		for _, s := range b.srvs {
			if failed[s.Name()] {
				continue
			}
			r, err := idleIMAP(ctx, s, k, b.o.settle, first[s.Name()])
			if err != nil {
				failed[s.Name()] = true
				b.fail(s, "idle IMAP connections", err)
				continue
			}
			b.log.Info("mem", "system", s.Name(), "run", run, "rssMiB", int(r.rss)>>20, "pssMiB", int(r.pss)>>20, "perConnKiB", int(r.perConnRSS)>>10, "processes", r.processCount)
			if first[s.Name()] == nil {
				first[s.Name()] = &r
			}
			b.res.add(rss, s.Name(), r.rss)
			b.res.add(pss, s.Name(), r.pss)
			b.res.add(per, s.Name(), r.perConnRSS)
			b.res.add(perP, s.Name(), r.perConnPSS)
			if run == 0 {
				b.note(fmt.Sprintf("%s: %d process(es) with the idle connections open.", s.Name(), r.processCount))
			}
			// Let the servers release the connections before the next run.
			time.Sleep(b.o.settle)
		}
	}
	b.note(fmt.Sprintf("Memory: %s connections logged in as one user with INBOX selected, opened 10 at a time; VmRSS and Pss (smaps_rollup) summed over every process of the system %s after the last login (Postfix's idle daemons included). RSS double-counts pages shared between Dovecot's processes; PSS splits them. Per connection: growth over the system's memory before the first run's connections.", n(k), b.o.settle))
}

func (b *bench) relayOut(ctx context.Context) {
	if b.relay == nil {
		return
	}
	for _, dests := range []int{1, relayDomains} {
		m, mc := b.mRelay(dests)
		failed := map[string]bool{}
		for run := range b.o.runs {
			for _, s := range b.srvs {
				if failed[s.Name()] {
					continue
				}
				cpu0 := systemCPU(s)
				r, err := b.relayRun(ctx, s, fmt.Sprintf("relay%d-%d", dests, run), dests)
				if err != nil {
					failed[s.Name()] = true
					b.fail(s, fmt.Sprintf("relay to %d domains", dests), err)
					continue
				}
				b.log.Info("relay", "system", s.Name(), "dests", dests, "run", run, "msg/s", fmt.Sprintf("%.1f", r))
				time.Sleep(cpuSettle)
				b.res.add(m, s.Name(), r)
				b.res.add(mc, s.Name(), ms(systemCPU(s)-cpu0)/float64(b.sz.RelayMsgs))
			}
		}
	}
	b.note("Relay: messages submitted over 4 connections, on both systems through the submission port with STARTTLS and AUTH PLAIN (Postfix: a submission smtpd with smtpd_tls_security_level=encrypt and Dovecot SASL, permit_sasl_authenticated only), one recipient each, spread round-robin over the destination domains; the clock stops when the loopback receiver has accepted every one. Posthouse finds the receiver by MX through a loopback DNS server ([dns] resolver, [queue] remote_port); Postfix, which resolves through the system resolver, is routed there by transport_maps ([127.0.0.1]:port, no MX lookup).")
}

// relayRun submits RelayMsgs messages to foreign domains and waits until
// the sink has them all.
func (b *bench) relayRun(ctx context.Context, s server, tag string, dests int) (float64, error) {
	total := b.sz.RelayMsgs
	msgs := make([][]byte, total)
	rcpts := make([]string, total)
	for i := range msgs {
		rcpts[i] = fmt.Sprintf("%s-%d@%s", tag, i, b.relay.domains[i%dests])
		// Submission lets the user send only as an address of theirs.
		msgs[i] = bytes.Replace(makeMessage(tag, i, b.sz.RelaySize, rcpts[i]), []byte("<sender@bench.example>"), []byte("<"+userSend+">"), 1)
	}
	base := b.relay.received.Load()
	const conns = 4
	start := time.Now()
	err := parallel(ctx, conns, conns, func(ctx context.Context, w int) error {
		var c *smtp.Client
		var err error
		if addr := s.Addr("submission"); addr != "" {
			c, err = smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return err
			}
			if err := c.Auth(sasl.NewPlainClient("", userSend, password)); err != nil {
				c.Close()
				return err
			}
		} else {
			if c, err = smtp.Dial(s.Addr("smtp")); err != nil {
				return err
			}
		}
		defer c.Close()
		for i := w; i < total; i += conns {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := c.SendMail(userSend, []string{rcpts[i]}, bytes.NewReader(msgs[i])); err != nil {
				return fmt.Errorf("submit %d: %w", i, err)
			}
		}
		return c.Quit()
	})
	if err != nil {
		return 0, err
	}
	for b.relay.received.Load() < base+int64(total) {
		if time.Since(start) > 10*time.Minute {
			return 0, fmt.Errorf("receiver got %d of %d messages after 10 minutes", b.relay.received.Load()-base, total)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// pgProbe starts measuring PostgreSQL's costs; nil (and a warning) when
// the counters cannot be read.
func (b *bench) pgProbe(ctx context.Context, pg *pgServer) *pgProbe {
	p, err := pg.probe(ctx)
	if err != nil {
		b.log.Warn("PostgreSQL counters unreadable", "err", err)
		return nil
	}
	return p
}

// pgNote adds PostgreSQL's costs since probe to the notes, per unit (ops
// of them in the span).
func (b *bench) pgNote(ctx context.Context, probe *pgProbe, what, unit string, ops int) {
	f, err := probe.finish(ctx, ops)
	if err != nil {
		b.log.Warn("PostgreSQL counters unreadable", "err", err)
		return
	}
	b.log.Info("postgres", "what", what, "pgCPUms/"+unit, fmt.Sprintf("%.2f", f.cpuMs), "statements/"+unit, fmt.Sprintf("%.2f", f.statements), "walKB/"+unit, fmt.Sprintf("%.1f", f.walBytes/1024), "walSyncs/"+unit, fmt.Sprintf("%.2f", f.walSyncs))
	b.note(f.note(what, unit))
}

// writeNotes prints the methodology under the table.
func (b *bench) writeNotes(w io.Writer) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Notes:")
	fmt.Fprintln(w)
	for _, s := range methodology {
		fmt.Fprintf(w, "- %s\n", s)
	}
	for _, s := range b.notes {
		fmt.Fprintf(w, "- %s\n", s)
	}
	if len(b.errs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Failures (their cells are n/a):")
		fmt.Fprintln(w)
		for _, e := range b.errs {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}

// methodology describes how each system is configured, so the comparison
// can be judged.
var methodology = []string{
	"One machine, one load generator (Go: go-smtp client, go-imap v2 imapclient, a small POP3 client), every connection over 127.0.0.1 without TLS except relay submission (STARTTLS on both systems); the systems run side by side and the runs alternate between them.",
	"Posthouse: the binary built from this tree, default settings apart from loopback listeners, connection limits raised (20,000 in all, 5,000 per address) and no per-address connection rate limit (the load generator opens every connection from 127.0.0.1, the IDLE rows from 127.0.1.x); before the 250 a message of up to 64 KiB is committed with its bytes in the SQLite index (one WAL fsync; its file is synced with others by syncfs within 100 ms), a larger one has its file and directory fsynced and its index row committed; a relayed message of up to 64 KiB is committed in its queue.sqlite row (one WAL fsync, no spool file), a larger one has its spool file and directory fsynced, then its row committed.",
	"Postfix + Dovecot: Debian packages, private instances (postfix -c, dovecot -c) in a temporary directory. Postfix smtpd → cleanup (queue file fsynced before 250, the default) → qmgr → LMTP over loopback TCP → Dovecot LMTP → Maildir (mail_fsync = optimized, the default: the message file is fsynced before LMTP's 250). Recipients checked at RCPT (virtual_mailbox_maps). Dovecot: passwd-file users with SHA512-CRYPT hashes, ssl = no, Maildir with its default index files, no FTS plugin; service imap client_limit and process_limit as in the header (client_limit 1 is Debian's default, one imap process per connection), mail_max_userip_connections raised for the idle test.",
}
