package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// peerMode is how a hostile mail exchanger treats new connections.
type peerMode int32

const (
	peerSilent    peerMode = iota // accepts TCP, never greets
	peerStallData                 // greets, takes the message, never answers the end of data
	peerDrip                      // one byte a second
	peerHealthy                   // a scripted receiver that accepts everything
)

// hostilePeer is a mail exchanger on its own loopback address (the
// queue's remote_port is one port for every MX) that misbehaves as its
// mode says, counts its connections and how long each was held open.
type hostilePeer struct {
	name     string
	ln       net.Listener
	mode     atomic.Int32
	open     atomic.Int64
	maxOpen  atomic.Int64 // most open at once
	accepted atomic.Int64
	recv     *fakeReceiver // gets the connections in peerHealthy
	handoff  chan net.Conn
	mu       sync.Mutex
	conns    map[*peerConn]bool
	held     []time.Duration // how long each hostile connection lasted
	wg       sync.WaitGroup
}

func startHostilePeer(t *testing.T, name, ip, port string, mode peerMode) *hostilePeer {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		fatalf(t, "%s on %s: %v", name, ip, err)
	}
	p := &hostilePeer{name: name, ln: ln, handoff: make(chan net.Conn), conns: map[*peerConn]bool{}}
	p.mode.Store(int32(mode))
	p.recv = &fakeReceiver{inData: make(chan struct{}, 8)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &fakeRecvSession{f: p.recv}, nil }))
	srv.Domain = name
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes, srv.MaxRecipients = 10<<20, 100
	hl := &handoffListener{p: p, done: make(chan struct{})}
	go srv.Serve(hl)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		srv.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Conn.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *hostilePeer) setMode(m peerMode) { p.mode.Store(int32(m)) }

func (p *hostilePeer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if n := p.open.Add(1); n > p.maxOpen.Load() {
			p.maxOpen.Store(n) // only this goroutine stores
		}
		mode := peerMode(p.mode.Load())
		pc := &peerConn{Conn: c, p: p, start: time.Now(), hostile: mode != peerHealthy}
		p.mu.Lock()
		p.conns[pc] = true
		p.mu.Unlock()
		if mode == peerHealthy {
			p.handoff <- pc
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer pc.Close()
			p.misbehave(pc, mode)
		}()
	}
}

// misbehave plays one hostile conversation until the client hangs up.
func (p *hostilePeer) misbehave(c net.Conn, mode peerMode) {
	switch mode {
	case peerSilent:
		io.Copy(io.Discard, c)
	case peerDrip:
		go func() { io.Copy(io.Discard, c); c.Close() }()
		for _, b := range []byte("220 " + p.name + " ESMTP, one byte a second\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
		io.Copy(io.Discard, c)
	case peerStallData:
		defer io.Copy(io.Discard, c)
		br := bufio.NewReader(c)
		io.WriteString(c, "220 "+p.name+" ESMTP\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch strings.ToUpper(strings.Fields(line + " x")[0]) {
			case "EHLO":
				io.WriteString(c, "250-"+p.name+"\r\n250 8BITMIME\r\n")
			case "DATA":
				io.WriteString(c, "354 go ahead\r\n")
				for line != ".\r\n" {
					if line, err = br.ReadString('\n'); err != nil {
						return
					}
				}
				return // the end of data is never answered
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	}
}

// holds returns how long the hostile connections lasted, shortest first.
func (p *hostilePeer) holds() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(slices.Values(p.held))
}

type peerConn struct {
	net.Conn
	p       *hostilePeer
	start   time.Time
	hostile bool
	once    sync.Once
}

func (c *peerConn) Close() error {
	c.once.Do(func() {
		c.p.open.Add(-1)
		c.p.mu.Lock()
		delete(c.p.conns, c)
		if c.hostile {
			c.p.held = append(c.p.held, time.Since(c.start))
		}
		c.p.mu.Unlock()
	})
	return c.Conn.Close()
}

// handoffListener gives a peer's connections in peerHealthy to its
// receiver.
type handoffListener struct {
	p    *hostilePeer
	done chan struct{}
	once sync.Once
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.p.handoff:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *handoffListener) Addr() net.Addr { return l.p.ln.Addr() }

// subjects counts the messages a receiver got, by Subject.
func (f *fakeReceiver) subjects() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, b := range f.received {
		if m, err := mail.ReadMessage(strings.NewReader(string(b))); err == nil {
			out[m.Header.Get("Subject")]++
		}
	}
	return out
}

