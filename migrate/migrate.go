package migrate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/posthouse/posthouse/mailimport"
	"github.com/posthouse/posthouse/mailstore"
)

// Options say where to copy from and how.
type Options struct {
	// Source is imaps://host[:port] or imap://host[:port].
	Source          string
	Login, Password string
	// TLSConfig, if set, is used for the connection (RootCAs, or
	// InsecureSkipVerify for a self-signed test server); ServerName is
	// filled in from Source.
	TLSConfig *tls.Config
	// Parallel is how many folders are copied at once (default 4).
	Parallel int
	// Batch is how many messages one FETCH asks for (default 100).
	Batch  int
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultParallel = 4
	DefaultBatch    = 100
	dialTimeout     = 30 * time.Second
)

// ErrBadSource: Options.Source is not an imap:// or imaps:// URL.
var ErrBadSource = errors.New("migrate: source must be imaps://host[:port] or imap://host[:port]")

// CheckSource reports whether s is a source Run accepts (ErrBadSource
// if not), so a command can refuse it before asking for a password.
func CheckSource(s string) error {
	_, err := parseSource(s)
	return err
}

// source is a parsed Options.Source.
type source struct {
	addr, host string
	implicit   bool // imaps
}

func parseSource(s string) (source, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return source{}, ErrBadSource
	}
	var port string
	var src source
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		port, src.implicit = "993", true
	case "imap":
		port = "143"
	default:
		return source{}, ErrBadSource
	}
	src.host = u.Hostname()
	if p := u.Port(); p != "" {
		port = p
	}
	src.addr = net.JoinHostPort(src.host, port)
	return src, nil
}

// folder is one remote folder to copy.
type folder struct {
	name        string // remote name
	dest        string // account mailbox
	uidValidity uint32
	uids        []imap.UID // to copy, ascending
}

// Run copies the remote account into the importer's account. ledger keeps
// the per-folder state (see the package doc).
func Run(ctx context.Context, im *mailimport.Importer, ledger *mailimport.Ledger, account string, opts Options) error {
	src, err := parseSource(opts.Source)
	if err != nil {
		return err
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &run{im: im, ledger: ledger, account: account, opts: opts, src: src, log: log,
		key: strings.ToLower(opts.Login + "@" + src.host)}
	c, err := r.dial()
	if err != nil {
		return err
	}
	folders, err := r.plan(ctx, c)
	c.Logout().Wait()
	c.Close()
	if err != nil {
		return err
	}
	return r.copyAll(ctx, folders)
}

type run struct {
	im      *mailimport.Importer
	ledger  *mailimport.Ledger
	account string
	opts    Options
	src     source
	key     string // the ledger's name of the source
	log     *slog.Logger
}

// dial connects and logs in.
func (r *run) dial() (*imapclient.Client, error) {
	tc := &tls.Config{}
	if r.opts.TLSConfig != nil {
		tc = r.opts.TLSConfig.Clone()
	}
	tc.ServerName = r.src.host
	o := &imapclient.Options{TLSConfig: tc, Dialer: &net.Dialer{Timeout: dialTimeout}}
	var c *imapclient.Client
	var err error
	if r.src.implicit {
		c, err = imapclient.DialTLS(r.src.addr, o)
	} else {
		c, err = imapclient.DialStartTLS(r.src.addr, o)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: connect to %s: %w", r.src.addr, err)
	}
	if err := c.Login(r.opts.Login, r.opts.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("migrate: log in to %s as %s: %w", r.src.addr, r.opts.Login, err)
	}
	return c, nil
}

// specialAttrs are the RFC 6154 attributes we map.
var specialAttrs = map[imap.MailboxAttr]string{
	imap.MailboxAttrSent: mailstore.SpecialSent, imap.MailboxAttrDrafts: mailstore.SpecialDrafts,
	imap.MailboxAttrTrash: mailstore.SpecialTrash, imap.MailboxAttrJunk: mailstore.SpecialJunk,
	imap.MailboxAttrArchive: mailstore.SpecialArchive,
}

// plan lists the remote folders, maps them to mailboxes (creating them)
// and finds the UIDs left to copy in each.
func (r *run) plan(ctx context.Context, c *imapclient.Client) ([]folder, error) {
	prefix := ""
	if c.Caps().Has(imap.CapNamespace) {
		if ns, err := c.Namespace().Wait(); err == nil && len(ns.Personal) > 0 {
			prefix = ns.Personal[0].Prefix
		}
	}
	lo := &imap.ListOptions{ReturnSpecialUse: c.Caps().Has(imap.CapSpecialUse)}
	list, err := c.List("", "*", lo).Collect()
	if err != nil {
		return nil, fmt.Errorf("migrate: LIST: %w", err)
	}
	var folders []folder
	var total int64
	for _, l := range list {
		if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		special := ""
		for attr, s := range specialAttrs {
			if hasAttr(l.Attrs, attr) {
				special = s
			}
		}
		dest, err := r.im.Target(ctx, localName(l.Mailbox, prefix, l.Delim), special, "")
		if err != nil {
			return nil, err
		}
		f, err := r.pending(ctx, c, l.Mailbox)
		if err != nil {
			return nil, err
		}
		f.dest = dest
		total += int64(len(f.uids))
		folders = append(folders, f)
	}
	r.im.AddTotal(total)
	return folders, nil
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// localName turns a remote name into a '/'-separated one: the personal
// namespace prefix goes, levels are split at the remote delimiter, and a
// '/' inside a level becomes '_'.
func localName(remote, prefix string, delim rune) string {
	if strings.EqualFold(remote, mailstore.Inbox) {
		return mailstore.Inbox
	}
	if prefix != "" && strings.HasPrefix(remote, prefix) && len(remote) > len(prefix) {
		remote = remote[len(prefix):]
	}
	if delim == 0 || delim == '/' {
		return remote
	}
	levels := strings.Split(remote, string(delim))
	for i, l := range levels {
		levels[i] = strings.ReplaceAll(l, "/", "_")
	}
	return strings.Join(levels, "/")
}

// pending selects a folder and returns the UIDs not yet copied.
func (r *run) pending(ctx context.Context, c *imapclient.Client, name string) (folder, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return folder{}, fmt.Errorf("migrate: EXAMINE %s: %w", name, err)
	}
	f := folder{name: name, uidValidity: sel.UIDValidity}
	st, err := r.ledger.FolderState(ctx, r.account, r.key, name)
	if err != nil {
		return folder{}, err
	}
	last := st.LastUID
	if st.UIDValidity != sel.UIDValidity {
		if st.UIDValidity != 0 {
			r.log.Warn("migrate: UIDVALIDITY changed; copying the folder again (the ledger skips what is stored)", "mailbox", name)
		}
		last = 0
	}
	if sel.NumMessages == 0 {
		return f, nil
	}
	var set imap.UIDSet
	set.AddRange(last+1, 0)
	data, err := c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	if err != nil {
		return folder{}, fmt.Errorf("migrate: UID SEARCH in %s: %w", name, err)
	}
	for _, uid := range data.AllUIDs() {
		if uid > last {
			f.uids = append(f.uids, uid)
		}
	}
	return f, nil
}

// copyAll copies folders with up to Parallel connections; the first error
// stops the others.
func (r *run) copyAll(ctx context.Context, folders []folder) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan folder)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range min(r.opts.Parallel, max(1, len(folders))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *imapclient.Client
			defer func() {
				if c != nil {
					c.Logout().Wait()
					c.Close()
				}
			}()
			for f := range work {
				if len(f.uids) == 0 {
					continue
				}
				if c == nil {
					var err error
					if c, err = r.dial(); err != nil {
						fail(err)
						continue
					}
				}
				if err := r.copyFolder(ctx, c, f); err != nil {
					fail(err)
				}
			}
		}()
	}
