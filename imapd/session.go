package imapd

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
)

// opTimeout bounds a single store call made for one command.
const opTimeout = 2 * time.Minute

// maxMailboxName bounds mailbox names we accept (bytes of UTF-8); the
// library already caps the whole command line at 50 KiB.
const maxMailboxName = 1000

// session is one IMAP connection. The library calls its methods from the
// connection's goroutine, except Idle, which runs on a second goroutine
// while the first waits for DONE; nothing else writes its fields.
type session struct {
	srv    *Server
	conn   *imapserver.Conn
	lc     *libConn
	id     string
	remote netip.Addr // the connection's peer
	// client is the address auth throttles and the logs show: remote, or
	// the x-originating-ip a trusted proxy sent in ID before login.
	client netip.Addr
	start  time.Time
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	// Authenticated state.
	user string
	acct mailstore.Account

	// Selected state.
	sel *selected

	// notify is the NOTIFY SET in force (notify.go); nil: none.
	notify *notifyState
}

// selected is the session's view of its selected mailbox.
type selected struct {
	st        *mailboxState
	mailbox   mailstore.Mailbox
	tracker   *imapserver.SessionTracker
	readOnly  bool
	searchRes imap.UIDSet // SEARCHRES "$" (RFC 5182), as UIDs

	// CONTEXT=SEARCH and CONTEXT=SORT (searchctx.go, sortctx.go): the live
	// results, and the UIDs new or changed since the last poll (guarded
	// by st.mu; the mailbox state adds to it while sel is among its
	// watchers).
	live  []*liveSearch
	dirty imap.UIDSet

	// IMAP4rev1 \Recent (recent.go). The Idle goroutine writes these
	// while the connection's waits for DONE.
	recentMode recentMode
	recent     imap.UIDSet // UIDs recent in this session: ranges, few
	claimedTo  imap.UID    // UIDs below were claimed (or peeked at)
	knownTo    imap.UID    // UIDs below were told to the client
}

var (
	_ imapserver.SessionIMAP4rev2       = (*session)(nil)
	_ imapserver.SessionSASL            = (*session)(nil)
	_ imapserver.SessionAppendLimit     = (*session)(nil)
	_ imapserver.SessionUnauthenticate  = (*session)(nil)
	_ imapserver.SessionID              = (*session)(nil)
	_ imapserver.SessionSearchContext   = (*session)(nil)
	_ imapserver.SessionQResync         = (*session)(nil)
	_ imapserver.SessionQuota           = (*session)(nil)
	_ imapserver.SessionCreateMailboxID = (*session)(nil)
	_ imapserver.SessionNotify          = (*session)(nil)
	_ imapserver.SessionAppendMessages  = (*session)(nil)
)

func (s *session) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, opTimeout)
}

func (s *session) Close() error {
	s.stopNotify()
	s.closeSelected()
	if s.acct != nil {
		s.acct.Close()
		s.acct = nil
	}
	s.cancel()
	s.log.Info("disconnect", "dur", time.Since(s.start).Round(time.Millisecond))
	s.lc.end()
	return nil
}

// --- Not authenticated state ---

func (s *session) Login(username, password string) error {
	ctx, cancel := s.op()
	defer cancel()
	u, err := s.srv.opts.Auth.Authenticate(ctx, username, password, s.client)
	if err != nil {
		return s.authFailed(username, err)
	}
	return s.loggedIn(ctx, u, "LOGIN")
}

func (s *session) authFailed(username string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrBadCredentials):
		s.log.Warn("auth failed", "user", username)
		return imapserver.ErrAuthFailed
	case errors.Is(err, auth.ErrThrottled):
		s.log.Warn("auth throttled", "user", username)
		return errThrottled
	case errors.Is(err, sasl.ErrUnexpectedClientResponse):
		return bad(imap.ResponseCodeClientBug, "Unexpected SASL response")
	}
	return mapError(s.log, "auth", err, errSource)
}

func (s *session) loggedIn(ctx context.Context, u auth.User, how string) error {
	acct, err := s.srv.opts.Store.Open(ctx, u.Address)
	if err != nil {
		return mapError(s.log, "open account", err, errSource)
	}
	s.user, s.acct = u.Address, acct
	s.log = s.log.With("user", u.Address)
	s.log.Info("auth ok", "mech", how)
	return nil
}

func (s *session) AuthenticateMechanisms() []string {
	return s.srv.opts.Auth.Mechanisms()
}

