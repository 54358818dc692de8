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

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
)

// fakeStore is an in-memory Store: the fuzz target's (fast, no disk) and
// the one of tests that inject failures. Its accounts have exactly the
// methods of Account; mail arrives through deliver.
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