feed:
	for _, f := range folders {
		select {
		case work <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// meta is what the first FETCH of a batch says about a message.
type meta struct {
	flags []imap.Flag
	date  time.Time
}

// copyFolder copies f's UIDs in batches.
func (r *run) copyFolder(ctx context.Context, c *imapclient.Client, f folder) error {
	sel, err := c.Select(f.name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return fmt.Errorf("migrate: EXAMINE %s: %w", f.name, err)
	}
	if sel.UIDValidity != f.uidValidity {
		return fmt.Errorf("migrate: %s: UIDVALIDITY changed during the run; run again", f.name)
	}
	start := time.Now()
	var copied int
	for uids := f.uids; len(uids) > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(uids), r.opts.Batch)
		batch := uids[:n]
		uids = uids[n:]
		k, err := r.copyBatch(ctx, c, f, batch)
		copied += k
		if err != nil {
			return err
		}
	}
	r.log.Info("migrate: folder copied", "mailbox", f.name, "dest", f.dest, "messages", copied, "dur", time.Since(start).Round(time.Millisecond))
	return nil
}

func (r *run) copyBatch(ctx context.Context, c *imapclient.Client, f folder, batch []imap.UID) (int, error) {
	set := imap.UIDSetNum(batch...)
	metas := make(map[imap.UID]meta, len(batch))
	bySeq := make(map[uint32]imap.UID, len(batch))
	bufs, err := c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true}).Collect()
	if err != nil {
		return 0, fmt.Errorf("migrate: FETCH flags in %s: %w", f.name, err)
	}
	for _, b := range bufs {
		metas[b.UID] = meta{flags: b.Flags, date: b.InternalDate}
		bySeq[b.SeqNum] = b.UID
	}
	cmd := c.Fetch(set, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	copied := 0
	var putErr error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		uid := bySeq[msg.SeqNum]
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = item.UID
			case imapclient.FetchItemDataBodySection:
				if putErr != nil || item.Literal == nil {
					continue
				}
				m, ok := metas[uid]
				if !ok {
					continue // expunged between the two FETCHes
				}
				_, err := r.im.Put(ctx, mailimport.Message{Folder: f.name, Mailbox: f.dest, Body: item.Literal, Flags: m.flags, Date: m.date})
				if err != nil {
					putErr = err
					continue
				}
				copied++
				if err := r.ledger.SetFolderState(ctx, r.account, r.key, f.name, mailimport.FolderState{UIDValidity: f.uidValidity, LastUID: uid}); err != nil {
					putErr = err
				}
			}
		}
	}
	err = cmd.Close()
	if putErr != nil {
		return copied, putErr
	}
	if err != nil {
		return copied, fmt.Errorf("migrate: FETCH in %s: %w", f.name, err)
	}
	return copied, nil
}
