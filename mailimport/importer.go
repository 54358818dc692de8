package mailimport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// Account is the part of mailstore.Account an Importer uses.
type Account interface {
	Name() string
	ListMailboxes(ctx context.Context) ([]mailstore.Mailbox, error)
	Mailbox(ctx context.Context, name string) (mailstore.Mailbox, error)
	CreateMailbox(ctx context.Context, name, specialUse string) (mailstore.Mailbox, error)
	Status(ctx context.Context, mailboxID int64) (mailstore.Status, error)
	Fetch(ctx context.Context, mailboxID int64, uids imap.UIDSet, opts mailstore.FetchOptions) ([]mailstore.MessageInfo, error)
	OpenMessage(ctx context.Context, mailboxID int64, uid imap.UID) (io.ReadSeekCloser, int64, error)
	Append(ctx context.Context, mailbox string, r io.Reader, opts mailstore.AppendOptions) (mailstore.AppendResult, error)
	StoreFlags(ctx context.Context, mailboxID int64, uids imap.UIDSet, op mailstore.FlagOp, flags []imap.Flag, unchangedSince uint64) (mailstore.StoreResult, error)
	Expunge(ctx context.Context, mailboxID int64, uids *imap.UIDSet) ([]imap.UID, error)
}

// Options tune an Importer.
type Options struct {
	Logger *slog.Logger
	// Progress, if set, is called after every message, from the goroutine
	// that stored or skipped it; it must be quick (throttle output).
	Progress func(Progress)
	// TempDir holds spooled messages larger than MemoryLimit ("": the
	// system's).
	TempDir string
}

// Reasons a message is skipped, as the summary names them.
const (
	SkipDuplicate   = "already imported"
	SkipEmpty       = "empty message"
	SkipTBDeleted   = "deleted in Thunderbird (folder not compacted)"
	SkipChat        = "Google chat, not mail"
	SkipUnreadable  = "unreadable file"
	SkipNotMbox     = "not an mbox file"
	SkipBadMailbox  = "mailbox name refused"
	SkipNoSuchEmail = "gone from the server"
)

// Progress is how far an import or migration is.
type Progress struct {
	Folder   string // the source folder of the last message
	Messages int64  // stored
	Skipped  int64
	Bytes    int64 // stored
	// Total is the number of messages expected (stored + skipped), 0 if
	// unknown.
	Total int64
	// SourceBytes and SourceRead measure an mbox import by its files.
	SourceBytes, SourceRead int64
}

// Summary is what an import did.
type Summary struct {
	Messages int64
	Bytes    int64
	// Mailboxes are the account's mailboxes that received mail, sorted.
	Mailboxes []string
	Skipped   map[string]int64
}

// SkippedTotal counts every skipped message.
func (s Summary) SkippedTotal() int64 {
	var n int64
	for _, c := range s.Skipped {
		n += c
	}
	return n
}

// Importer stores messages into one account, each once (see the package
// doc). It is safe for concurrent use.
type Importer struct {
	acct   Account
	ledger *Ledger
	opts   Options
	log    *slog.Logger

	mu        sync.Mutex
	prog      Progress
	mailboxes map[string]bool // names that received mail
	skipped   map[string]int64
	cache     map[string]mailstore.Mailbox // by name
	inflight  map[string]bool              // ledger keys being stored
	targets   map[string]string            // Target's answers
}

// New returns an Importer into acct, after resolving what an interrupted
// earlier import left pending.
func New(ctx context.Context, acct Account, ledger *Ledger, opts Options) (*Importer, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	im := &Importer{acct: acct, ledger: ledger, opts: opts, log: log.With("user", acct.Name()),
		mailboxes: map[string]bool{}, skipped: map[string]int64{}, cache: map[string]mailstore.Mailbox{}, inflight: map[string]bool{}, targets: map[string]string{}}
	if err := im.resolvePending(ctx); err != nil {
		return nil, err
	}
	return im, nil
}

// resolvePending finds out, for every append a crash may have cut, whether
// the message was stored (see the package doc).
func (im *Importer) resolvePending(ctx context.Context) error {
	rows, err := im.ledger.pending(ctx, im.acct.Name())
	if err != nil {
		return err
	}
	for _, p := range rows {
		info, err := im.findStored(ctx, p)
		if err != nil {
			return err
		}
		var uid imap.UID
		if info != nil {
			uid = info.UID
			if !sameFlags(info.Flags, p.flags) || !info.InternalDate.Equal(p.date) {
				// Start-up reconciliation indexed the file of an
				// append cut before its commit: with no flags and
				// today's date. Store it again as it was meant to be.
				if uid, err = im.restore(ctx, p, info.UID); err != nil {
					return err
				}
			}
			im.log.Info("import: message of an interrupted run was stored", "uid", uid)
		}
		if err := im.ledger.finish(p.entry, uid); err != nil {
			return err
		}
	}
	return nil
}

