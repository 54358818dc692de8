package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/posthouse/posthouse/internal/durable"
	"github.com/posthouse/posthouse/mailstore"
)

// Options configure a Store.
type Options struct {
	Logger *slog.Logger
	// Quota returns an account's quota in bytes; 0 or a nil func means
	// unlimited. It is called outside the store's locks.
	Quota func(ctx context.Context, account string) (int64, error)
	// MessageQuota returns the most messages an account may hold; 0 or a
	// nil func means unlimited. Called as Quota is.
	MessageQuota func(ctx context.Context, account string) (int64, error)
	// MaxIdleAccounts is how many accounts without open handles stay open
	// (their index and prepared statements) to spare the next delivery the
	// cost of opening them. Default 64.
	MaxIdleAccounts int
}

// Store is the Maildir+SQLite mailstore.Store.
type Store struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	closed   bool
	accounts map[string]*account // by account name, open or opening
	idle     []*account          // refs == 0, oldest first
	// reconciled records accounts reconciled since the process started:
	// reconciliation runs on an account's first open, once.
	reconciled map[string]bool
	// forced holds accounts whose next open rebuilds the index, with why
	// (CheckAccount found it damaged).
	forced map[string]string
	// journal syncs the files of journaled deliveries (journal.go).
	journal *journal
}

var _ mailstore.Store = (*Store)(nil)

// addressFile, in each account directory, holds the account's address.
const addressFile = "address"

// Open opens the store rooted at dir (<data_dir>/accounts), creating it.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxIdleAccounts <= 0 {
		opts.MaxIdleAccounts = 64
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("maildir: create store: %w", err)
	}
	return &Store{
		dir:        abs,
		opts:       opts,
		log:        opts.Logger,
		accounts:   make(map[string]*account),
		reconciled: make(map[string]bool),
		forced:     make(map[string]string),
		journal:    newJournal(opts.Logger),
	}, nil
}

// Open implements mailstore.Store.
func (s *Store) Open(ctx context.Context, name string) (mailstore.Account, error) {
	a, _, err := s.acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	return newHandle(a), nil
}

// acquire returns the shared state of an account with one more reference,
// opening it if needed, and whether this call reconciled it.
func (s *Store) acquire(ctx context.Context, name string) (*account, bool, error) {
	name, err := mailstore.CheckAccountName(name)
	if err != nil {
		return nil, false, err
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, false, mailstore.ErrClosed
		}
		a := s.accounts[name]
		if a == nil {
			a = newAccount(s, name)
			a.refs = 1
			a.forced = s.forced[name]
			delete(s.forced, name)
			s.accounts[name] = a
			first := !s.reconciled[name]
			s.mu.Unlock()
			err := a.open(ctx, first)
			s.mu.Lock()
			if err != nil {
				delete(s.accounts, name)
			} else if first {
				s.reconciled[name] = true
			}
			a.openErr = err
			close(a.ready)
			s.mu.Unlock()
			if err != nil {
				return nil, false, err
			}
			return a, first, nil
		}
		a.refs++
		if a.refs == 1 {
			s.removeIdle(a)
		}
		s.mu.Unlock()
		select {
		case <-a.ready:
		case <-ctx.Done():
			s.release(a)
			return nil, false, ctx.Err()
		}
		if a.openErr != nil {
			// The opener failed; it removed a from the map. Try again.
			s.mu.Lock()
			a.refs--
			s.mu.Unlock()
			if errors.Is(a.openErr, mailstore.ErrBadAccountName) {
				return nil, false, a.openErr
			}
			continue
		}
		if a.gone.Load() {
			s.release(a)
			continue
		}
		if a.stale() {
			a.log.Warn("account removed or replaced by another process; reopening it")
			s.retire(a)
			s.release(a)
			continue
		}
		return a, false, nil
	}
}

func (s *Store) removeIdle(a *account) {
	for i, x := range s.idle {
		if x == a {
			s.idle = append(s.idle[:i], s.idle[i+1:]...)
			return
		}
	}
}

