package queue

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/posthouse/posthouse/smtpclient"
)

// When an attempt found every server of its domain at its connection
// limit, it is made again after hostBusyDelay (a host that failed: its one
// probing connection may take minutes) or hostFullDelay (a healthy host
// that stayed full for hostFullWait). Such an attempt is not counted (no
// backoff): the limit is ours, not the remote's answer.
//
// An attempt that finds a healthy host at MaxPerHost waits for a slot, up
// to hostFullWait: its connections deliver in milliseconds and give their
// slot back, or, waiting for their own domain's next message (awaitNext),
// take the waiting attempt's message (handoff), so many domains on one
// server (a hosting provider's MX) share its connections instead of each
// waiting out a delay or opening its own.
const (
	hostBusyDelay = time.Minute
	hostFullDelay = 5 * time.Second
	hostFullWait  = 30 * time.Second
)

// hostState is what the queue knows about one mail server address while
// it runs: connections open to it, and why the last one failed when it
// did not get as far as a completed transaction.
type hostState struct {
	conns int
	// failed: the last connection timed out or could not be made; until a
	// transaction completes, one connection at a time probes the host, so a
	// server that stalls holds one slot, not MaxPerHost.
	failed bool
	reason string // the failure, as recorded for the recipients
	// waiting: domains whose attempts found this failed host busy; when
	// it answers again their mail is made due at once (wakeWaiting).
	waiting map[string]bool
	// waiters: attempts waiting for a slot at this healthy host; freed is
	// closed (and dropped) when a slot is given back or the host's state
	// changes, to wake them.
	waiters int
	freed   chan struct{}
	// idle: sessions connected here and waiting for their next message
	// (awaitNext) receive on it; an attempt to another domain whose mail
	// server resolved to this address sends its message to one of them
	// (handoff) instead of opening a connection of its own.
	idle chan *handoff
}

// handoff is an attempt handed to a connection already open to its
// server's address: the connection runs its transaction and sends the
// results back on done (buffered), which the attempt concludes as its own.
type handoff struct {
	p    *prepared
	host string // the attempt's own MX name, for its results
	done chan []result
}

// newHostState returns a fresh state for an address.
func newHostState() *hostState {
	return &hostState{idle: make(chan *handoff)}
}

// offer hands p to a connection idling at addr, if one is waiting right
// now, and returns its results; ok false: none was waiting.
func (q *Queue) offer(p *prepared, host string, addr netip.Addr) (res []result, ok bool) {
	q.mu.Lock()
	h := q.hosts[addr]
	q.mu.Unlock()
	if h == nil {
		return nil, false
	}
	ho := &handoff{p: p, host: host, done: make(chan []result, 1)}
	select {
	case h.idle <- ho:
		return <-ho.done, true
	default:
		return nil, false
	}
}

// busyNote ends the reply recorded for an attempt that found its failed
// host busy; wakeWaiting finds those recipients by it.
const busyNote = " (one connection at a time until it answers)"

// maxWaitingDomains bounds a host's waiting set; past it, the others wait
// for hostBusyDelay.
const maxWaitingDomains = 1000

// acquireHost takes a connection slot at addr. At a healthy host at its
// limit it waits for a slot (hostFullWait at most), or for one of the
// host's connections to take p (handed: res are p's results). When
// neither is to be had it returns false, the reply to record for this
// attempt and when to make it again.
func (q *Queue) acquireHost(ctx context.Context, p *prepared, host string, addr netip.Addr) (r smtpclient.Reply, delay time.Duration, ok bool, res []result, handed bool) {
	domain := p.j.domain
	var deadline <-chan time.Time
	var ho *handoff
	for {
		q.mu.Lock()
		h := q.hosts[addr]
		if h == nil {
			h = newHostState()
			q.hosts[addr] = h
		}
		limit := q.opts.MaxPerHost
		if h.failed {
			limit = 1
		}
		if h.conns < limit {
			h.conns++
			q.mu.Unlock()
			return smtpclient.Reply{}, 0, true, nil, false
		}
		if h.failed {
			if h.waiting == nil {
				h.waiting = map[string]bool{}
			}
			if len(h.waiting) < maxWaitingDomains {
				h.waiting[domain] = true
			}
			r := smtpclient.Reply{Code: 451, Enhanced: "4.4.2", Text: h.reason + busyNote}
			q.mu.Unlock()
			return r, hostBusyDelay, false, nil, false
		}
		if deadline == nil {
			t := time.NewTimer(hostFullWait)
			defer t.Stop()
			deadline = t.C
		}
		if h.freed == nil {
			h.freed = make(chan struct{})
		}
		freed, idle := h.freed, h.idle
		h.waiters++
		// A connection of this host waiting for its next message
		// (awaitNext) receives on idle and takes this attempt.
		q.mu.Unlock()

		if ho == nil {
			ho = &handoff{p: p, host: host, done: make(chan []result, 1)}
		}
		var timedOut bool
		select {
		case <-freed:
		case idle <- ho:
			handed = true
		case <-deadline:
			timedOut = true
		case <-ctx.Done():
			timedOut = true
		}
		q.mu.Lock()
		h.waiters--
		if h.waiters <= 0 && h.conns <= 0 && !h.failed && q.hosts[addr] == h {
			delete(q.hosts, addr)
		}
		q.mu.Unlock()
		if handed {
			return smtpclient.Reply{}, 0, false, <-ho.done, true
		}
		if timedOut {
			return smtpclient.Reply{Code: 451, Enhanced: "4.4.5", Text: "too many connections in flight to " + hostAddr(host, addr)}, hostFullDelay, false, nil, false
		}
	}
}

