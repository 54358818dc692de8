package queue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthouse/posthouse/smtpclient"
)

// peerMode is how a hostile MX behaves towards new connections.
type peerMode int32

const (
	modeSilent    peerMode = iota // accepts TCP, never greets
	modeStallData                 // greets, takes MAIL, RCPT and the data, never answers the end of data
	modeDrip                      // answers one byte at a time, slower than any reply's deadline allows
	modeHealthy                   // a well-behaved server (a fakeRemote)
)

// hostileMX is a mail server on its own loopback address that misbehaves
// as its mode says, and counts the connections it gets.
type hostileMX struct {
	t        *testing.T
	ln       net.Listener
	mode     atomic.Int32
	open     atomic.Int64 // connections open now
	maxOpen  atomic.Int64 // most open at once
	accepted atomic.Int64
	healthy  *fakeRemote // takes connections in modeHealthy
	handoff  chan net.Conn
	mu       sync.Mutex
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

// newHostileMX listens on ip at port (the queue's RemotePort).
func newHostileMX(t *testing.T, ip string, port int, mode peerMode) *hostileMX {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("hostile MX on %s: %v", ip, err)
	}
	h := &hostileMX{t: t, ln: ln, handoff: make(chan net.Conn), conns: map[net.Conn]bool{}}
	h.mode.Store(int32(mode))
	h.healthy = newFakeRemoteOn(t, &chanListener{h: h, done: make(chan struct{})})
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *hostileMX) setMode(m peerMode) { h.mode.Store(int32(m)) }

func (h *hostileMX) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.accepted.Add(1)
		n := h.open.Add(1)
		for m := h.maxOpen.Load(); n > m && !h.maxOpen.CompareAndSwap(m, n); m = h.maxOpen.Load() {
		}
		cc := &countedConn{Conn: c, h: h}
		h.mu.Lock()
		h.conns[cc] = true
		h.mu.Unlock()
		mode := peerMode(h.mode.Load())
		if mode == modeHealthy {
			h.handoff <- cc
			continue
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer cc.Close()
			h.misbehave(cc, mode)
		}()
	}
}

// misbehave plays one hostile conversation until the client hangs up.
func (h *hostileMX) misbehave(c net.Conn, mode peerMode) {
	defer io.Copy(io.Discard, c)
	br := bufio.NewReader(c)
	switch mode {
	case modeSilent:
	case modeDrip:
		// The client hanging up ends the drip at once.
		go func() {
			io.Copy(io.Discard, c)
			c.Close()
		}()
		// 50 ms a byte never trips an idle timeout; the greeting's
		// deadline is for the whole reply.
		for _, b := range []byte("220 mx.drip.test ESMTP, one byte at a time, as slowly as we like\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	case modeStallData:
		io.WriteString(c, "220 mx.stall.test ESMTP\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
			case "EHLO":
				io.WriteString(c, "250-mx.stall.test\r\n250 8BITMIME\r\n")
			case "DATA":
				io.WriteString(c, "354 go ahead\r\n")
				for line != ".\r\n" {
					if line, err = br.ReadString('\n'); err != nil {
						return
					}
				}
				return // the end of data is never answered
			case "QUIT":
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	}
}

// countedConn counts itself out of its peer once closed.
type countedConn struct {
	net.Conn
	h    *hostileMX
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.h.open.Add(-1)
		c.h.mu.Lock()
		delete(c.h.conns, c)
		c.h.mu.Unlock()
	})
	return c.Conn.Close()
}

// chanListener hands the hostile MX's connections in modeHealthy to its
// fakeRemote.
type chanListener struct {
	h    *hostileMX
	done chan struct{}
	once sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.h.handoff:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.h.ln.Addr() }

// dialCounter wraps Options.Dial and counts the queue's open connections
// per address, and the most at once: the exact figure for the bounds
// (the peers see a close a little later).
type dialCounter struct {
	mu    sync.Mutex
	open  map[string]int
	max   map[string]int
	total map[string]int
}