// retire takes a stale state out of service: its handles get ErrClosed.
func (s *Store) retire(a *account) {
	s.mu.Lock()
	if s.accounts[a.name] == a {
		delete(s.accounts, a.name)
		s.removeIdle(a)
		delete(s.reconciled, a.name)
	}
	s.mu.Unlock()
	a.gone.Store(true)
	a.close()
}

// release drops a reference; idle accounts beyond MaxIdleAccounts close.
func (s *Store) release(a *account) {
	var toClose []*account
	s.mu.Lock()
	a.refs--
	if a.refs == 0 && s.accounts[a.name] == a {
		s.idle = append(s.idle, a)
		for len(s.idle) > s.opts.MaxIdleAccounts {
			old := s.idle[0]
			s.idle = s.idle[1:]
			delete(s.accounts, old.name)
			toClose = append(toClose, old)
		}
	}
	s.mu.Unlock()
	for _, old := range toClose {
		old.close()
	}
}

// Remove implements mailstore.Store: the account's handles get ErrClosed and
// its directory is deleted.
func (s *Store) Remove(ctx context.Context, name string) error {
	name, err := mailstore.CheckAccountName(name)
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, accountDirName(name))
	// Rename the directory away while no state of the account is open,
	// so a crash halfway never leaves a half-deleted account that the next
	// Open would take for a live one, and a concurrent Open either opens
	// the old account (and is closed here) or creates a new one after.
	doomed := filepath.Join(s.dir, ".removed-"+accountDirName(name)+"-"+uniqueName())
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return mailstore.ErrClosed
		}
		a := s.accounts[name]
		if a == nil {
			err := os.Rename(dir, doomed)
			s.mu.Unlock()
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("maildir: remove %s: %w", name, mailstore.ErrNoSuchAccount)
			}
			if err != nil {
				return fmt.Errorf("maildir: remove %s: %w", name, err)
			}
			break
		}
		delete(s.accounts, name)
		s.removeIdle(a)
		delete(s.reconciled, name)
		s.mu.Unlock()
		<-a.ready
		a.gone.Store(true)
		a.close()
	}
	durable.SyncDir(s.dir)
	if err := os.RemoveAll(doomed); err != nil {
		return fmt.Errorf("maildir: remove %s: %w", name, err)
	}
	s.log.Info("account removed", "user", name)
	return nil
}

// Close implements mailstore.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return mailstore.ErrClosed
	}
	s.closed = true
	var all []*account
	for _, a := range s.accounts {
		all = append(all, a)
	}
	s.accounts = nil
	s.idle = nil
	s.mu.Unlock()
	// The last sync, so the accounts close without pending rows.
	s.journal.close()
	var first error
	for _, a := range all {
		<-a.ready
		a.settleJournal()
		a.gone.Store(true)
		if err := a.close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Accounts lists the names of every account with storage under the store's
// directory, sorted.
func (s *Store) Accounts(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name(), addressFile))
		if err != nil {
			s.log.Warn("account directory without address file", "dir", e.Name(), "err", err)
			continue
		}
		name, err := mailstore.CheckAccountName(strings.TrimSpace(string(b)))
		if err != nil || accountDirName(name) != e.Name() {
			s.log.Warn("account directory with a bad address file", "dir", e.Name())
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out, nil
}

// Reconcile reconciles every account's index with its files (see doc.go)
// and removes leftovers of interrupted account removals. Run it at start-up
// before listeners accept; it is safe, though slower, while they do.
func (s *Store) Reconcile(ctx context.Context) error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".removed-") {
			if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
				s.log.Error("remove leftover of a removed account", "dir", e.Name(), "err", err)
			}
		}
	}
	names, err := s.Accounts(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		a, done, err := s.acquire(ctx, name)
		if err != nil {
			// The others go on: this account answers temporary errors
			// (each open tries again) until an administrator repairs it.
			s.log.Error("account unavailable: its index cannot be opened or rebuilt", "user", name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if !done {
			if err := a.reconcile(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		s.release(a)
	}
	return errors.Join(errs...)
}

// ReconcileAccount reconciles one account now.
func (s *Store) ReconcileAccount(ctx context.Context, name string) error {
	a, _, err := s.acquire(ctx, name)
	if err != nil {
		return err
	}
	defer s.release(a)
	return a.reconcile(ctx)
}

var _ io.Closer = (*Store)(nil)
