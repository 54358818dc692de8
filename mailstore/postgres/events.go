package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/mailstore"
)

// Change events cross nodes with LISTEN/NOTIFY. A write transaction that
// changes an account sends its events with pg_notify on the Store's
// channel before it commits; PostgreSQL delivers them at the commit, in
// commit order, to every listening session, and drops them on a rollback.
// Each Store listens on one dedicated connection and hands the events of
// other Stores to the watchers of the accounts it has open; its own come
// back too and are dropped by origin, since its watchers were called at
// the commit (Account.Watch: before the call that made the change
// returns).
//
// A notification's payload is at most 8000 bytes, so a transaction's
// events are split into as many notifications as they need, sent by one
// statement.

// kindRemoved: the account was removed (Store.Remove); handles on it end.
const kindRemoved = 100

// wireEvent is an event as a notification carries it.
type wireEvent struct {
	Kind    int      `json:"k"`
	Mailbox int64    `json:"m,omitempty"`
	UID     uint32   `json:"u,omitempty"`
	ModSeq  uint64   `json:"s,omitempty"`
	Flags   []string `json:"f,omitempty"`
	HasFl   bool     `json:"h,omitempty"` // Flags was non-nil
}

type wirePayload struct {
	Origin  string      `json:"o"`
	Account int64       `json:"a"`
	Events  []wireEvent `json:"e"`
}

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

func toWire(e mailstore.Event) wireEvent {
	w := wireEvent{Kind: int(e.Kind), Mailbox: e.MailboxID, UID: uint32(e.UID), ModSeq: e.ModSeq, HasFl: e.Flags != nil}
	for _, f := range e.Flags {
		w.Flags = append(w.Flags, string(f))
	}
	return w
}

func fromWire(w wireEvent) mailstore.Event {
	e := mailstore.Event{Kind: mailstore.EventKind(w.Kind), MailboxID: w.Mailbox, UID: imap.UID(w.UID), ModSeq: w.ModSeq}
	if w.HasFl {
		e.Flags = make([]imap.Flag, 0, len(w.Flags))
		for _, f := range w.Flags {
			e.Flags = append(e.Flags, imap.Flag(f))
		}
	}
	return e
}

// payloads encodes events into notifications of at most maxPayload bytes.
func payloads(origin string, account int64, events []wireEvent) ([]string, error) {
	var out []string
	for len(events) > 0 {
		n := len(events)
		for {
			b, err := json.Marshal(wirePayload{Origin: origin, Account: account, Events: events[:n]})
			if err != nil {
				return nil, err
			}
			if len(b) <= maxPayload || n == 1 {
				out = append(out, string(b))
				break
			}
			n = max(1, n*maxPayload/len(b)*9/10)
		}
		events = events[n:]
	}
	return out, nil
}