func (s *session) Authenticate(mech string) (sasl.Server, error) {
	if !slices.ContainsFunc(s.AuthenticateMechanisms(), func(m string) bool { return strings.EqualFold(m, mech) }) {
		return nil, errNoMechanism
	}
	w := &saslServer{s: s, mech: mech}
	inner, err := s.srv.opts.Auth.NewSASLServer(s.ctx, mech, s.client, func(u auth.User) { w.user = &u })
	if err != nil {
		s.log.Warn("sasl start failed", "mech", mech, "err", err)
		return nil, errNoMechanism
	}
	w.inner = inner
	return w, nil
}

// saslServer wraps auth's SASL server: it maps its errors to IMAP codes and
// opens the account before the library moves to the authenticated state.
type saslServer struct {
	s     *session
	mech  string
	inner sasl.Server
	user  *auth.User
}

func (w *saslServer) Next(resp []byte) ([]byte, bool, error) {
	challenge, done, err := w.inner.Next(resp)
	if err != nil {
		return nil, false, w.s.authFailed("", err)
	}
	if !done {
		return challenge, false, nil
	}
	if w.user == nil {
		w.s.log.Error("sasl finished without a user", "mech", w.mech)
		return nil, false, errUnavailable
	}
	ctx, cancel := w.s.op()
	defer cancel()
	if err := w.s.loggedIn(ctx, *w.user, w.mech); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}

func (s *session) Unauthenticate() error {
	s.stopNotify()
	s.closeSelected()
	if s.acct != nil {
		s.acct.Close()
		s.acct = nil
	}
	s.log.Info("unauthenticate")
	s.user = ""
	s.log = s.baseLog()
	return nil
}

// baseLog is the session's logger before login: conn and remote (the
// client's address), and proxy when a trusted proxy reported that address.
func (s *session) baseLog() *slog.Logger {
	if s.client != s.remote {
		return s.srv.log.With("conn", s.id, "remote", s.client.String(), "proxy", s.remote.String())
	}
	return s.srv.log.With("conn", s.id, "remote", s.remote.String())
}

// --- Authenticated state: mailboxes ---

func (s *session) Namespace() (*imap.NamespaceData, error) {
	// One personal namespace; no other users' or shared mailboxes exist.
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: mailstore.Separator}},
	}, nil
}

func (s *session) AppendLimit() uint32 {
	return uint32(s.srv.opts.MaxAppendSize)
}

// checkName refuses names that cannot be a mailbox of ours before they reach
// the store, whatever the store itself accepts: empty levels, "." and ".."
// levels, control characters, wildcards and invalid UTF-8.
func checkName(name string) error {
	if name == "" || len(name) > maxMailboxName || !utf8.ValidString(name) {
		return errBadName
	}
	if strings.EqualFold(name, mailstore.Inbox) {
		return nil
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return errBadName
		}
	}
	for _, level := range strings.Split(name, string(mailstore.Separator)) {
		if level == "" || level == "." || level == ".." {
			return errBadName
		}
	}
	return nil
}

// canonName turns any case of "INBOX" (alone or as the first level) into
// INBOX (RFC 9051 §5.1).
func canonName(name string) string {
	if strings.EqualFold(name, mailstore.Inbox) {
		return mailstore.Inbox
	}
	if len(name) > len(mailstore.Inbox) && name[len(mailstore.Inbox)] == mailstore.Separator &&
		strings.EqualFold(name[:len(mailstore.Inbox)], mailstore.Inbox) {
		return mailstore.Inbox + name[len(mailstore.Inbox):]
	}
	return name
}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	_, err := s.CreateMailboxID(name, options)
	return err
}

// CreateMailboxID is CREATE, with the new mailbox's MAILBOXID for the OK
// (RFC 8474 §4.1).
func (s *session) CreateMailboxID(name string, options *imap.CreateOptions) (string, error) {
	// RFC 9051 §6.3.4: a trailing separator only says the client means to
	// create names under it.
	name = canonName(strings.TrimSuffix(name, string(mailstore.Separator)))
	if err := checkName(name); err != nil {
		return "", err
	}
	special := mailstore.SpecialNone
	if options != nil {
		for _, attr := range options.SpecialUse {
			su, ok := specialUseFromAttr(attr)
			if !ok || special != mailstore.SpecialNone {
				// RFC 6154 §3: USEATTR for uses we do not support (we
				// support one per mailbox).
				return "", no("USEATTR", "Unsupported special-use attribute")
			}
			special = su
		}
	}
	ctx, cancel := s.op()
	defer cancel()
	mb, err := s.acct.CreateMailbox(ctx, name, special)
	if err != nil {
		return "", mapError(s.log, "create", err, errSource)
	}
	s.log.Info("mailbox created", "mailbox", name)
	return mailboxID(mb), nil
}

