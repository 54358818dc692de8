package imapd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// fakeStore is a small in-memory mailstore.Store used by unit tests at the
// boundary (the real store is mailstore/maildir). Changes are "committed"
// under one lock and events published in order, as the contract says.
type fakeStore struct {
	mu       sync.Mutex
	accounts map[string]*fakeAccount
	quota    int64
}

func newFakeStore() *fakeStore { return &fakeStore{accounts: make(map[string]*fakeAccount)} }

type fakeAccount struct {
	store    *fakeStore
	name     string
	nextID   int64
	boxes    map[string]*fakeBox // by name
	subs     map[string]bool
	watchers map[int]func(mailstore.Event)
	nextW    int
}

type fakeBox struct {
	mb      mailstore.Mailbox
	uidNext imap.UID
	modseq  uint64
	msgs    []*fakeMsg
}

type fakeMsg struct {
	uid    imap.UID
	modseq uint64
	flags  []imap.Flag
	date   time.Time
	body   []byte
}

type fakeHandle struct {
	a      *fakeAccount
	closed bool
}

func (s *fakeStore) Open(ctx context.Context, name string) (mailstore.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" || strings.ContainsAny(name, "/\\") {
		return nil, mailstore.ErrBadAccountName
	}
	a, ok := s.accounts[name]
	if !ok {
		a = &fakeAccount{store: s, name: name, boxes: map[string]*fakeBox{}, subs: map[string]bool{}, watchers: map[int]func(mailstore.Event){}}
		for _, d := range mailstore.DefaultMailboxes {
			a.createLocked(d.Name, d.SpecialUse)
			a.subs[d.Name] = true
		}
		s.accounts[name] = a
	}
	return &fakeHandle{a: a}, nil
}

func (s *fakeStore) Remove(ctx context.Context, name string) error { return nil }
func (s *fakeStore) Close() error                                  { return nil }

func (a *fakeAccount) createLocked(name, special string) *fakeBox {
	a.nextID++
	b := &fakeBox{mb: mailstore.Mailbox{ID: a.nextID, Name: name, SpecialUse: special, UIDValidity: uint32(1000 + a.nextID)}, uidNext: 1, modseq: 1}
	a.boxes[name] = b
	return b
}

func (a *fakeAccount) byID(id int64) (*fakeBox, error) {
	for _, b := range a.boxes {
		if b.mb.ID == id {
			return b, nil
		}
	}
	return nil, mailstore.ErrNoSuchMailbox
}

func (a *fakeAccount) byName(name string) (*fakeBox, error) {
	if strings.EqualFold(name, mailstore.Inbox) {
		name = mailstore.Inbox
	}
	if b, ok := a.boxes[name]; ok {
		return b, nil
	}
	return nil, mailstore.ErrNoSuchMailbox
}

func (a *fakeAccount) publish(ev mailstore.Event) {
	keys := make([]int, 0, len(a.watchers))
	for k := range a.watchers {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		a.watchers[k](ev)
	}
}

func (h *fakeHandle) lock() (*fakeAccount, error) {
	h.a.store.mu.Lock()
	if h.closed {
		h.a.store.mu.Unlock()
		return nil, mailstore.ErrClosed
	}
	return h.a, nil
}
func (h *fakeHandle) unlock() { h.a.store.mu.Unlock() }

func (h *fakeHandle) Name() string { return h.a.name }
func (h *fakeHandle) Close() error {
	h.a.store.mu.Lock()
	h.closed = true
	h.a.store.mu.Unlock()
	return nil
}

