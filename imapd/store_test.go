package imapd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// newTestStore is the store imapd's tests run on: the real backend
// (mailstore/maildir) in a temporary directory. newTestServer closes it.
func newTestStore(t testing.TB) mailstore.Store {
	t.Helper()
	s, err := maildir.Open(context.Background(), t.TempDir(), maildir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// failingStore wraps the real store for tests that need a store failure:
// accounts it opens return the error set for a method instead of calling
// the real one. Every other method is the real store's.
type failingStore struct {
	mailstore.Store

	mu   sync.Mutex
	fail map[string]error // by method name
	// appendsBeforeFail: while "Append" is set to fail, this many calls
	// still succeed first.
	appendsBeforeFail int
}

// withFailingStore runs the test server on fs wrapped around its store.
func withFailingStore(fs *failingStore) testOption {
	return func(o *Options) {
		fs.Store = o.Store.(mailstore.Store)
		o.Store = fs
	}
}

func (s *failingStore) setFail(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == nil {
		s.fail = map[string]error{}
	}
	s.fail[method] = err
}

func (s *failingStore) failure(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail[method]
}

func (s *failingStore) Open(ctx context.Context, name string) (mailstore.Account, error) {
	a, err := s.Store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &failingAccount{Account: a, s: s}, nil
}

// failingAccount is a real account handle with failures injected.
type failingAccount struct {
	mailstore.Account
	s *failingStore
}

func (a *failingAccount) Status(ctx context.Context, mailboxID int64) (mailstore.Status, error) {
	if err := a.s.failure("Status"); err != nil {
		return mailstore.Status{}, err
	}
	return a.Account.Status(ctx, mailboxID)
}

func (a *failingAccount) OpenMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error) {
	if err := a.s.failure("OpenMessage"); err != nil {
		return nil, 0, err
	}
	return a.Account.OpenMessage(ctx, mailboxID, uid)
}

func (a *failingAccount) Append(ctx context.Context, mailbox string, r io.Reader, opts mailstore.AppendOptions) (mailstore.AppendResult, error) {
	if err := a.s.failure("Append"); err != nil {
		a.s.mu.Lock()
		ok := a.s.appendsBeforeFail > 0
		a.s.appendsBeforeFail--
		a.s.mu.Unlock()
		if !ok {
			return mailstore.AppendResult{}, err
		}
	}
	return a.Account.Append(ctx, mailbox, r, opts)
}

func (a *failingAccount) Expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error) {
	if err := a.s.failure("Expunge"); err != nil {
		return nil, err
	}
	return a.Account.Expunge(ctx, mailboxID, uids)
}

// TestInternalErrorsDoNotLeak: a store failure the client cannot act on is
// NO [UNAVAILABLE] with a generic text; the error itself goes to the log.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	el := &errorLog{}
	fs := &failingStore{}
	ts := newTestServer(t, withFailingStore(fs), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(el, &slog.HandlerOptions{Level: slog.LevelError}))
	})
	ts.deliver(t, "alice@example.org", "", testMessage(1))
	rc := ts.raw(t)
	if _, d := rc.cmd("LOGIN alice@example.org alicepw"); !strings.HasPrefix(d, "OK") {
		t.Fatalf("LOGIN: %q", d)
	}
	if _, d := rc.cmd("SELECT INBOX"); !strings.HasPrefix(d, "OK") {
		t.Fatalf("SELECT: %q", d)
	}
	const secret = "/secret/path"
	for _, tc := range []struct {
		name, method, cmd string
	}{
		{"fetch body", "OpenMessage", "FETCH 1 BODY[]"},
		{"status", "Status", "STATUS Archive (MESSAGES)"},
		{"expunge", "Expunge", "EXPUNGE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.t = t
			fs.setFail(tc.method, fmt.Errorf("open %s/cur/1: input/output error", secret))
			defer fs.setFail(tc.method, nil)
			untagged, d := rc.cmd("%s", tc.cmd)
			if !strings.HasPrefix(d, "NO [UNAVAILABLE]") {
				t.Errorf("%s: %q, want NO [UNAVAILABLE]", tc.cmd, d)
			}
			if all := strings.Join(append(untagged, d), "\n"); strings.Contains(all, secret) {
				t.Errorf("internal error leaked: %q", all)
			}
			if log := el.take(); !strings.Contains(log, secret) {
				t.Errorf("the error is not in the log: %q", log)
			}
		})
	}
}