func (s *session) Delete(name string) error {
	name = canonName(name)
	if err := checkName(name); err != nil {
		return err
	}
	ctx, cancel := s.op()
	defer cancel()
	err := s.acct.DeleteMailbox(ctx, name)
	if err == nil {
		s.log.Info("mailbox deleted", "mailbox", name)
	}
	return mapError(s.log, "delete", err, errSource)
}

func (s *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	oldName, newName = canonName(oldName), canonName(strings.TrimSuffix(newName, string(mailstore.Separator)))
	if err := checkName(oldName); err != nil {
		return err
	}
	if err := checkName(newName); err != nil {
		return err
	}
	if newName == mailstore.Inbox {
		return no(imap.ResponseCodeAlreadyExists, "INBOX always exists")
	}
	ctx, cancel := s.op()
	defer cancel()
	err := s.acct.RenameMailbox(ctx, oldName, newName)
	if err == nil {
		s.log.Info("mailbox renamed", "mailbox", oldName, "to", newName)
	}
	return mapError(s.log, "rename", err, errSource)
}

func (s *session) Subscribe(name string) error   { return s.setSubscribed(name, true) }
func (s *session) Unsubscribe(name string) error { return s.setSubscribed(name, false) }

func (s *session) setSubscribed(name string, on bool) error {
	name = canonName(name)
	if err := checkName(name); err != nil {
		return err
	}
	ctx, cancel := s.op()
	defer cancel()
	return mapError(s.log, "subscribe", s.acct.SetSubscribed(ctx, name, on), errSource)
}

func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	name = canonName(name)
	if err := checkName(name); err != nil {
		return nil, err
	}
	ctx, cancel := s.op()
	defer cancel()
	mb, err := s.acct.Mailbox(ctx, name)
	if err != nil {
		return nil, mapError(s.log, "status", err, errSource)
	}
	st, err := s.acct.Status(ctx, mb.ID)
	if err != nil {
		return nil, mapError(s.log, "status", err, errSource)
	}
	return s.statusData(mb.Name, mb, st, options), nil
}

// statusData fills every item the options ask for: the library's writer
// dereferences the pointers it is told to print.
func (s *session) statusData(name string, mb mailstore.Mailbox, st mailstore.Status, options *imap.StatusOptions) *imap.StatusData {
	var zero64 int64
	limit := s.AppendLimit()
	d := &imap.StatusData{
		Mailbox:        name,
		NumMessages:    &st.Messages,
		NumUnseen:      &st.Unseen,
		NumDeleted:     &st.Deleted,
		Size:           &st.Size,
		UIDNext:        st.UIDNext,
		UIDValidity:    st.UIDValidity,
		NumRecent:      &st.Recent, // the messages no session has claimed
		AppendLimit:    &limit,
		DeletedStorage: &zero64,
		HighestModSeq:  st.HighestModSeq,
	}
	if options.MailboxID {
		d.MailboxID = mailboxID(mb)
	}
	return d
}

