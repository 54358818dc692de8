package pop3d

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
)

// fakeStore is an in-memory Store: the fuzz target's (fast, no disk) and
// the one of tests that inject failures. Its accounts have exactly the
// methods of Account; mail arrives through deliver. TestFakeStoreAgrees
// holds it to what the maildir store does.
type fakeStore struct {
	mu       sync.Mutex
	accounts map[string]*fakeAccountData
	// failOpenMessage, when set, is returned by OpenMessage.
	failOpenMessage error
	// failExpunge, when set, is returned by Expunge.
	failExpunge error
}

var (
	_ Store   = (*fakeStore)(nil)
	_ Account = (*fakeAccount)(nil)
)

type fakeAccountData struct {
	uidValidity uint32
	uidNext     imap.UID
	modseq      uint64
	msgs        []fakeMsg
	locked      bool
}

type fakeMsg struct {
	uid   imap.UID
	flags []imap.Flag
	data  []byte
}

func newFakeStore() *fakeStore { return &fakeStore{accounts: make(map[string]*fakeAccountData)} }

// data returns the account's data, creating it; the caller holds s.mu.
func (s *fakeStore) data(name string) *fakeAccountData {
	d := s.accounts[name]
	if d == nil {
		d = &fakeAccountData{uidValidity: 1700000000, uidNext: 1}
		s.accounts[name] = d
	}
	return d
}

func (s *fakeStore) Open(ctx context.Context, name string) (Account, error) {
	if name == "" {
		return nil, mailstore.ErrBadAccountName
	}
	s.mu.Lock()
	s.data(name)
	s.mu.Unlock()
	return &fakeAccount{store: s, name: name}, nil
}

// deliver appends a message to the account's INBOX, as smtpd would.
func (s *fakeStore) deliver(name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.data(name)
	d.msgs = append(d.msgs, fakeMsg{uid: d.uidNext, data: slices.Clone(data)})
	d.uidNext++
	d.modseq++
}

// fakeAccount is a handle on one of fakeStore's accounts.
type fakeAccount struct {
	store *fakeStore
	name  string
}

const fakeInboxID = 1

func (a *fakeAccount) Close() error { return nil }

func (a *fakeAccount) Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error) {
	if name != mailstore.Inbox {
		return mailstore.Mailbox{}, mailstore.ErrNoSuchMailbox
	}
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	return mailstore.Mailbox{ID: fakeInboxID, Name: mailstore.Inbox, UIDValidity: a.store.data(a.name).uidValidity}, nil
}

func (a *fakeAccount) Snapshot(ctx context.Context, mailboxID int64) (mailstore.Snapshot, error) {
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	d := a.store.data(a.name)
	snap := mailstore.Snapshot{
		Mailbox:       mailstore.Mailbox{ID: fakeInboxID, Name: mailstore.Inbox, UIDValidity: d.uidValidity},
		UIDNext:       d.uidNext,
		HighestModSeq: d.modseq,
	}
	for _, m := range d.msgs {
		snap.Messages = append(snap.Messages, mailstore.Summary{UID: m.uid, Flags: slices.Clone(m.flags)})
	}
	return snap, nil
}

func (a *fakeAccount) Fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error) {
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	var out []mailstore.MessageInfo
	for _, m := range a.store.data(a.name).msgs {
		if uids.Contains(m.uid) {
			out = append(out, mailstore.MessageInfo{UID: m.uid, Flags: slices.Clone(m.flags), Size: int64(len(m.data))})
		}
	}
	return out, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

func (a *fakeAccount) OpenMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	if a.store.failOpenMessage != nil {
		return nil, 0, a.store.failOpenMessage
	}
	for _, m := range a.store.data(a.name).msgs {
		if m.uid == uid {
			return nopCloser{bytes.NewReader(m.data)}, int64(len(m.data)), nil
		}
	}
	return nil, 0, mailstore.ErrNoSuchMessage
}

func (a *fakeAccount) StoreFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag, unchangedSince uint64) (mailstore.StoreResult, error) {
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	d := a.store.data(a.name)
	var res mailstore.StoreResult
	for i := range d.msgs {
		m := &d.msgs[i]
		if !uids.Contains(m.uid) {
			continue
		}
		if op != mailstore.FlagsAdd {
			return res, errors.ErrUnsupported
		}
		for _, f := range flags {
			if !slices.Contains(m.flags, f) {
				m.flags = append(m.flags, f)
			}
		}
		d.modseq++
		res.Updated = append(res.Updated, mailstore.FlagUpdate{UID: m.uid, ModSeq: d.modseq, Flags: slices.Clone(m.flags)})
	}
	return res, nil
}