// restore appends the message at uid again with the pending row's flags
// and date, and expunges the copy at uid.
func (im *Importer) restore(ctx context.Context, p pendingRow, uid imap.UID) (imap.UID, error) {
	mb, err := im.mailboxByID(ctx, p.mailbox)
	if err != nil {
		return 0, err
	}
	r, _, err := im.acct.OpenMessage(ctx, p.mailbox, uid)
	if err != nil {
		return 0, err
	}
	res, err := im.acct.Append(ctx, mb.Name, r, mailstore.AppendOptions{Flags: p.flags, InternalDate: p.date})
	r.Close()
	if err != nil {
		return 0, fmt.Errorf("mailimport: restore an interrupted append: %w", err)
	}
	set := imap.UIDSetNum(uid)
	if _, err := im.acct.StoreFlags(ctx, p.mailbox, set, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
		return 0, err
	}
	if _, err := im.acct.Expunge(ctx, p.mailbox, &set); err != nil {
		return 0, err
	}
	return res.UID, nil
}

func (im *Importer) mailboxByID(ctx context.Context, id int64) (mailstore.Mailbox, error) {
	list, err := im.acct.ListMailboxes(ctx)
	if err != nil {
		return mailstore.Mailbox{}, err
	}
	for _, mb := range list {
		if mb.ID == id {
			return mb, nil
		}
	}
	return mailstore.Mailbox{}, mailstore.ErrNoSuchMailbox
}