func countDials(o *Options) *dialCounter {
	d := &dialCounter{open: map[string]int{}, max: map[string]int{}, total: map[string]int{}}
	inner := o.Dial
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := inner(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		ip, _, _ := net.SplitHostPort(addr)
		d.mu.Lock()
		d.open[ip]++
		d.total[ip]++
		d.max[ip] = max(d.max[ip], d.open[ip])
		d.mu.Unlock()
		return &dialedConn{Conn: c, release: func() {
			d.mu.Lock()
			d.open[ip]--
			d.mu.Unlock()
		}}, nil
	}
	return d
}

func (d *dialCounter) maxAt(ip string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.max[ip]
}

func (d *dialCounter) totalAt(ip string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total[ip]
}

type dialedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *dialedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// testTimeouts are short enough for a test to wait for, long enough for a
// healthy loopback server under the race detector.
var testTimeouts = smtpclient.Timeouts{
	Greeting: 2 * time.Second, Command: 2 * time.Second, Mail: 2 * time.Second, Rcpt: 2 * time.Second,
	DataInit: 2 * time.Second, DataBlock: 2 * time.Second, DataDone: 2 * time.Second, Connection: 20 * time.Second,
}

// deferredReplies returns the recorded reply of every pending recipient
// of ids, "" for one not attempted yet.
func (e *env) pendingReplies(ids map[string]string) map[string]string {
	out := map[string]string{}
	for id, rcpt := range ids {
		st, reply := e.rcptState(id, rcpt)
		if st == StatePending {
			out[rcpt] = reply
		}
	}
	return out
}

// settled says whether no attempt runs and none of ids' recipients is due.
func (e *env) settled(ids map[string]string) bool {
	e.q.mu.Lock()
	running := len(e.q.inflight)
	e.q.mu.Unlock()
	if running > 0 {
		return false
	}
	now := e.clock.Now()
	for id := range ids {
		m, err := e.q.Get(context.Background(), id)
		if err != nil {
			return false
		}
		for _, r := range m.Recipients {
			if r.State == StatePending && !r.NextAttempt.After(now) {
				return false
			}
		}
	}
	return true
}

// driveUntil moves the clock a minute at a time (the retries of deferred
// and busy attempts) until cond holds; 30 s bound.
func (e *env) driveUntil(what string, cond func() bool) {
	e.t.Helper()
	var moved time.Duration
	e.driveUntilStep(what, time.Minute, &moved, cond)
}

// driveUntilStep moves the clock by step (adding to *moved) until cond
// holds; 30 s bound.
func (e *env) driveUntilStep(what string, step time.Duration, moved *time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		// Long enough for an idle connection (connIdleTime, real time)
		// to give its host slot back before the clock moves again.
		time.Sleep(300 * time.Millisecond)
		if cond() {
			return
		}
		e.advance(step)
		*moved += step
	}
}

