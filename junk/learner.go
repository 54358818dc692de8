package junk

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// Bounds of the learner.
const (
	// DefaultQueueSize is how many user actions wait for the learner;
	// more are dropped (and logged): learning is best effort, the IMAP
	// command never waits for it.
	DefaultQueueSize = 1024
	// maxPerAction is how many messages one action (a MOVE of many) teaches.
	maxPerAction = 500
	// maxCorrespondentsPerMessage bounds the addresses taken from one
	// message in Sent.
	maxCorrespondentsPerMessage = 100
	// learnTimeout bounds one action's work.
	learnTimeout = 2 * time.Minute
)

// Opener opens accounts: mailstore.Store, and what imapd takes as its Store.
type Opener interface {
	Open(ctx context.Context, name string) (mailstore.Account, error)
}

// LearnerOptions configure NewLearner.
type LearnerOptions struct {
	DB *DB
	// Store is the mailstore the learner reads messages from. Give it
	// the store itself, not the one Wrap returns.
	Store    Opener
	Hostname string // our authserv-id, as FilterOptions.Hostname
	Logger   *slog.Logger
	// QueueSize: DefaultQueueSize when 0.
	QueueSize int
}

// Learner learns from what users do over IMAP: see the package doc. It
// sees their commands through the store Wrap returns, queues them, and
// learns from them on one background goroutine.
type Learner struct {
	opts LearnerOptions
	log  *slog.Logger
	tok  Tokenizer

	queue chan action

	// ctx is the learner's life: cancelled by Shutdown.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool
	stopped bool
	stop    chan struct{}
	done    chan struct{}

	dropped atomic.Int64
	learned atomic.Int64
	// queued and done count actions taken and carried out: equal when
	// the learner is idle.
	queued, finished atomic.Int64
}

type actionKind int

const (
	// actCopy: messages copied or moved from mailbox src; they are uids
	// in dest now.
	actCopy actionKind = iota + 1
	// actAppend: a message appended to dest.
	actAppend
	// actFlag: messages of dest got the keyword of class.
	actFlag
)

// action is one user command, as the learner needs it.
type action struct {
	account   string
	kind      actionKind
	src, dest int64 // mailbox IDs
	uids      []imap.UID
	class     Class // actFlag
}

// NewLearner builds a learner; Start starts its worker.
func NewLearner(opts LearnerOptions) (*Learner, error) {
	if opts.DB == nil || opts.Store == nil {
		return nil, errors.New("junk: LearnerOptions.DB and Store are required")
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Learner{
		opts:   opts,
		log:    opts.Logger,
		tok:    Tokenizer{Hostname: opts.Hostname},
		queue:  make(chan action, opts.QueueSize),
		ctx:    ctx,
		cancel: cancel,
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}, nil
}

// Start starts the worker. Actions queued before are kept.
func (l *Learner) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.stopped {
		return
	}
	l.started = true
	go l.run()
}

// Shutdown stops taking actions, lets the worker finish the message it is
// on, and waits for it (or for ctx). Actions still queued are dropped and
// counted in the log: what users do meanwhile is not worth delaying a
// shutdown for.
func (l *Learner) Shutdown(ctx context.Context) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	started := l.started
	close(l.stop)
	l.cancel()
	l.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-l.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if n := len(l.queue); n > 0 {
		l.log.Info("junk learner stopped with actions not learned", "count", n)
	}
	return nil
}

// Learned is how many messages the learner has learned since it started
// (each learning that changed the statistics).
func (l *Learner) Learned() int64 { return l.learned.Load() }

// Dropped is how many actions were dropped because the queue was full.
func (l *Learner) Dropped() int64 { return l.dropped.Load() }

// enqueue hands an action to the worker without waiting.
func (l *Learner) enqueue(a action) {
	if len(a.uids) > maxPerAction {
		a.uids = a.uids[:maxPerAction]
	}
	select {
	case <-l.stop:
		return
	default:
	}
	select {
	case l.queue <- a:
		l.queued.Add(1)
	default:
		if n := l.dropped.Add(1); n&(n-1) == 0 { // 1, 2, 4, 8, …
			l.log.Warn("junk learner queue full: user action not learned", "user", a.account, "dropped", n)
		}
	}
}

func (l *Learner) run() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case a := <-l.queue:
			batch := []action{a}
		more:
			for len(batch) < learnBatch {
				select {
				case a := <-l.queue:
					batch = append(batch, a)
				default:
					break more
				}
			}
			for _, acts := range byAccount(batch) {
				l.do(acts)
			}
			l.finished.Add(int64(len(batch)))
		}
	}
}

// learnBatch is how many queued actions the worker takes at once: one
// account's actions among them share its opening and mailbox list (a busy
// account's APPENDs, most of which teach nothing, cost one of each per
// batch instead of one per message).
const learnBatch = 64