func (a *fakeAccount) Expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error) {
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	if a.store.failExpunge != nil {
		return nil, a.store.failExpunge
	}
	d := a.store.data(a.name)
	var gone []imap.UID
	d.msgs = slices.DeleteFunc(d.msgs, func(m fakeMsg) bool {
		if slices.Contains(m.flags, imap.FlagDeleted) && (uids == nil || uids.Contains(m.uid)) {
			gone = append(gone, m.uid)
			return true
		}
		return false
	})
	return gone, nil
}

func (a *fakeAccount) LockMaildrop(ctx context.Context) (func(), error) {
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	d := a.store.data(a.name)
	if d.locked {
		return nil, mailstore.ErrInUse
	}
	d.locked = true
	var once sync.Once
	return func() {
		once.Do(func() {
			a.store.mu.Lock()
			d.locked = false
			a.store.mu.Unlock()
		})
	}, nil
}

// fakeAuth accepts the passwords in users; throttled makes every attempt
// fail with auth.ErrThrottled.
type fakeAuth struct {
	mu        sync.Mutex
	users     map[string]string
	throttled bool
	attempts  int
}

func newFakeAuth(users map[string]string) *fakeAuth { return &fakeAuth{users: users} }

func (f *fakeAuth) Authenticate(ctx context.Context, username, password string, remote netip.Addr) (auth.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.throttled {
		return auth.User{}, auth.ErrThrottled
	}
	if p, ok := f.users[username]; !ok || p != password {
		return auth.User{}, auth.ErrBadCredentials
	}
	return auth.User{ID: 1, Address: username}, nil
}

func (f *fakeAuth) Mechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (f *fakeAuth) NewSASLServer(ctx context.Context, mech string, remote netip.Addr, done func(auth.User)) (sasl.Server, error) {
	check := func(user, pass string) error {
		u, err := f.Authenticate(ctx, user, pass, remote)
		if err != nil {
			return err
		}
		done(u)
		return nil
	}
	switch mech {
	case sasl.Plain:
		return plainServer{sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return auth.ErrBadCredentials
			}
			return check(user, pass)
		})}, nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, errors.New("unsupported mechanism")
}

// plainServer reports a malformed response as bad credentials, as
// auth.DB's does.
type plainServer struct{ sasl.Server }

func (p plainServer) Next(resp []byte) ([]byte, bool, error) {
	c, done, err := p.Server.Next(resp)
	if err != nil && !errors.Is(err, auth.ErrBadCredentials) && !errors.Is(err, auth.ErrThrottled) {
		err = fmt.Errorf("%w: %v", auth.ErrBadCredentials, err)
	}
	return c, done, err
}