// notify queues the events for the other nodes, in tx: they go out when
// it commits.
func notify(ctx context.Context, tx pgx.Tx, s *Store, account int64, events []wireEvent) error {
	ps, err := payloads(s.origin, account, events)
	if err != nil {
		return err
	}
	if len(ps) == 1 {
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.opts.Channel, ps[0])
	} else {
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS x(p, i) ORDER BY i`, s.opts.Channel, ps)
	}
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// listener holds the LISTEN connection of a Store.
type listener struct {
	s      *Store
	cancel context.CancelFunc
	done   chan struct{}
	// reconnects counts the LISTEN connections lost.
	reconnects atomic.Int64
}

// startListener connects, listens, and serves notifications until stop.
// It returns once the first LISTEN took effect, so that a change committed
// by another node after Open returns is seen.
func startListener(ctx context.Context, s *Store) (*listener, error) {
	conn, err := listenConn(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("postgres: listen: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &listener{s: s, cancel: cancel, done: make(chan struct{})}
	go l.run(lctx, conn)
	return l, nil
}

func listenConn(ctx context.Context, s *Store) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.opts.Channel}.Sanitize()); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

func (l *listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	backoff := 100 * time.Millisecond
	for {
		if conn == nil {
			var err error
			conn, err = listenConn(ctx, l.s)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				l.s.log.Error("mailstore listen: reconnect", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 10*time.Second)
				continue
			}
			// Notifications sent while the connection was down are
			// lost: the open accounts read what changed since the
			// last event they published (resync.go). Changes
			// committed from now on come as notifications, since
			// the LISTEN is in place.
			if err := l.s.catchUp(ctx); err != nil {
				if ctx.Err() != nil {
					conn.Close(context.Background())
					return
				}
				l.s.log.Error("mailstore listen: catch up after reconnecting", "err", err)
				conn.Close(context.Background())
				conn = nil
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 10*time.Second)
				continue
			}
			l.s.log.Warn("mailstore listen: reconnected; open mailboxes caught up")
			backoff = 100 * time.Millisecond
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			if ctx.Err() != nil {
				return
			}
			l.reconnects.Add(1)
			l.s.log.Error("mailstore listen", "err", err)
			continue
		}
		l.dispatch(n.Payload)
	}
}

// dispatch hands another Store's events to the watchers of the account.
func (l *listener) dispatch(payload string) {
	var p wirePayload
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		l.s.log.Error("mailstore listen: bad notification", "err", err)
		return
	}
	if p.Origin == l.s.origin {
		return
	}
	l.s.mu.Lock()
	a := l.s.byID[p.Account]
	l.s.mu.Unlock()
	if a == nil {
		return
	}
	for _, w := range p.Events {
		if w.Kind == kindRemoved {
			l.s.forget(p.Account)
			return
		}
	}
	events := make([]mailstore.Event, len(p.Events))
	for i, w := range p.Events {
		events[i] = fromWire(w)
	}
	a.publish(events)
}

func (l *listener) stop() {
	l.cancel()
	<-l.done
}

// watcher is one Watch callback.
type watcher struct {
	id uint64
	fn func(mailstore.Event)
}

// addWatcher registers fn; the returned func removes it.
func (a *account) addWatcher(fn func(mailstore.Event)) func() {
	a.watchMu.Lock()
	a.watchSeq++
	id := a.watchSeq
	var l []watcher
	if old := a.watchers.Load(); old != nil {
		l = append(l, *old...)
	}
	l = append(l, watcher{id: id, fn: fn})
	a.watchers.Store(&l)
	a.watchMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.watchMu.Lock()
			defer a.watchMu.Unlock()
			old := a.watchers.Load()
			if old == nil {
				return
			}
			l := make([]watcher, 0, len(*old))
			for _, w := range *old {
				if w.id != id {
					l = append(l, w)
				}
			}
			a.watchers.Store(&l)
		})
	}
}

// gapWait bounds how long publish holds events back for the change
// before them, which a lost notification (the LISTEN connection
// reconnecting) would never bring.
var gapWait = 2 * time.Second

// sequencer puts the events of this process's commits and of other
// nodes' notifications in each mailbox's modseq order. Every committed
// change to a mailbox takes the modseq after the last one and carries
// events, so a transaction whose events skip a modseq of a mailbox was
// committed after one whose events have not reached this process yet: a
// notification still on its way from another node, or this node's own
// commit racing a later remote one to the watchers. Its events wait for
// the missing ones (at most gapWait), so that a session never sees UID 7
// appear before UID 6 (which it would have to ignore: sequence numbers
// only grow at the end).
type sequencer struct {
	mu      sync.Mutex
	last    map[int64]uint64 // mailbox: highest modseq published
	changed chan struct{}    // closed and replaced on every publish
	// lastUID: mailbox: highest UID of an append published.
	lastUID map[int64]imap.UID
	// base: mailbox: the oldest Snapshot taken through this process
	// before any event of the mailbox was published, where a catch-up
	// starts when last has no entry (resync.go).
	base map[int64]snapBase
	// floor: mailbox: the modseq a catch-up (resync.go) delivered
	// everything up to; a later event at or below it, a notification
	// or a local publish that came after the catch-up read the rows,
	// is dropped, since watchers had it.
	floor map[int64]uint64
}

type snapBase struct {
	modseq uint64
	uid    imap.UID // UIDNEXT - 1 of that snapshot
}

// init makes the maps. The caller holds mu.
func (sq *sequencer) init() {
	if sq.last == nil {
		sq.last = make(map[int64]uint64)
		sq.lastUID = make(map[int64]imap.UID)
		sq.base = make(map[int64]snapBase)
		sq.floor = make(map[int64]uint64)
		sq.changed = make(chan struct{})
	}
}

// noteSnapshot records a snapshot of the mailbox (modseq, UIDNEXT), the
// catch-up's starting point while no event of it was published.
func (a *account) noteSnapshot(mailbox int64, modseq uint64, uidNext imap.UID) {
	sq := &a.seq
	sq.mu.Lock()
	defer sq.mu.Unlock()
	sq.init()
	if _, ok := sq.last[mailbox]; ok {
		return
	}
	if b, ok := sq.base[mailbox]; !ok || modseq < b.modseq {
		sq.base[mailbox] = snapBase{modseq: modseq, uid: uidNext - 1}
	}
}

// publish calls every watcher with events (one transaction's, in order),
// after those of earlier modseqs of the same mailboxes.
func (a *account) publish(events []mailstore.Event) {
	if len(events) == 0 {
		return
	}
	sq := &a.seq
	sq.mu.Lock()
	defer sq.mu.Unlock()
	sq.init()
	var deadline *time.Timer
	for a.gap(events) {
		if deadline == nil {
			deadline = time.NewTimer(gapWait)
			defer deadline.Stop()
		}
		ch := sq.changed
		sq.mu.Unlock()
		timedOut := false
		select {
		case <-ch:
		case <-deadline.C:
			timedOut = true
		}
		sq.mu.Lock()
		if timedOut {
			a.log.Warn("mailstore events: an earlier change never arrived; publishing without it",
				"mailbox", events[0].MailboxID, "modseq", events[0].ModSeq)
			break
		}
	}
	a.deliverLocked(events)
}

// deliverLocked calls the watchers with events, but those a catch-up
// delivered already, and notes what was published. The caller holds
// seq.mu.
func (a *account) deliverLocked(events []mailstore.Event) {
	sq := &a.seq
	if ws := a.watchers.Load(); ws != nil {
		for _, e := range events {
			if f, ok := sq.floor[e.MailboxID]; ok && e.Kind != mailstore.EventMailboxes && e.ModSeq <= f {
				continue
			}
			for _, w := range *ws {
				w.fn(e)
			}
		}
	}
	for _, e := range events {
		if e.ModSeq > sq.last[e.MailboxID] {
			sq.last[e.MailboxID] = e.ModSeq
		}
		if e.Kind == mailstore.EventAppend && e.UID > sq.lastUID[e.MailboxID] {
			sq.lastUID[e.MailboxID] = e.UID
		}
	}
	close(sq.changed)
	sq.changed = make(chan struct{})
}

// gap reports whether events skip a modseq of a mailbox this process has
// published events of. The caller holds seq.mu.
func (a *account) gap(events []mailstore.Event) bool {
	for _, e := range events {
		if last, ok := a.seq.last[e.MailboxID]; ok && e.ModSeq > last+1 {
			return true
		}
	}
	return false
}
