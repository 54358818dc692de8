package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// The idle workload holds many IMAP connections in IDLE (the way a mail
// client waits for new mail) and measures each system's memory and CPU
// while they wait, then while one delivery wakes exactly one of them: the
// many are logged in as userIdle, the one as userWake.

const userWake = "wake@" + domain

// idleSources are the loopback source addresses the connections are spread
// over, so that many connections (and the TIME_WAIT of earlier runs) never
// run out of ephemeral ports on one address pair.
const idleSources = 16

// dialIdle connects from src, logs in as user, selects INBOX and enters
// IDLE.
func dialIdle(addr string, src net.IP, user string) (*rawIMAP, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	// A small buffer: no library state per connection, so the load
	// generator stays small next to 10,000 of them.
	c := newRawIMAP(conn, 512)
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := c.line(); err != nil {
		conn.Close()
		return nil, err
	}
	for _, cmd := range []string{"LOGIN " + user + " " + password, "SELECT INBOX"} {
		if _, err := c.do(cmd); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if _, err := fmt.Fprintf(conn, "c IDLE\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	for {
		l, err := c.line()
		if err != nil {
			conn.Close()
			return nil, err
		}
		if strings.HasPrefix(l, "+") {
			break
		}
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

// waitExists reads until an EXISTS arrives.
func (c *rawIMAP) waitExists(timeout time.Duration) error {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if strings.HasSuffix(l, " EXISTS") {
			return nil
		}
	}
}

// idleWakeResult is one run of the workload.
type idleWakeResult struct {
	rss, pss    float64 // bytes, all processes, while idle
	idleCPU     float64 // ms of CPU over idleWindow
	wake        float64 // ms from the SMTP transaction's start to the EXISTS
	wakeCPU     float64 // ms of CPU from before the delivery to after the EXISTS
	processes   int
	establishMs float64
}

func (b *bench) mIdleWake() (rss, pss, idleCPU, wake, wakeCPU metric) {
	k := n(b.sz.WakeConns)
	pre := fmt.Sprintf("%s IMAP conns in IDLE", k)
	return mib(pre + ": RSS, all processes"),
		mib(pre + ": PSS, all processes"),
		cpuMillis(fmt.Sprintf("%s: CPU of all processes over %d s of idling", pre, int(b.o.idleWindow.Seconds()))),
		millis(pre + ", 1 delivery wakes 1 of them: SMTP start to EXISTS"),
		cpuMillis(pre + ", 1 delivery wakes 1 of them: CPU of all processes")
}

func (b *bench) idleWake(ctx context.Context) {
	rss, pss, idleCPU, wake, wakeCPU := b.mIdleWake()
	failed := map[string]bool{}
	for run := range b.o.runs {
		for _, s := range b.srvs {
			if failed[s.Name()] {
				continue
			}
			var restore func()
			if t, ok := s.(imapTuner); ok {
				// Dovecot's setting for many connections: up to 1,000
				// clients per imap process (its default, one process
				// per connection, would start 10,000 processes).
				c0, p0 := t.imapLimits()
				if err := t.setIMAPLimits(idleDovecotClientLimit, max(p0, b.sz.WakeConns/idleDovecotClientLimit+10)); err != nil {
					failed[s.Name()] = true
					b.fail(s, "idle connections", err)
					continue
				}
				restore = func() {
					if err := t.setIMAPLimits(c0, p0); err != nil {
						b.fail(s, "restore Dovecot's imap limits", err)
					}
				}
			}
			r, err := runIdleWake(ctx, s, b.sz.WakeConns, run, b.o.settle, b.o.idleWindow)
			if restore != nil {
				restore()
			}
			if err != nil {
				failed[s.Name()] = true
				b.fail(s, "idle connections", err)
				continue
			}
			b.log.Info("idle", "system", s.Name(), "run", run, "rssMiB", int(r.rss)>>20, "pssMiB", int(r.pss)>>20,
				"idleCPUms", r.idleCPU, "wakeMs", fmt.Sprintf("%.1f", r.wake), "wakeCPUms", r.wakeCPU, "processes", r.processes,
				"establishS", fmt.Sprintf("%.1f", r.establishMs/1000))
			b.res.add(rss, s.Name(), r.rss)
			b.res.add(pss, s.Name(), r.pss)
			b.res.add(idleCPU, s.Name(), r.idleCPU)
			b.res.add(wake, s.Name(), r.wake)
			b.res.add(wakeCPU, s.Name(), r.wakeCPU)
			if run == 0 {
				b.note(fmt.Sprintf("%s: %d process(es) with the %s IDLE connections open.", s.Name(), r.processes, n(b.sz.WakeConns)))
			}
			time.Sleep(b.o.settle)
		}
	}
	b.note(fmt.Sprintf("IDLE connections: %s connections logged in as one user, INBOX selected, in IDLE (RFC 2177), opened 20 at a time from %d loopback source addresses (127.0.1.1-127.0.1.%d) with RLIMIT_NOFILE raised, plus one more as a second user; memory as in the memory rows, %s after the last IDLE began; CPU over the next %s; then one 10 KB message to the second user over SMTP, timed from the start of the SMTP session to the EXISTS on that user's IDLE connection, CPU from before it to after. Dovecot runs these rows with service imap client_limit=%d and service_count=0 (its setting for many connections: with one process per connection, 10,000 processes would also exceed the default 128 inotify instances per user, and IDLE would fall back to polling every 30 s) instead of the header's.",
		n(b.sz.WakeConns), idleSources, idleSources, b.o.settle, b.o.idleWindow, idleDovecotClientLimit))
}

// sendOne sends msg to rcpt in one plain SMTP session, as runSMTP does.
func sendOne(addr, rcpt string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.bench.test"); err != nil {
		return err
	}
	if err := c.SendMail("sender@bench.example", []string{rcpt}, bytes.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// idleDovecotClientLimit is Dovecot's service imap client_limit for the
// idle rows.
const idleDovecotClientLimit = 1000

func runIdleWake(ctx context.Context, s server, conns, run int, settle, idleWindow time.Duration) (idleWakeResult, error) {
	var res idleWakeResult
	addr := s.Addr("imap")
	idle := make([]*rawIMAP, conns)
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range idle {
			if c != nil {
				c.conn.Close()
			}
		}
	}()
	t0 := time.Now()
	err := parallel(ctx, conns, 20, func(ctx context.Context, i int) error {
		// 127.0.1.x: a source block of its own, away from 127.0.0.1.
		src := net.IPv4(127, 0, 1, byte(1+i%idleSources))
		c, err := dialIdle(addr, src, userIdle)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		mu.Lock()
		idle[i] = c
		mu.Unlock()
		return nil
	})
	if err != nil {
		return res, err
	}
	waker, err := dialIdle(addr, net.IPv4(127, 0, 1, 1), userWake)
	if err != nil {
		return res, fmt.Errorf("wake connection: %w", err)
	}
	defer waker.conn.Close()
	res.establishMs = ms(time.Since(t0))
	time.Sleep(settle)
	pids := s.PIDs()
	rss, pss := memUsage(pids)
	res.rss, res.pss, res.processes = float64(rss), float64(pss), len(pids)
	c0 := systemCPU(s)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(idleWindow):
	}
	res.idleCPU = ms(systemCPU(s) - c0)

	msg := makeMessage(fmt.Sprintf("wake%d", run), run, 10<<10, userWake)
	c0 = systemCPU(s)
	start := time.Now()
	if err := sendOne(s.Addr("smtp"), userWake, msg); err != nil {
		return res, fmt.Errorf("smtp to %s: %w", userWake, err)
	}
	if err := waker.waitExists(time.Minute); err != nil {
		return res, fmt.Errorf("waiting for EXISTS: %w", err)
	}
	res.wake = ms(time.Since(start))
	time.Sleep(cpuSettle)
	res.wakeCPU = ms(systemCPU(s) - c0)
	return res, nil
}