// loginServer is the LOGIN mechanism's server side (draft-murchison-sasl
// -login), enough to drive pop3d's continuation handling.
type loginServer struct {
	step       int
	user       string
	check      func(user, pass string) error
	challenges [][]byte
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		l.user = string(resp)
		l.step++
		return []byte("Password:"), false, nil
	case 1:
		l.user = string(resp)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// TestFakeStoreAgrees runs what pop3d relies on (the Account methods it
// declares, as mailstore/storetest states them) against the fake and the
// maildir store: a test passing on the fake must mean what it would mean
// on the real store.
func TestFakeStoreAgrees(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (Store, func(user string, data []byte))
	}{
		{"fake", func(t *testing.T) (Store, func(string, []byte)) {
			fs := newFakeStore()
			return fs, fs.deliver
		}},
		{"maildir", func(t *testing.T) (Store, func(string, []byte)) {
			disk := newTestStore(t)
			return MailStore(disk), func(user string, data []byte) {
				acct, err := disk.Open(t.Context(), user)
				if err != nil {
					t.Fatal(err)
				}
				defer acct.Close()
				if _, err := acct.Deliver(t.Context(), bytes.NewReader(data), mailstore.DeliverOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, deliver := tc.open(t)
			checkStore(t, store, deliver)
		})
	}
}

func checkStore(t *testing.T, store Store, deliver func(user string, data []byte)) {
	ctx := t.Context()
	if _, err := store.Open(ctx, ""); !errors.Is(err, mailstore.ErrBadAccountName) {
		t.Errorf("Open(\"\"): %v, want ErrBadAccountName", err)
	}
	msgs := [][]byte{msg("a", "one\r\n"), msg("b", ".two\r\n"), msg("c", "three\r\n")}
	for _, m := range msgs {
		deliver(testUser, m)
	}
	acct, err := store.Open(ctx, testUser)
	if err != nil {
		t.Fatal(err)
	}
	defer acct.Close()
	if _, err := acct.Mailbox(ctx, "Nope"); !errors.Is(err, mailstore.ErrNoSuchMailbox) {
		t.Errorf("Mailbox(Nope): %v, want ErrNoSuchMailbox", err)
	}
	mb, err := acct.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := acct.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Messages) != len(msgs) || snap.Mailbox.UIDValidity != mb.UIDValidity || snap.UIDNext <= snap.Messages[len(msgs)-1].UID {
		t.Fatalf("Snapshot = %+v, want %d messages below UIDNEXT", snap, len(msgs))
	}
	var all imap.UIDSet
	uids := make([]imap.UID, len(msgs))
	for i, m := range snap.Messages {
		uids[i] = m.UID
		all.AddNum(m.UID)
		if (i > 0 && m.UID <= uids[i-1]) || len(m.Flags) != 0 {
			t.Errorf("Snapshot message %d: %+v, want ascending UIDs without flags", i, m)
		}
	}
	all.AddNum(uids[len(uids)-1] + 10) // no such UID: skipped
	infos, err := acct.Fetch(ctx, mb.ID, all, mailstore.FetchOptions{})
	if err != nil || len(infos) != len(msgs) {
		t.Fatalf("Fetch: %d rows, %v; want %d", len(infos), err, len(msgs))
	}
	for i, mi := range infos {
		if mi.UID != uids[i] || mi.Size != int64(len(msgs[i])) {
			t.Errorf("Fetch row %d: UID %d size %d, want %d and %d", i, mi.UID, mi.Size, uids[i], len(msgs[i]))
		}
		r, size, err := acct.OpenMessage(ctx, mb.ID, uids[i])
		if err != nil {
			t.Fatalf("OpenMessage(%d): %v", uids[i], err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || size != int64(len(msgs[i])) || !bytes.Equal(b, msgs[i]) {
			t.Errorf("OpenMessage(%d): %d %q %v, want %q", uids[i], size, b, err, msgs[i])
		}
	}
	if _, _, err := acct.OpenMessage(ctx, mb.ID, uids[len(uids)-1]+10); !errors.Is(err, mailstore.ErrNoSuchMessage) {
		t.Errorf("OpenMessage of no such UID: %v, want ErrNoSuchMessage", err)
	}

	// RETR's \Seen, then DELE of the last two with UPDATE expunging only
	// the second.
	res, err := acct.StoreFlags(ctx, mb.ID, imap.UIDSetNum(uids[0]), mailstore.FlagsAdd, []imap.Flag{imap.FlagSeen}, 0)
	if err != nil || len(res.Updated) != 1 || res.Updated[0].UID != uids[0] || !slices.Equal(res.Updated[0].Flags, []imap.Flag{imap.FlagSeen}) {
		t.Errorf("StoreFlags \\Seen: %+v %v", res, err)
	}
	if _, err := acct.StoreFlags(ctx, mb.ID, imap.UIDSetNum(uids[1], uids[2]), mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	only := imap.UIDSetNum(uids[1])
	if gone, err := acct.Expunge(ctx, mb.ID, &only); err != nil || !slices.Equal(gone, []imap.UID{uids[1]}) {
		t.Errorf("Expunge(%d): %v %v", uids[1], gone, err)
	}
	snap, err = acct.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Messages) != 2 || snap.Messages[0].UID != uids[0] || !slices.Equal(snap.Messages[0].Flags, []imap.Flag{imap.FlagSeen}) ||
		snap.Messages[1].UID != uids[2] || !slices.Equal(snap.Messages[1].Flags, []imap.Flag{imap.FlagDeleted}) {
		t.Errorf("after expunge: %+v", snap.Messages)
	}

	// The maildrop lock: exclusive, also through one handle; unlock twice
	// frees it once.
	other, err := store.Open(ctx, testUser)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	unlock, err := acct.LockMaildrop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []Account{acct, other} {
		if _, err := a.LockMaildrop(ctx); !errors.Is(err, mailstore.ErrInUse) {
			t.Errorf("second LockMaildrop: %v, want ErrInUse", err)
		}
	}
	unlock()
	unlock2, err := other.LockMaildrop(ctx)
	if err != nil {
		t.Fatalf("LockMaildrop after unlock: %v", err)
	}
	unlock()
	if _, err := acct.LockMaildrop(ctx); !errors.Is(err, mailstore.ErrInUse) {
		t.Errorf("a second unlock freed another session's lock: %v", err)
	}
	unlock2()
}