func (h *fakeHandle) ListMailboxes(ctx context.Context) ([]mailstore.Mailbox, error) {
	a, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	var out []mailstore.Mailbox
	for _, b := range a.boxes {
		mb := b.mb
		mb.Subscribed = a.subs[mb.Name]
		out = append(out, mb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (h *fakeHandle) Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error) {
	a, err := h.lock()
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	defer h.unlock()
	b, err := a.byName(name)
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	mb := b.mb
	mb.Subscribed = a.subs[mb.Name]
	return mb, nil
}

func (h *fakeHandle) CreateMailbox(ctx context.Context, name, special string) (mailstore.Mailbox, error) {
	a, err := h.lock()
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	defer h.unlock()
	if _, err := a.byName(name); err == nil {
		return mailstore.Mailbox{}, mailstore.ErrMailboxExists
	}
	levels := strings.Split(name, "/")
	for i := 1; i < len(levels); i++ {
		p := strings.Join(levels[:i], "/")
		if _, ok := a.boxes[p]; !ok {
			a.createLocked(p, "")
		}
	}
	b := a.createLocked(name, special)
	a.publish(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: b.mb.ID})
	return b.mb, nil
}

func (h *fakeHandle) DeleteMailbox(ctx context.Context, name string) error {
	a, err := h.lock()
	if err != nil {
		return err
	}
	defer h.unlock()
	b, err := a.byName(name)
	if err != nil {
		return err
	}
	if b.mb.Name == mailstore.Inbox {
		return mailstore.ErrNotAllowed
	}
	for n := range a.boxes {
		if strings.HasPrefix(n, b.mb.Name+"/") {
			return mailstore.ErrHasChildren
		}
	}
	delete(a.boxes, b.mb.Name)
	a.publish(mailstore.Event{Kind: mailstore.EventMailboxes, MailboxID: b.mb.ID})
	return nil
}

func (h *fakeHandle) RenameMailbox(ctx context.Context, oldName, newName string) error {
	a, err := h.lock()
	if err != nil {
		return err
	}
	defer h.unlock()
	b, err := a.byName(oldName)
	if err != nil {
		return err
	}
	if _, err := a.byName(newName); err == nil {
		return mailstore.ErrMailboxExists
	}
	if strings.HasPrefix(newName, b.mb.Name+"/") {
		return mailstore.ErrNotAllowed
	}
	if b.mb.Name == mailstore.Inbox {
		nb := a.createLocked(newName, "")
		for _, m := range b.msgs {
			nb.modseq++
			m.uid, m.modseq = nb.uidNext, nb.modseq
			nb.uidNext++
			nb.msgs = append(nb.msgs, m)
		}
		b.msgs = nil
		b.modseq++
		return nil
	}
	oldName = b.mb.Name
	var moved []*fakeBox
	for n, c := range a.boxes {
		if n == oldName || strings.HasPrefix(n, oldName+"/") {
			moved = append(moved, c)
		}
	}
	for _, c := range moved {
		delete(a.boxes, c.mb.Name)
		c.mb.Name = newName + strings.TrimPrefix(c.mb.Name, oldName)
		a.boxes[c.mb.Name] = c
	}
	return nil
}

func (h *fakeHandle) SetSubscribed(ctx context.Context, name string, on bool) error {
	a, err := h.lock()
	if err != nil {
		return err
	}
	defer h.unlock()
	if on {
		a.subs[name] = true
	} else {
		delete(a.subs, name)
	}
	return nil
}

func (h *fakeHandle) Subscriptions(ctx context.Context) ([]string, error) {
	a, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	var out []string
	for n := range a.subs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func (h *fakeHandle) Status(ctx context.Context, id int64) (mailstore.Status, error) {
	a, err := h.lock()
	if err != nil {
		return mailstore.Status{}, err
	}
	defer h.unlock()
	b, err := a.byID(id)
	if err != nil {
		return mailstore.Status{}, err
	}
	st := mailstore.Status{Messages: uint32(len(b.msgs)), UIDNext: b.uidNext, UIDValidity: b.mb.UIDValidity, HighestModSeq: b.modseq}
	for _, m := range b.msgs {
		if !slices.Contains(m.flags, imap.FlagSeen) {
			st.Unseen++
		}
		if slices.Contains(m.flags, imap.FlagDeleted) {
			st.Deleted++
		}
		st.Size += int64(len(m.body))
	}
	return st, nil
}

func (h *fakeHandle) Snapshot(ctx context.Context, id int64) (mailstore.Snapshot, error) {
	a, err := h.lock()
	if err != nil {
		return mailstore.Snapshot{}, err
	}
	defer h.unlock()
	b, err := a.byID(id)
	if err != nil {
		return mailstore.Snapshot{}, err
	}
	snap := mailstore.Snapshot{Mailbox: b.mb, UIDNext: b.uidNext, HighestModSeq: b.modseq}
	for _, m := range b.msgs {
		snap.Messages = append(snap.Messages, mailstore.Summary{UID: m.uid, ModSeq: m.modseq, Flags: slices.Clone(m.flags)})
	}
	return snap, nil
}

func (h *fakeHandle) Fetch(ctx context.Context, id int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error) {
	a, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	b, err := a.byID(id)
	if err != nil {
		return nil, err
	}
	var out []mailstore.MessageInfo
	for _, m := range b.msgs {
		if !uids.Contains(m.uid) {
			continue
		}
		mi := mailstore.MessageInfo{UID: m.uid, ModSeq: m.modseq, Flags: slices.Clone(m.flags), InternalDate: m.date, Size: int64(len(m.body))}
		if opts.Envelope || opts.BodyStructure {
			// The same bounded parser as the real store.
			root, err := mimeparse.Parse(bytes.NewReader(m.body))
			if err != nil {
				return nil, err
			}
			if opts.Envelope {
				mi.Envelope = root.Envelope
			}
			if opts.BodyStructure {
				mi.BodyStructure = root.BodyStructure()
			}
		}
		out = append(out, mi)
	}
	return out, nil
}

type nopSeekCloser struct{ *bytes.Reader }

func (nopSeekCloser) Close() error { return nil }

func (h *fakeHandle) OpenMessage(ctx context.Context, id int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	a, err := h.lock()
	if err != nil {
		return nil, 0, err
	}
	defer h.unlock()
	b, err := a.byID(id)
	if err != nil {
		return nil, 0, err
	}
	for _, m := range b.msgs {
		if m.uid == uid {
			return nopSeekCloser{bytes.NewReader(m.body)}, int64(len(m.body)), nil
		}
	}
	return nil, 0, mailstore.ErrNoSuchMessage
}

func (h *fakeHandle) Search(ctx context.Context, id int64, c *imap.SearchCriteria) ([]imap.UID, error) {
	a, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	b, err := a.byID(id)
	if err != nil {
		return nil, err
	}
	var out []imap.UID
	for _, m := range b.msgs {
		ok, err := fakeMatch(m, c)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, m.uid)
		}
	}
	return out, nil
}