// TestHostilePeers: three mail servers that stall (no greeting, no answer
// to the end of data, a greeting dripped a byte at a time) hold at most
// MaxPerDomain connections each while mail to a healthy server flows; their
// messages are deferred with the reason, and delivered exactly once when
// the servers behave; no connection is left open.
func TestHostilePeers(t *testing.T) {
	remote := newFakeRemote(t)
	hostile := map[string]struct {
		ip     string
		mode   peerMode
		reason string
	}{
		"c.test": {"127.0.0.2", modeSilent, "451 4.4.2 timeout waiting for greeting from mx.c.test [127.0.0.2]"},
		"d.test": {"127.0.0.3", modeStallData, "451 4.4.2 timeout waiting for reply to end of data from mx.d.test [127.0.0.3]"},
		"e.test": {"127.0.0.4", modeDrip, "451 4.4.2 timeout waiting for greeting from mx.e.test [127.0.0.4]"},
	}
	peers := map[string]*hostileMX{}
	for d, h := range hostile {
		peers[d] = newHostileMX(t, h.ip, remote.port, h.mode)
	}
	var dials *dialCounter
	e := newEnv(t, remote, func(o *Options) {
		o.Timeouts = testTimeouts
		o.MaxConcurrent, o.MaxPerDomain, o.MaxPerHost = 8, 2, 4
		dials = countDials(o)
	})
	for d, h := range hostile {
		e.dns.Add(fmt.Sprintf("%s. MX 10 mx.%s.", d, d), fmt.Sprintf("mx.%s. A %s", d, h.ip))
	}
	// Goroutines before any delivery: the scheduler, the database pools,
	// the servers' accept loops.
	baseGoroutines := runtime.NumGoroutine()

	ids := map[string]string{} // queue id → recipient, hostile domains
	for i := range 4 {
		for d := range hostile {
			rcpt := fmt.Sprintf("u%d@%s", i, d)
			ids[e.enqueue("alice@a.test", rcpt)] = rcpt
		}
	}
	waitFor(t, "every hostile peer to hold a connection", func() bool {
		for _, p := range peers {
			if p.open.Load() == 0 {
				return false
			}
		}
		return true
	})
	// Healthy mail while the stalls last: 6 of the 8 slots are stuck.
	start := time.Now()
	for i := range 20 {
		e.enqueue("alice@a.test", fmt.Sprintf("h%d@b.test", i))
	}
	waitFor(t, "the healthy messages", func() bool { return len(remote.messages()) == 20 })
	stalled := int64(0)
	for _, p := range peers {
		stalled += p.open.Load()
	}
	t.Logf("20 healthy messages delivered in %s with %d stalled connections open", time.Since(start).Round(time.Millisecond), stalled)

	waitFor(t, "every hostile message deferred with a reason", func() bool {
		pend := e.pendingReplies(ids)
		for _, r := range pend {
			if r == "" {
				return false
			}
		}
		return len(pend) == len(ids)
	})
	for rcpt, reply := range e.pendingReplies(ids) {
		d := rcpt[strings.IndexByte(rcpt, '@')+1:]
		if !strings.HasPrefix(reply, hostile[d].reason) {
			t.Errorf("%s deferred with %q, want %q", rcpt, reply, hostile[d].reason)
		}
	}
	for d, h := range hostile {
		if n := dials.maxAt(h.ip); n > 2 {
			t.Errorf("%s: %d connections at once, MaxPerDomain is 2", d, n)
		}
	}

	for _, p := range peers {
		p.setMode(modeHealthy)
	}
	e.driveUntil("the deferred messages delivered", func() bool {
		msgs, _ := e.q.List(context.Background())
		return len(msgs) == 0
	})
	for id, rcpt := range ids {
		d := rcpt[strings.IndexByte(rcpt, '@')+1:]
		if n := peers[d].healthy.count(rcpt); n != 1 {
			t.Errorf("%s (%s) delivered %d times, want once", rcpt, id, n)
		}
	}
	for i := range 20 {
		if n := remote.count(fmt.Sprintf("h%d@b.test", i)); n != 1 {
			t.Errorf("h%d@b.test delivered %d times", i, n)
		}
	}
	waitFor(t, "every slot and host state released", func() bool {
		e.q.mu.Lock()
		defer e.q.mu.Unlock()
		return e.q.total == 0 && len(e.q.hosts) == 0 && len(e.q.perDom) == 0
	})
	// Every worker, connection and peer conversation has ended (a few
	// goroutines of the runtime and database pools come and go).
	waitFor(t, "the goroutines of the deliveries to end", func() bool { return runtime.NumGoroutine() <= baseGoroutines+5 })
	t.Logf("goroutines: %d before the deliveries, %d after", baseGoroutines, runtime.NumGoroutine())
	e.stop()
	waitFor(t, "no connection left open at the peers", func() bool {
		for _, p := range peers {
			if p.open.Load() != 0 {
				return false
			}
		}
		return true
	})
}