// releaseHost gives the slot back and notes how the connection ended:
// ok after a completed transaction, failure with its reply text when it
// timed out or could not be made, neither otherwise.
func (q *Queue) releaseHost(addr netip.Addr, ok bool, failure string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.hosts[addr]
	if h == nil {
		return
	}
	h.conns--
	switch {
	case ok:
		h.failed, h.reason = false, ""
	case failure != "":
		h.failed, h.reason = true, failure
	}
	if h.freed != nil {
		close(h.freed)
		h.freed = nil
	}
	if h.conns <= 0 && !h.failed && h.waiters <= 0 {
		delete(q.hosts, addr)
	}
	if len(q.hosts) > maxHostStates {
		// Failed hosts nobody is connected to are forgotten first: at
		// worst one of them gets MaxPerHost connections again.
		for a, h := range q.hosts {
			if h.conns <= 0 && h.waiters <= 0 {
				delete(q.hosts, a)
			}
		}
	}
}

// maxHostStates bounds the hosts the queue remembers.
const maxHostStates = 10000

// hostAnswered notes a completed transaction with addr: it gets
// MaxPerHost connections again at once, not when this one closes. It
// returns the domains whose attempts found it busy while it was failing.
func (q *Queue) hostAnswered(addr netip.Addr) (waiting []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.hosts[addr]
	if h == nil {
		return nil
	}
	for d := range h.waiting {
		waiting = append(waiting, d)
	}
	h.failed, h.reason, h.waiting = false, "", nil
	return waiting
}

// wakeWaiting makes due at once the recipients of domains whose attempts
// were put off because their host was failing and busy (their reply ends
// with busyNote): it answers again, so they need not wait for
// hostBusyDelay.
func (q *Queue) wakeWaiting(ctx context.Context, domains []string) {
	now := q.opts.Now().UnixNano()
	woken := int64(0)
	for _, d := range domains {
		n, err := q.st.wakeWaiting(ctx, d, busyNote, now)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Error("queue: wake waiting recipients", "domain", d, "err", err)
			}
			return
		}
		woken += n
	}
	if woken > 0 {
		q.log.Info("host answers again; waiting recipients are due", "domains", len(domains), "rcpts", woken)
		q.wake()
	}
}

// hostAddr is how replies name a server: "mx.example [192.0.2.1]".
func hostAddr(host string, addr netip.Addr) string {
	return host + " [" + addr.String() + "]"
}

// lostReply is the temporary reply recorded when a conversation broke:
// what we were waiting for when a deadline passed (RFC 5321 §4.5.3.2), a
// reply we could not read, or a lost connection; and whether the host
// counts as failed (see hostState).
func lostReply(err error, host string, addr netip.Addr) (r smtpclient.Reply, hostFailed bool) {
	var te *smtpclient.TimeoutError
	switch {
	case errors.As(err, &te):
		return smtpclient.Reply{Code: 451, Enhanced: "4.4.2", Text: te.Error() + " from " + hostAddr(host, addr)}, true
	case errors.Is(err, smtpclient.ErrProtocol):
		return smtpclient.Reply{Code: 451, Enhanced: "4.5.0", Text: "unreadable reply from " + hostAddr(host, addr)}, true
	default:
		return smtpclient.Reply{Code: 451, Enhanced: "4.4.2", Text: "connection to " + hostAddr(host, addr) + " lost"}, false
	}
}