func fakeMatch(m *fakeMsg, c *imap.SearchCriteria) (bool, error) {
	if len(c.SeqNum) > 0 {
		return false, fmt.Errorf("fake store: sequence numbers in search")
	}
	for _, set := range c.UID {
		if !set.Contains(m.uid) {
			return false, nil
		}
	}
	for _, f := range c.Flag {
		if !slices.Contains(m.flags, f) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if slices.Contains(m.flags, f) {
			return false, nil
		}
	}
	if c.Larger > 0 && int64(len(m.body)) <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && int64(len(m.body)) >= c.Smaller {
		return false, nil
	}
	lower := strings.ToLower(string(m.body))
	for _, hf := range c.Header {
		if !strings.Contains(lower, strings.ToLower(hf.Key)+":") || !strings.Contains(lower, strings.ToLower(hf.Value)) {
			return false, nil
		}
	}
	for _, t := range append(slices.Clone(c.Body), c.Text...) {
		if !strings.Contains(lower, strings.ToLower(t)) {
			return false, nil
		}
	}
	for i := range c.Not {
		ok, err := fakeMatch(m, &c.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for _, or := range c.Or {
		ok1, err := fakeMatch(m, &or[0])
		if err != nil {
			return false, err
		}
		ok2, err := fakeMatch(m, &or[1])
		if err != nil {
			return false, err
		}
		if !ok1 && !ok2 {
			return false, nil
		}
	}
	return true, nil
}

func (h *fakeHandle) StoreFlags(ctx context.Context, id int64, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag, unchangedSince uint64) (mailstore.StoreResult, error) {
	a, err := h.lock()
	if err != nil {
		return mailstore.StoreResult{}, err
	}
	defer h.unlock()
	b, err := a.byID(id)
	if err != nil {
		return mailstore.StoreResult{}, err
	}
	var res mailstore.StoreResult
	for _, m := range b.msgs {
		if !uids.Contains(m.uid) {
			continue
		}
		nf := slices.Clone(m.flags)
		switch op {
		case mailstore.FlagsAdd:
			for _, f := range flags {
				if !slices.Contains(nf, f) {
					nf = append(nf, f)
				}
			}
		case mailstore.FlagsRemove:
			nf = slices.DeleteFunc(nf, func(f imap.Flag) bool { return slices.Contains(flags, f) })
		case mailstore.FlagsSet:
			nf = slices.Clone(flags)
		}
		changed := len(nf) != len(m.flags)
		for _, f := range nf {
			changed = changed || !slices.Contains(m.flags, f)
		}
		if changed {
			b.modseq++
			m.flags, m.modseq = nf, b.modseq
			a.publish(mailstore.Event{Kind: mailstore.EventFlags, MailboxID: id, UID: m.uid, ModSeq: b.modseq, Flags: slices.Clone(nf)})
		}
		res.Updated = append(res.Updated, mailstore.FlagUpdate{UID: m.uid, ModSeq: m.modseq, Flags: slices.Clone(m.flags)})
	}
	return res, nil
}

func (h *fakeHandle) Expunge(ctx context.Context, id int64, uids *imap.UIDSet) ([]imap.UID, error) {
	a, err := h.lock()
	if err != nil {
		return nil, err
	}
	defer h.unlock()
	b, err := a.byID(id)
	if err != nil {
		return nil, err
	}
	return a.expungeLocked(b, func(m *fakeMsg) bool {
		return slices.Contains(m.flags, imap.FlagDeleted) && (uids == nil || uids.Contains(m.uid))
	}), nil
}

func (a *fakeAccount) expungeLocked(b *fakeBox, match func(*fakeMsg) bool) []imap.UID {
	var gone []imap.UID
	var keep []*fakeMsg
	for _, m := range b.msgs {
		if match(m) {
			gone = append(gone, m.uid)
		} else {
			keep = append(keep, m)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	b.msgs = keep
	b.modseq++
	for _, uid := range gone {
		a.publish(mailstore.Event{Kind: mailstore.EventExpunge, MailboxID: b.mb.ID, UID: uid, ModSeq: b.modseq})
	}
	return gone
}

func (a *fakeAccount) appendLocked(b *fakeBox, body []byte, flags []imap.Flag, date time.Time) mailstore.AppendResult {
	if date.IsZero() {
		date = time.Now()
	}
	b.modseq++
	m := &fakeMsg{uid: b.uidNext, modseq: b.modseq, flags: slices.Clone(flags), date: date, body: body}
	b.uidNext++
	b.msgs = append(b.msgs, m)
	a.publish(mailstore.Event{Kind: mailstore.EventAppend, MailboxID: b.mb.ID, UID: m.uid, ModSeq: m.modseq, Flags: slices.Clone(flags)})
	return mailstore.AppendResult{MailboxID: b.mb.ID, UIDValidity: b.mb.UIDValidity, UID: m.uid, Size: int64(len(body))}
}

func (a *fakeAccount) usageLocked() int64 {
	var n int64
	for _, b := range a.boxes {
		for _, m := range b.msgs {
			n += int64(len(m.body))
		}
	}
	return n
}

func (h *fakeHandle) copyOrMove(id int64, uids imap.UIDSet, dest string, move bool) (mailstore.CopyResult, error) {
	a, err := h.lock()
	if err != nil {
		return mailstore.CopyResult{}, err
	}
	defer h.unlock()
	src, err := a.byID(id)
	if err != nil {
		return mailstore.CopyResult{}, err
	}
	dst, err := a.byName(dest)
	if err != nil {
		return mailstore.CopyResult{}, err
	}
	res := mailstore.CopyResult{DestMailboxID: dst.mb.ID, DestUIDValidity: dst.mb.UIDValidity}
	var size int64
	for _, m := range src.msgs {
		if uids.Contains(m.uid) {
			size += int64(len(m.body))
		}
	}
	if !move && a.store.quota > 0 && a.usageLocked()+size > a.store.quota {
		return mailstore.CopyResult{}, mailstore.ErrOverQuota
	}
	for _, m := range slices.Clone(src.msgs) {
		if !uids.Contains(m.uid) {
			continue
		}
		r := a.appendLocked(dst, m.body, m.flags, m.date)
		res.SourceUIDs = append(res.SourceUIDs, m.uid)
		res.DestUIDs = append(res.DestUIDs, r.UID)
	}
	if move {
		a.expungeLocked(src, func(m *fakeMsg) bool { return uids.Contains(m.uid) })
	}
	return res, nil
}

func (h *fakeHandle) Copy(ctx context.Context, id int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	return h.copyOrMove(id, uids, dest, false)
}

func (h *fakeHandle) Move(ctx context.Context, id int64, uids imap.UIDSet, dest string) (mailstore.CopyResult, error) {
	return h.copyOrMove(id, uids, dest, true)
}

func (h *fakeHandle) Append(ctx context.Context, mailbox string, r io.Reader, opts mailstore.AppendOptions) (mailstore.AppendResult, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	a, err := h.lock()
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	defer h.unlock()
	b, err := a.byName(mailbox)
	if err != nil {
		return mailstore.AppendResult{}, err
	}
	if a.store.quota > 0 && a.usageLocked()+int64(len(body)) > a.store.quota {
		return mailstore.AppendResult{}, mailstore.ErrOverQuota
	}
	return a.appendLocked(b, body, opts.Flags, opts.InternalDate), nil
}

func (h *fakeHandle) Deliver(ctx context.Context, r io.Reader, opts mailstore.DeliverOptions) (mailstore.AppendResult, error) {
	name := opts.Mailbox
	if name == "" {
		name = mailstore.Inbox
	}
	return h.Append(ctx, name, r, mailstore.AppendOptions{Flags: opts.Flags})
}

func (h *fakeHandle) Usage(ctx context.Context) (int64, int64, error) {
	a, err := h.lock()
	if err != nil {
		return 0, 0, err
	}
	defer h.unlock()
	return a.usageLocked(), a.store.quota, nil
}

func (h *fakeHandle) Watch(fn func(mailstore.Event)) func() {
	a := h.a
	a.store.mu.Lock()
	a.nextW++
	k := a.nextW
	a.watchers[k] = fn
	a.store.mu.Unlock()
	return func() {
		a.store.mu.Lock()
		delete(a.watchers, k)
		a.store.mu.Unlock()
	}
}

func (h *fakeHandle) LockMaildrop(ctx context.Context) (func(), error) { return func() {}, nil }