// byAccount groups actions by account, in the order they came.
func byAccount(batch []action) [][]action {
	var groups [][]action
	for _, a := range batch {
		i := slices.IndexFunc(groups, func(g []action) bool { return g[0].account == a.account })
		if i < 0 {
			groups = append(groups, []action{a})
			continue
		}
		groups[i] = append(groups[i], a)
	}
	return groups
}

// do carries out one account's actions, in order; a panic is logged and
// the worker goes on.
func (l *Learner) do(acts []action) {
	account := acts[0].account
	defer func() {
		if v := recover(); v != nil {
			l.log.Error("junk learner panicked", "user", account, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	if err := l.apply(account, acts); err != nil && l.ctx.Err() == nil {
		l.log.Error("junk learner", "user", account, "err", err)
	}
}

// apply decides what each action teaches and learns it:
//   - into Junk (MOVE, COPY, APPEND) from elsewhere: spam;
//   - out of Junk (MOVE, COPY) to anywhere but Trash: ham;
//   - $Junk added: spam; $NotJunk added: ham;
//   - into Sent (APPEND, COPY, MOVE): its recipients are correspondents.
//
// learnTimeout bounds the opening and each action. An action that fails
// is logged; the next ones are still tried.
func (l *Learner) apply(account string, acts []action) error {
	ctx, cancel := context.WithTimeout(l.ctx, learnTimeout)
	defer cancel()
	acct, err := l.opts.Store.Open(ctx, account)
	if err != nil {
		return err
	}
	defer acct.Close()
	var mbs []mailstore.Mailbox
	listed := false
	for _, a := range acts {
		if err := l.ctx.Err(); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(l.ctx, learnTimeout)
		if a.kind != actFlag && !listed {
			if mbs, err = acct.ListMailboxes(actx); err != nil {
				cancel()
				return err
			}
			listed = true
		}
		if err := l.applyOne(actx, acct, mbs, a); err != nil && actx.Err() == nil {
			l.log.Error("junk learner", "user", account, "err", err)
		}
		cancel()
	}
	return nil
}

// applyOne carries out one action of an opened account whose mailboxes
// are mbs (unused for actFlag).
func (l *Learner) applyOne(ctx context.Context, acct mailstore.Account, mbs []mailstore.Mailbox, a action) error {
	var class Class
	if a.kind == actFlag {
		class = a.class
	} else {
		use := func(id int64) string {
			i := slices.IndexFunc(mbs, func(m mailstore.Mailbox) bool { return m.ID == id })
			if i < 0 {
				return "?" // deleted since
			}
			return mbs[i].SpecialUse
		}
		dest := use(a.dest)
		src := mailstore.SpecialNone
		if a.kind == actCopy {
			src = use(a.src)
		}
		switch {
		case dest == mailstore.SpecialJunk && src != mailstore.SpecialJunk:
			class = Spam
		case a.kind == actCopy && src == mailstore.SpecialJunk && dest != mailstore.SpecialJunk &&
			dest != mailstore.SpecialTrash && dest != "?":
			class = Ham
		case dest == mailstore.SpecialSent:
			return l.correspondents(ctx, acct, a)
		}
	}
	if class == 0 {
		return nil
	}
	for _, uid := range a.uids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := l.learn(ctx, acct, a.dest, uid, class); err != nil {
			if errors.Is(err, mailstore.ErrNoSuchMessage) || errors.Is(err, mailstore.ErrNoSuchMailbox) {
				continue // gone since
			}
			return err
		}
	}
	return nil
}

// learn reads one message and learns it as class.
func (l *Learner) learn(ctx context.Context, acct mailstore.Account, mailbox int64, uid imap.UID, class Class) error {
	rc, size, err := acct.OpenMessage(ctx, mailbox, uid)
	if err != nil {
		return err
	}
	defer rc.Close()
	ra := readerAt(rc, size)
	h, _, err := mimeparse.ReadHeader(io.NewSectionReader(ra, 0, size))
	if err != nil {
		return err
	}
	key, err := messageKey(ra, size)
	if err != nil {
		return err
	}
	if c, err := l.opts.DB.LearnedClass(ctx, acct.Name(), key); err != nil || c == class {
		return err // learned already (Learn would change nothing)
	}
	feats, err := l.tok.Tokenize(h, ra, size)
	defer feats.release()
	if err != nil {
		return err
	}
	changed, err := l.opts.DB.Learn(ctx, acct.Name(), key, class, feats.Hashes())
	if err != nil {
		return err
	}
	if changed {
		l.learned.Add(1)
		l.log.Info("junk filter learned", "user", acct.Name(), "class", class.String(), "features", feats.Len())
	}
	return nil
}

// messageKey identifies a message by its bytes (the first maxScanBytes and
// its size): a copy or a move keeps them, so each of the user's messages is
// learned once per class however often it is moved.
func messageKey(ra io.ReaderAt, size int64) (MessageKey, error) {
	hash := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(size))
	hash.Write(n[:])
	if _, err := io.Copy(hash, io.NewSectionReader(ra, 0, min(size, maxScanBytes))); err != nil {
		return MessageKey{}, err
	}
	var k MessageKey
	copy(k[:], hash.Sum(nil))
	return k, nil
}

// readerAt reads r at offsets: directly when it can (a file), else by
// seeking.
func readerAt(r io.ReadSeeker, size int64) io.ReaderAt {
	if ra, ok := r.(io.ReaderAt); ok {
		return ra
	}
	return &seekReaderAt{rs: r}
}

type seekReaderAt struct {
	mu sync.Mutex
	rs io.ReadSeeker
}

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(s.rs, p)
}