// TestSharedStalledMX: many domains with one MX that never greets hold
// at most MaxPerHost connections to it, then one while it stays silent;
// the attempts that found no free slot are deferred with the reason and not
// counted, so counted attempts equal connections made; mail to other
// servers flows.
func TestSharedStalledMX(t *testing.T) {
	remote := newFakeRemote(t)
	peer := newHostileMX(t, "127.0.0.5", remote.port, modeSilent)
	var dials *dialCounter
	e := newEnv(t, remote, func(o *Options) {
		o.Timeouts = testTimeouts
		o.MaxConcurrent, o.MaxPerDomain, o.MaxPerHost = 10, 5, 2
		dials = countDials(o)
	})
	e.dns.Add("mx.shared.test. A 127.0.0.5")
	ids := map[string]string{}
	for i := range 6 {
		d := fmt.Sprintf("f%d.test", i)
		e.dns.Add(fmt.Sprintf("%s. MX 10 mx.shared.test.", d))
		rcpt := "bob@" + d
		ids[e.enqueue("alice@a.test", rcpt)] = rcpt
	}
	waitFor(t, "a connection at the shared MX", func() bool { return peer.open.Load() > 0 })
	// Two: the healthy host has MaxPerHost slots too.
	for i := range 2 {
		e.enqueue("alice@a.test", fmt.Sprintf("h%d@b.test", i))
	}
	waitFor(t, "the healthy messages", func() bool { return len(remote.messages()) == 2 })
	waitFor(t, "every message to the shared MX deferred", func() bool {
		pend := e.pendingReplies(ids)
		for _, r := range pend {
			if r == "" {
				return false
			}
		}
		return len(pend) == len(ids) && peer.open.Load() == 0
	})
	// The attempts that found the host full waited for a slot until its
	// connections failed, and were put off hostBusyDelay: when they come
	// again one probes the host and the others wait for it.
	e.advance(hostBusyDelay + 10*time.Second)
	waitFor(t, "a probe and the others waiting for it", func() bool {
		waiting := 0
		for _, r := range e.pendingReplies(ids) {
			if strings.HasSuffix(r, busyNote) {
				waiting++
			}
		}
		// Busy replies of the first round count too: the attempts made
		// after the clock moved must be over (the probe's greeting
		// timed out), or one would end after the host turns healthy.
		return waiting > 0 && peer.open.Load() == 0 && peer.accepted.Load() > 2 && e.settled(ids)
	})
	if n := dials.maxAt("127.0.0.5"); n > 2 {
		t.Errorf("%d connections at once to the shared MX, MaxPerHost is 2", n)
	}
	attempts := 0
	for id, rcpt := range ids {
		m, err := e.q.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		r := m.Recipients[0]
		attempts += r.Attempts
		if !strings.HasPrefix(r.Reply, "451 4.4.") || !strings.Contains(r.Reply, "mx.shared.test [127.0.0.5]") {
			t.Errorf("%s deferred with %q; want the shared MX named", rcpt, r.Reply)
		}
	}
	if got := peer.accepted.Load(); int64(attempts) != got {
		t.Errorf("%d counted attempts for %d connections: an attempt that found no free slot was counted", attempts, got)
	}
	t.Logf("%d messages, %d connections to the silent MX", len(ids), peer.accepted.Load())
	peer.setMode(modeHealthy)
	// New mail to one of the domains probes the host, which answers: the
	// recipients waiting for it are due at once, not a minute later (those
	// that then find its MaxPerHost slots taken come 5 s later).
	waiting := map[string]bool{}
	for rcpt, r := range e.pendingReplies(ids) {
		if strings.HasSuffix(r, busyNote) {
			waiting[rcpt] = true
		}
	}
	ids[e.enqueue("alice@a.test", "carol@f0.test")] = "carol@f0.test"
	moved := time.Duration(0)
	e.driveUntilStep("the waiting recipients delivered once the host answered", 5*time.Second, &moved, func() bool {
		for rcpt := range waiting {
			if peer.healthy.count(rcpt) == 0 {
				return false
			}
		}
		return peer.healthy.count("carol@f0.test") == 1
	})
	if moved >= hostBusyDelay {
		t.Errorf("the waiting recipients were delivered after the clock moved %s: they waited for hostBusyDelay", moved)
	}
	t.Logf("%d recipients waiting for the host delivered when it answered (clock moved %s)", len(waiting), moved)
	e.driveUntil("the deferred messages delivered", func() bool {
		msgs, _ := e.q.List(context.Background())
		return len(msgs) == 0
	})
	for _, rcpt := range ids {
		if n := peer.healthy.count(rcpt); n != 1 {
			t.Errorf("%s delivered %d times", rcpt, n)
		}
	}
}