// queueReplies returns the last reply of every pending recipient in the
// queue, from admin queue list and show.
func queueReplies(t *testing.T, s *Server) map[string]string {
	t.Helper()
	out := map[string]string{}
	lines := strings.Split(strings.TrimSpace(s.Admin(t, "", "queue", "list")), "\n")
	if len(lines) < 2 || strings.Contains(lines[0], "empty") {
		return out
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasSuffix(l, "message(s)") {
			continue
		}
		show := s.RunAdmin(t, "", "queue", "show", f[0])
		if show.Code != 0 {
			continue // delivered meanwhile
		}
		rcpt, state := "", ""
		for _, sl := range strings.Split(show.Stdout, "\n") {
			sl = strings.TrimSpace(sl)
			switch {
			case strings.HasPrefix(sl, "recipient "):
				rcpt = strings.TrimPrefix(sl, "recipient ")
			case strings.HasPrefix(sl, "state:"):
				state = strings.TrimSpace(strings.TrimPrefix(sl, "state:"))
			case strings.HasPrefix(sl, "last reply:") && state == "pending":
				out[rcpt] = strings.TrimSpace(strings.TrimPrefix(sl, "last reply:"))
			}
		}
	}
	return out
}

// TestStallingPeers: three hostile mail exchangers (one never greets, one
// stalls at the end of data, one answers a byte a second) hold at most
// max_per_domain connections each while mail to healthy destinations
// flows; their messages are deferred with the reason in admin queue show
// and delivered exactly once when the peers behave; no connection is left
// open at any peer.
func TestStallingPeers(t *testing.T) {
	f := startFakeReceiver(t)
	s := startServer(t, fmt.Sprintf(`[queue]
remote_port = %s
max_connections = 8
max_per_domain = 2
max_per_host = 4
greeting_timeout = "3s"
command_timeout = "3s"
mail_timeout = "3s"
rcpt_timeout = "3s"
data_init_timeout = "3s"
data_block_timeout = "3s"
data_done_timeout = "3s"
connection_timeout = "60s"
`, f.port))
	s.AddUser(t, faultUser, faultPass)
	hostile := []struct {
		domain, ip string
		mode       peerMode
		reason     string
	}{
		{"c.test", "127.0.0.2", peerSilent, "451 4.4.2 timeout waiting for greeting from mx.c.test [127.0.0.2]"},
		{"d.test", "127.0.0.3", peerStallData, "451 4.4.2 timeout waiting for reply to end of data from mx.d.test [127.0.0.3]"},
		{"e.test", "127.0.0.4", peerDrip, "451 4.4.2 timeout waiting for greeting from mx.e.test [127.0.0.4]"},
	}
	peers := map[string]*hostilePeer{}
	for _, h := range hostile {
		peers[h.domain] = startHostilePeer(t, "mx."+h.domain, h.ip, f.port, h.mode)
		s.DNS.Add(fmt.Sprintf("%s. MX 10 mx.%s.", h.domain, h.domain), fmt.Sprintf("mx.%s. A %s", h.domain, h.ip))
	}
	s.DNS.Add("b.test. MX 10 mx.b.test.", "g.test. MX 10 mx.b.test.", "mx.b.test. A 127.0.0.1")

	sub, err := smtp.DialTLS(s.Addr("submissions"), s.clientTLS())
	if err != nil {
		fatalf(t, "%v", err)
	}
	defer sub.Close()
	if err := sub.Auth(sasl.NewPlainClient("", faultUser, faultPass)); err != nil {
		fatalf(t, "%v", err)
	}
	acked := map[string]string{} // subject → recipient
	send := func(subject, rcpt string) {
		t.Helper()
		if err := goSend(sub, faultUser, []string{rcpt}, "From: "+faultUser+"\r\nSubject: "+subject+"\r\n\r\nout\r\n"); err != nil {
			fatalf(t, "%s: %v", subject, err)
		}
		acked[subject] = rcpt
	}
	healthyBatch := func(tag string) time.Duration {
		start := time.Now()
		for i := range 10 {
			send(fmt.Sprintf("%s-%d", tag, i), fmt.Sprintf("u%d@%s", i, []string{"b.test", "g.test"}[i%2]))
		}
		waitUntil(t, 60*time.Second, tag+" healthy messages", func() bool {
			got := f.subjects()
			for i := range 10 {
				if got[fmt.Sprintf("%s-%d", tag, i)] == 0 {
					return false
				}
			}
			return true
		})
		return time.Since(start)
	}

	quiet := healthyBatch("quiet")
	t.Logf("10 healthy messages without stalls: delivered in %s", quiet.Round(time.Millisecond))

	stallStart := time.Now()
	for _, h := range hostile {
		for i := range 2 {
			send(fmt.Sprintf("hostile-%s-%d", h.domain, i), fmt.Sprintf("v%d@%s", i, h.domain))
		}
	}
	waitUntil(t, 20*time.Second, "a connection held at every hostile peer", func() bool {
		for _, p := range peers {
			if p.open.Load() == 0 {
				return false
			}
		}
		return true
	})
	during := healthyBatch("stalled")
	var openNow []string
	for _, h := range hostile {
		openNow = append(openNow, fmt.Sprintf("%s %d", h.domain, peers[h.domain].open.Load()))
	}
	t.Logf("10 healthy messages while the peers stall: delivered in %s (stalled connections open at the end: %s)", during.Round(time.Millisecond), strings.Join(openNow, ", "))

	waitUntil(t, 60*time.Second, "every hostile message deferred with its reason in admin queue show", func() bool {
		replies := queueReplies(t, s)
		for _, h := range hostile {
			for i := range 2 {
				if !strings.HasPrefix(replies[fmt.Sprintf("v%d@%s", i, h.domain)], h.reason) {
					return false
				}
			}
		}
		return true
	})
	t.Logf("every hostile message deferred with its reason %s after the first was queued", time.Since(stallStart).Round(time.Millisecond))
	for _, h := range hostile {
		p := peers[h.domain]
		held := p.holds()
		t.Logf("given up: %s (%v): %d connections, at most %d at once, held %v", h.domain, []string{"silent", "stalls in DATA", "one byte a second"}[h.mode], p.accepted.Load(), p.maxOpen.Load(), held)
		if len(held) == 0 {
			errorf(t, "%s: no connection given up", h.domain)
		}
	}
	for _, h := range hostile {
		if n := peers[h.domain].recv.count(); n != 0 {
			errorf(t, "%s received %d messages while hostile", h.domain, n)
		}
	}

	// The peers behave: everything is delivered, once.
	behave := time.Now()
	for _, p := range peers {
		p.setMode(peerHealthy)
	}
	waitUntil(t, 90*time.Second, "the deferred messages delivered", func() bool {
		s.Admin(t, "", "queue", "retry", "all")
		time.Sleep(time.Second)
		for _, p := range peers {
			if p.recv.count() < 2 {
				return false
			}
		}
		return true
	})
	t.Logf("recovery: the hostile destinations' mail delivered %s after the peers behaved (asked with admin queue retry; unasked, at the next backoff)", time.Since(behave).Round(time.Millisecond))
	waitUntil(t, 20*time.Second, "an empty queue", func() bool {
		return strings.Contains(s.Admin(t, "", "queue", "list"), "empty")
	})
	for subject, rcpt := range acked {
		d := rcpt[strings.IndexByte(rcpt, '@')+1:]
		got := f.subjects()
		if p := peers[d]; p != nil {
			got = p.recv.subjects()
		}
		if got[subject] != 1 {
			errorf(t, "%s to %s delivered %d times, want once", subject, rcpt, got[subject])
		}
	}
	total := len(f.subjects())
	for _, p := range peers {
		total += len(p.recv.subjects())
	}
	if total != len(acked) {
		errorf(t, "%d distinct messages delivered, %d acknowledged", total, len(acked))
	}
	waitUntil(t, 20*time.Second, "no connection left open at the peers", func() bool {
		for _, p := range peers {
			if p.open.Load() != 0 {
				return false
			}
		}
		return true
	})
	sub.Quit()
	s.Stop(t)
}