// sameFlags compares flag sets, ignoring case and order.
func sameFlags(a, b []imap.Flag) bool {
	norm := func(fl []imap.Flag) []string {
		var out []string
		for _, f := range fl {
			if s := strings.ToLower(string(f)); s != `\recent` && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}

// findStored returns the message a pending row's append stored, or nil.
func (im *Importer) findStored(ctx context.Context, p pendingRow) (*mailstore.MessageInfo, error) {
	st, err := im.acct.Status(ctx, p.mailbox)
	if errors.Is(err, mailstore.ErrNoSuchMailbox) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if st.UIDValidity != p.uidValidity || st.UIDNext <= p.uidNext {
		return nil, nil
	}
	var set imap.UIDSet
	set.AddRange(p.uidNext, st.UIDNext-1)
	infos, err := im.acct.Fetch(ctx, p.mailbox, set, mailstore.FetchOptions{})
	if err != nil {
		return nil, err
	}
	for _, info := range infos {
		if info.Size != p.size {
			continue
		}
		r, _, err := im.acct.OpenMessage(ctx, p.mailbox, info.UID)
		if errors.Is(err, mailstore.ErrNoSuchMessage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return nil, err
		}
		if bytes.Equal(h.Sum(nil), p.hash) {
			return &info, nil
		}
	}
	return nil, nil
}

// AddTotal adds n to the number of messages expected.
func (im *Importer) AddTotal(n int64) {
	im.mu.Lock()
	im.prog.Total += n
	im.mu.Unlock()
}

// AddSource adds n bytes to the size of the source files.
func (im *Importer) AddSource(n int64) {
	im.mu.Lock()
	im.prog.SourceBytes += n
	im.mu.Unlock()
}

// readSource records n more bytes of the source read.
func (im *Importer) readSource(n int64) {
	im.mu.Lock()
	im.prog.SourceRead += n
	im.mu.Unlock()
}

// Skip counts a message not stored, for reason.
func (im *Importer) Skip(folder, reason string) {
	im.mu.Lock()
	im.skipped[reason]++
	im.prog.Skipped++
	im.prog.Folder = folder
	p := im.prog
	im.mu.Unlock()
	im.report(p)
}

func (im *Importer) report(p Progress) {
	if im.opts.Progress != nil {
		im.opts.Progress(p)
	}
}

// Summary reports what was done so far.
func (im *Importer) Summary() Summary {
	im.mu.Lock()
	defer im.mu.Unlock()
	s := Summary{Messages: im.prog.Messages, Bytes: im.prog.Bytes, Skipped: map[string]int64{}}
	for name := range im.mailboxes {
		s.Mailboxes = append(s.Mailboxes, name)
	}
	slices.Sort(s.Mailboxes)
	for k, v := range im.skipped {
		s.Skipped[k] = v
	}
	return s
}

// Message is one message to store.
type Message struct {
	// Folder names the source folder, for progress and logs.
	Folder string
	// Mailbox is the account's mailbox, as Mailbox returned it.
	Mailbox string
	Body    io.Reader
	Flags   []imap.Flag
	Date    time.Time
}

// Put stores m unless the ledger has it in that mailbox already, and
// reports whether it stored it. Errors are the store's (ErrOverQuota, …)
// or reading the body's; a skip is not an error.
func (im *Importer) Put(ctx context.Context, m Message) (bool, error) {
	sp, err := spool(m.Body, im.opts.TempDir)
	if err != nil {
		return false, err
	}
	defer sp.close()
	if sp.size == 0 {
		im.Skip(m.Folder, SkipEmpty)
		return false, nil
	}
	mb, err := im.mailbox(ctx, m.Mailbox)
	if err != nil {
		return false, err
	}
	e := entry{account: im.acct.Name(), mailbox: mb.ID, uidValidity: mb.UIDValidity, hash: sp.hash}
	key := fmt.Sprintf("%d/%d/%x", e.mailbox, e.uidValidity, e.hash)
	im.mu.Lock()
	busy := im.inflight[key]
	im.inflight[key] = true
	im.mu.Unlock()
	if busy {
		im.Skip(m.Folder, SkipDuplicate)
		return false, nil
	}
	defer func() {
		im.mu.Lock()
		delete(im.inflight, key)
		im.mu.Unlock()
	}()
	done, err := im.ledger.has(ctx, e)
	if err != nil {
		return false, err
	}
	if done {
		im.Skip(m.Folder, SkipDuplicate)
		return false, nil
	}
	st, err := im.acct.Status(ctx, mb.ID)
	if err != nil {
		return false, fmt.Errorf("mailimport: %s: %w", mb.Name, err)
	}
	flags := slices.DeleteFunc(slices.Clone(m.Flags), func(f imap.Flag) bool { return strings.EqualFold(string(f), `\Recent`) })
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	date = date.Truncate(time.Second)
	if err := im.ledger.begin(ctx, e, st.UIDNext, sp.size, flags, date); err != nil {
		return false, err
	}
	body, err := sp.reader()
	if err != nil {
		im.ledger.finish(e, 0)
		return false, err
	}
	res, err := im.acct.Append(ctx, mb.Name, body, mailstore.AppendOptions{Flags: flags, InternalDate: date})
	if err != nil {
		if ferr := im.ledger.finish(e, 0); ferr != nil {
			im.log.Error("import: clear pending ledger row", "err", ferr)
		}
		return false, fmt.Errorf("mailimport: store into %s: %w", mb.Name, err)
	}
	if res.UIDValidity != e.uidValidity {
		// The mailbox was deleted and created again meanwhile.
		e.uidValidity = res.UIDValidity
		im.mu.Lock()
		delete(im.cache, mb.Name)
		im.mu.Unlock()
	}
	if err := im.ledger.finish(e, res.UID); err != nil {
		return true, err
	}
	im.mu.Lock()
	im.prog.Messages++
	im.prog.Bytes += res.Size
	im.prog.Folder = m.Folder
	im.mailboxes[mb.Name] = true
	p := im.prog
	im.mu.Unlock()
	im.report(p)
	return true, nil
}

// mailbox returns the named mailbox, from the cache.
func (im *Importer) mailbox(ctx context.Context, name string) (mailstore.Mailbox, error) {
	im.mu.Lock()
	mb, ok := im.cache[name]
	im.mu.Unlock()
	if ok {
		return mb, nil
	}
	mb, err := im.acct.Mailbox(ctx, name)
	if err != nil {
		return mailstore.Mailbox{}, fmt.Errorf("mailimport: mailbox %s: %w", name, err)
	}
	im.mu.Lock()
	im.cache[name] = mb
	im.mu.Unlock()
	return mb, nil
}

// specialNames are the one-level folder names that mean a special use,
// lower case.
var specialNames = map[string]string{
	"sent": mailstore.SpecialSent, "sent items": mailstore.SpecialSent, "sent messages": mailstore.SpecialSent, "sent mail": mailstore.SpecialSent,
	"drafts": mailstore.SpecialDrafts, "draft": mailstore.SpecialDrafts,
	"trash": mailstore.SpecialTrash, "deleted items": mailstore.SpecialTrash, "deleted messages": mailstore.SpecialTrash, "bin": mailstore.SpecialTrash,
	"junk": mailstore.SpecialJunk, "spam": mailstore.SpecialJunk, "junk e-mail": mailstore.SpecialJunk, "junk email": mailstore.SpecialJunk, "bulk mail": mailstore.SpecialJunk,
	"archive": mailstore.SpecialArchive, "archives": mailstore.SpecialArchive,
}

// SpecialUseByName returns the special use a one-level folder name stands
// for, or "".
func SpecialUseByName(name string) string {
	return specialNames[strings.ToLower(name)]
}

// Target returns the account mailbox for a source folder, creating it if
// needed: name has '/' between levels; specialUse is the source's
// (SPECIAL-USE), or "" to go by the name; under, if set, is a mailbox the
// folder goes below, with no mapping (the source's root is under itself).
func (im *Importer) Target(ctx context.Context, name, specialUse, under string) (string, error) {
	key := name + "\x00" + specialUse + "\x00" + under
	im.mu.Lock()
	t, ok := im.targets[key]
	im.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := im.target(ctx, name, specialUse, under)
	if err != nil {
		return "", err
	}
	im.mu.Lock()
	im.targets[key] = t
	im.mu.Unlock()
	return t, nil
}

func (im *Importer) target(ctx context.Context, name, specialUse, under string) (string, error) {
	levels := cleanLevels(name)
	if under != "" {
		return im.ensure(ctx, strings.Join(append(cleanLevels(under), levels...), "/"), "")
	}
	if len(levels) == 0 || len(levels) == 1 && strings.EqualFold(levels[0], mailstore.Inbox) {
		return mailstore.Inbox, nil
	}
	if specialUse == "" && len(levels) == 1 {
		specialUse = SpecialUseByName(levels[0])
	}
	if specialUse != "" {
		list, err := im.acct.ListMailboxes(ctx)
		if err != nil {
			return "", err
		}
		for _, mb := range list {
			if mb.SpecialUse == specialUse {
				return mb.Name, nil
			}
		}
		return im.ensure(ctx, strings.Join(levels, "/"), specialUse)
	}
	return im.ensure(ctx, strings.Join(levels, "/"), "")
}

// ensure creates name unless it exists.
func (im *Importer) ensure(ctx context.Context, name, specialUse string) (string, error) {
	if strings.EqualFold(name, mailstore.Inbox) {
		return mailstore.Inbox, nil
	}
	mb, err := im.acct.Mailbox(ctx, name)
	if errors.Is(err, mailstore.ErrNoSuchMailbox) {
		mb, err = im.acct.CreateMailbox(ctx, name, specialUse)
		if errors.Is(err, mailstore.ErrMailboxExists) {
			mb, err = im.acct.Mailbox(ctx, name)
		}
	}
	if err != nil {
		return "", fmt.Errorf("mailimport: mailbox %q: %w", name, err)
	}
	return mb.Name, nil
}

// cleanLevels splits a '/'-separated name into levels the store accepts:
// empty, "." and ".." levels dropped, '%', '*' and control characters as '_'.
func cleanLevels(name string) []string {
	var out []string
	for _, l := range strings.Split(name, "/") {
		l = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || r == '%' || r == '*' {
				return '_'
			}
			return r
		}, strings.TrimSpace(l))
		if l == "" || l == "." || l == ".." {
			continue
		}
		out = append(out, l)
	}
	return out
}