// TestManyDomainsOneHost: twenty domains whose MX is one healthy server
// share its MaxPerHost slots. An attempt that finds them taken waits for
// one (or for a connection idling for its own domain to take its
// message) instead of being
// put off: every message is delivered while the queue's clock stands
// still, and never more than MaxPerHost connections are open to it.
func TestManyDomainsOneHost(t *testing.T) {
	remote := newFakeRemote(t)
	var dials *dialCounter
	e := newEnv(t, remote, func(o *Options) {
		o.MaxConcurrent, o.MaxPerDomain, o.MaxPerHost = 20, 5, 2
		dials = countDials(o)
	})
	const domains, perDomain = 20, 3
	for i := range domains {
		e.dns.Add(fmt.Sprintf("d%d.test. MX 10 mx.b.test.", i))
	}
	ids := map[string]string{}
	for n := range perDomain {
		for i := range domains {
			rcpt := fmt.Sprintf("u%d@d%d.test", n, i)
			ids[e.enqueue("alice@a.test", rcpt)] = rcpt
		}
	}
	waitFor(t, "every message delivered without the clock moving", func() bool {
		return len(remote.messages()) == domains*perDomain
	})
	if n := dials.maxAt("127.0.0.1"); n > 2 {
		t.Errorf("%d connections at once to the shared server, MaxPerHost is 2", n)
	}
	for id, rcpt := range ids {
		m, err := e.q.Get(context.Background(), id)
		if err == nil && len(m.Recipients) > 0 && m.Recipients[0].Attempts > 1 {
			t.Errorf("%s took %d attempts (%s)", rcpt, m.Recipients[0].Attempts, m.Recipients[0].Reply)
		}
	}
}

// TestSharedServerConnection: attempts to domains whose mail server is one
// address hand their messages to the connection already open to it
// instead of waiting for it to close and opening their own.
func TestSharedServerConnection(t *testing.T) {
	remote := newFakeRemote(t)
	var dials *dialCounter
	e := newEnv(t, remote, func(o *Options) {
		o.MaxConcurrent, o.MaxPerDomain, o.MaxPerHost = 20, 5, 1
		dials = countDials(o)
	})
	const domains, perDomain = 10, 2
	for i := range domains {
		e.dns.Add(fmt.Sprintf("s%d.test. MX 10 mx%d.b.test.", i, i), fmt.Sprintf("mx%d.b.test. A 127.0.0.1", i))
	}
	for n := range perDomain {
		for i := range domains {
			e.enqueue("alice@a.test", fmt.Sprintf("u%d@s%d.test", n, i))
		}
	}
	waitFor(t, "every message delivered", func() bool {
		return len(remote.messages()) == domains*perDomain
	})
	// With one connection allowed, each domain used to open its own
	// after the previous one closed.
	if n := dials.totalAt("127.0.0.1"); n >= domains {
		t.Errorf("%d connections for %d domains sharing one server", n, domains)
	}
	for _, m := range remote.messages() {
		if len(m.rcpts) != 1 {
			t.Errorf("message with recipients %v", m.rcpts)
		}
	}
}