// storableFlags drops \Recent, which clients may not set (RFC 3501 §2.3.2),
// and duplicates.
func storableFlags(flags []imap.Flag) []imap.Flag {
	out := make([]imap.Flag, 0, len(flags))
	for _, f := range flags {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		f = canonFlag(f)
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// canonFlag spells system flags the standard way; they are case-insensitive
// on the wire (RFC 9051 §2.3.2).
func canonFlag(f imap.Flag) imap.Flag {
	for _, sys := range systemFlags {
		if strings.EqualFold(string(f), string(sys)) {
			return sys
		}
	}
	return f
}

var systemFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}

// --- Selected state ---

func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	name = canonName(name)
	if err := checkName(name); err != nil {
		return nil, err
	}
	s.closeSelected()
	ctx, cancel := s.op()
	defer cancel()
	mb, err := s.acct.Mailbox(ctx, name)
	if err != nil {
		return nil, mapError(s.log, "select", err, errSource)
	}
	st, err := s.srv.states.acquire(ctx, s.user, mb.ID)
	if err != nil {
		return nil, mapError(s.log, "select", err, errSource)
	}

	st.mu.Lock()
	tracker := st.tracker.NewSession()
	uidNext := st.uidNext
	data := &imap.SelectData{
		Flags:         st.flagsLocked(),
		NumMessages:   uint32(len(st.uids)),
		UIDNext:       st.uidNext,
		UIDValidity:   st.uidValidity,
		HighestModSeq: st.modseq,
		MailboxID:     mailboxID(mb),
	}
	if i := slices.Index(st.seen, false); i >= 0 {
		data.FirstUnseenSeqNum = uint32(i + 1)
	}
	st.mu.Unlock()
	if data.UIDValidity == 0 {
		data.UIDValidity = mb.UIDValidity
	}

	readOnly := options != nil && options.ReadOnly
	if readOnly {
		data.PermanentFlags = []imap.Flag{}
	} else {
		data.PermanentFlags = append(slices.Clone(systemFlags), imap.FlagWildcard)
	}
	if s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		// RFC 9051 §6.3.2: the LIST response with the canonical name.
		data.List = &imap.ListData{Delim: mailstore.Separator, Mailbox: mb.Name, Attrs: specialUseAttrs(mb.SpecialUse)}
	}
	sel := &selected{st: st, mailbox: mb, tracker: tracker, readOnly: readOnly, knownTo: uidNext}
	switch {
	case s.conn.EnabledCaps().Has(imap.CapIMAP4rev2):
		sel.recentMode = recentNone
	case readOnly:
		sel.recentMode = recentPeek
	default:
		sel.recentMode = recentClaim
	}
	tracker.SetMessageFlagsFunc(sel.withRecent)
	s.sel = sel
	// RFC 3501 §6.3.1: this session is the first told of the messages
	// nobody has claimed.
	if err := s.claimRecent(sel, uidNext); err != nil {
		s.closeSelected()
		return nil, mapError(s.log, "select", err, errSource)
	}
	st.mu.Lock()
	data.NumRecent = sel.numRecentLocked()
	st.mu.Unlock()
	s.log.Debug("select", "mailbox", mb.Name, "readonly", readOnly)
	return data, nil
}

func (s *session) closeSelected() {
	if s.sel == nil {
		return
	}
	s.sel.unwatch()
	s.sel.tracker.Close()
	s.srv.states.release(s.sel.st)
	s.sel = nil
}

func (s *session) Unselect() error {
	s.closeSelected()
	return nil
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel != nil {
		ups := s.evalLiveSearches()
		if err := s.pollRecent(w, allowExpunge); err != nil {
			return err
		}
		if err := s.writeLiveSearchUpdates(w, ups); err != nil {
			return err
		}
	}
	return s.pollNotify(w)
}

// Idle polls whenever the mailbox state applies a change, rather than
// through SessionTracker.Idle, so that new messages are claimed as \Recent
// and their EXISTS followed by RECENT, as after any command.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	var notified <-chan struct{} // NOTIFY's events of other mailboxes
	if s.notify != nil {
		notified = s.notify.wake
	}
	for {
		// Take the channel before polling: a change applied during the
		// poll closes it, and is written at once.
		var changed <-chan struct{}
		if s.sel != nil {
			st := s.sel.st
			st.mu.Lock()
			changed = st.changed
			st.mu.Unlock()
		}
		if err := s.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-notified:
		case <-stop:
			return nil
		}
	}
}

// ID answers RFC 2971 ID (through the third_party patch) and logs which
// client this is: the first thing to know when a client misbehaves.
func (s *session) ID(client *imap.IDData) *imap.IDData {
	if client != nil {
		s.log.Info("client id", "name", client.Name, "version", client.Version, "os", client.OS, "vendor", client.Vendor)
		if v, ok := client.Other[fieldOriginatingIP]; ok {
			s.originatingIP(v)
		}
	}
	return &imap.IDData{Name: "Posthouse"}
}

// fieldOriginatingIP is the ID field in which webmails (Roundcube through
// a plugin, and others) report the address of the user they log in for.
const fieldOriginatingIP = "x-originating-ip"

// originatingIP takes the address a proxy reports for its user as the
// client's, for auth's throttling and the logs. Only a connection from
// TrustedNetworks may do so, and only before login: anyone else could
// dodge the per-address lockout, or pin it on somebody else, by naming
// another address.
func (s *session) originatingIP(v string) {
	if len(v) > 64 {
		v = v[:64]
	}
	switch {
	case s.user != "":
		s.log.Warn("x-originating-ip ignored: already authenticated", "value", v)
		return
	case !slices.ContainsFunc(s.srv.opts.TrustedNetworks, func(p netip.Prefix) bool { return p.Contains(s.remote) }):
		s.log.Warn("x-originating-ip ignored: connection not from a trusted network", "value", v)
		return
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(v), "["), "]"))
	if err != nil {
		s.log.Warn("x-originating-ip ignored: not an IP address", "value", v)
		return
	}
	s.client = a.WithZone("").Unmap()
	s.log = s.baseLog()
	s.log.Info("client address from proxy")
}