// memoryLimit is the largest message spooled in memory.
const memoryLimit = 1 << 20

// spooled is one message held while its hash is looked up.
type spooled struct {
	mem  []byte
	file *os.File
	size int64
	hash []byte
}

// spool reads r to its end into memory, or a temporary file past
// memoryLimit, hashing it on the way.
func spool(r io.Reader, dir string) (*spooled, error) {
	h := sha256.New()
	sp := &spooled{}
	var buf bytes.Buffer
	n, err := io.Copy(io.MultiWriter(&buf, h), io.LimitReader(r, memoryLimit+1))
	if err != nil {
		return nil, fmt.Errorf("mailimport: read message: %w", err)
	}
	if n <= memoryLimit {
		sp.mem, sp.size, sp.hash = buf.Bytes(), n, h.Sum(nil)
		return sp, nil
	}
	f, err := os.CreateTemp(dir, "posthouse-import-*")
	if err != nil {
		return nil, fmt.Errorf("mailimport: spool: %w", err)
	}
	os.Remove(f.Name()) // unlinked: gone when closed, whatever happens
	sp.file = f
	if _, err := f.Write(buf.Bytes()); err != nil {
		sp.close()
		return nil, fmt.Errorf("mailimport: spool: %w", err)
	}
	m, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		sp.close()
		return nil, fmt.Errorf("mailimport: read message: %w", err)
	}
	sp.size, sp.hash = n+m, h.Sum(nil)
	return sp, nil
}

func (sp *spooled) reader() (io.Reader, error) {
	if sp.file == nil {
		return bytes.NewReader(sp.mem), nil
	}
	if _, err := sp.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return sp.file, nil
}

func (sp *spooled) close() {
	if sp.file != nil {
		sp.file.Close()
	}
}