// correspondents records the recipients of messages put into Sent.
func (l *Learner) correspondents(ctx context.Context, acct mailstore.Account, a action) error {
	for _, uid := range a.uids {
		rc, _, err := acct.OpenMessage(ctx, a.dest, uid)
		if errors.Is(err, mailstore.ErrNoSuchMessage) {
			continue
		}
		if err != nil {
			return err
		}
		h, _, err := mimeparse.ReadHeader(rc)
		rc.Close()
		if err != nil {
			return err
		}
		mh := mail.Header{Header: gomessage.Header{Header: h}}
		var addrs []string
		for _, k := range []string{"To", "Cc", "Bcc"} {
			list, err := mh.AddressList(k)
			if err != nil {
				continue
			}
			for _, ad := range list {
				s := strings.ToLower(ad.Address)
				if s != "" && s != acct.Name() && !slices.Contains(addrs, s) && len(addrs) < maxCorrespondentsPerMessage {
					addrs = append(addrs, s)
				}
			}
		}
		if err := l.opts.DB.AddCorrespondents(ctx, acct.Name(), addrs); err != nil {
			return err
		}
		if len(addrs) > 0 {
			l.log.Debug("junk filter: correspondents", "user", acct.Name(), "count", len(addrs))
		}
	}
	return nil
}

// Wrap returns a store for imapd: accounts opened through it report their
// users' MOVE, COPY, APPEND and STORE to the learner (after the store
// carried them out; nothing else changes).
func (l *Learner) Wrap(s Opener) Opener { return &learningStore{inner: s, l: l} }

type learningStore struct {
	inner Opener
	l     *Learner
}

func (s *learningStore) Open(ctx context.Context, name string) (mailstore.Account, error) {
	a, err := s.inner.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &learningAccount{Account: a, l: s.l}, nil
}

// learningAccount is an account whose changing commands are reported to
// the learner. Every other method is the account's own.
type learningAccount struct {
	mailstore.Account
	l *Learner
}

func (a *learningAccount) Copy(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	res, err := a.Account.Copy(ctx, mailboxID, uids, dest)
	a.copied(mailboxID, res, err)
	return res, err
}

func (a *learningAccount) Move(ctx context.Context, mailboxID int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	res, err := a.Account.Move(ctx, mailboxID, uids, dest)
	a.copied(mailboxID, res, err)
	return res, err
}

func (a *learningAccount) copied(src int64, res mailstore.CopyResult, err error) {
	if err != nil || len(res.DestUIDs) == 0 || src == res.DestMailboxID {
		return
	}
	a.l.enqueue(action{account: a.Name(), kind: actCopy, src: src, dest: res.DestMailboxID, uids: slices.Clone(res.DestUIDs)})
}

func (a *learningAccount) Append(ctx context.Context, mailbox string, r io.Reader, opts mailstore.AppendOptions) (mailstore.AppendResult, error) {
	res, err := a.Account.Append(ctx, mailbox, r, opts)
	if err == nil {
		a.l.enqueue(action{account: a.Name(), kind: actAppend, dest: res.MailboxID, uids: []imap.UID{res.UID}})
	}
	return res, err
}

func (a *learningAccount) StoreFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag, unchangedSince uint64) (mailstore.StoreResult, error) {
	res, err := a.Account.StoreFlags(ctx, mailboxID, uids, op, flags, unchangedSince)
	if err != nil || op == mailstore.FlagsRemove {
		return res, err
	}
	spam, ham := hasFlag(flags, JunkKeyword), hasFlag(flags, NotJunkKeyword)
	if spam == ham { // neither, or both: nothing the user said
		return res, err
	}
	class, kw := Spam, JunkKeyword
	if ham {
		class, kw = Ham, NotJunkKeyword
	}
	var learn []imap.UID
	for _, u := range res.Updated {
		if hasFlag(u.Flags, imap.Flag(kw)) {
			learn = append(learn, u.UID)
		}
	}
	if len(learn) > 0 {
		a.l.enqueue(action{account: a.Name(), kind: actFlag, dest: mailboxID, uids: learn, class: class})
	}
	return res, err
}

func hasFlag(flags []imap.Flag, kw imap.Flag) bool {
	return slices.ContainsFunc(flags, func(f imap.Flag) bool { return strings.EqualFold(string(f), string(kw)) })
}
