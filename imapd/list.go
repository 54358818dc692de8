package imapd

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
)

func specialUseAttrs(su string) []imap.MailboxAttr {
	if su == mailstore.SpecialNone {
		return nil
	}
	return []imap.MailboxAttr{imap.MailboxAttr(su)}
}

func specialUseFromAttr(attr imap.MailboxAttr) (string, bool) {
	for _, su := range []string{mailstore.SpecialSent, mailstore.SpecialDrafts, mailstore.SpecialTrash,
		mailstore.SpecialJunk, mailstore.SpecialArchive} {
		if strings.EqualFold(string(attr), su) {
			return su, true
		}
	}
	return "", false
}

// listEntry is one name LIST may report: an existing mailbox, or a
// subscription whose mailbox does not exist.
type listEntry struct {
	name       string
	exists     bool
	mailbox    mailstore.Mailbox
	subscribed bool
}

// List serves LIST, LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819) and
// LSUB. Special-use attributes are always sent, in LSUB too: Outlook reads
// them from LSUB and otherwise creates its own localized Sent/Trash folders.
// \HasChildren/\HasNoChildren are always sent (CHILDREN, RFC 3348).
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		// RFC 9051 §6.3.9: an empty pattern asks for the delimiter.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: mailstore.Separator})
	}
	ctx, cancel := s.op()
	defer cancel()
	mailboxes, err := s.acct.ListMailboxes(ctx)
	if err != nil {
		return mapError(s.log, "list", err, errSource)
	}
	subs, err := s.acct.Subscriptions(ctx)
	if err != nil {
		return mapError(s.log, "list", err, errSource)
	}

	entries := make(map[string]*listEntry, len(mailboxes)+len(subs))
	for _, mb := range mailboxes {
		entries[mb.Name] = &listEntry{name: mb.Name, exists: true, mailbox: mb, subscribed: mb.Subscribed}
	}
	for _, name := range subs {
		if e, ok := entries[name]; ok {
			e.subscribed = true
		} else {
			entries[name] = &listEntry{name: name, subscribed: true}
		}
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		// INBOX first, then by name.
		if (names[i] == mailstore.Inbox) != (names[j] == mailstore.Inbox) {
			return names[i] == mailstore.Inbox
		}
		return names[i] < names[j]
	})

	hasChildren := func(name string) bool {
		prefix := name + string(mailstore.Separator)
		for _, n := range names {
			if e := entries[n]; e.exists && strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}
	hasSubscribedChild := func(name string) bool {
		prefix := name + string(mailstore.Separator)
		for _, n := range names {
			if entries[n].subscribed && strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}

	for _, name := range names {
		e := entries[name]
		if !matchAny(name, ref, patterns) {
			continue
		}
		var childInfo *imap.ListDataChildInfo
		if options.SelectSubscribed && !e.subscribed {
			// RFC 5258 §3.5: RECURSIVEMATCH reports a parent whose
			// children are subscribed.
			if !options.SelectRecursiveMatch || !hasSubscribedChild(name) {
				continue
			}
			childInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		if options.SelectSpecialUse && (!e.exists || e.mailbox.SpecialUse == mailstore.SpecialNone) {
			continue
		}

		data := &imap.ListData{Delim: mailstore.Separator, Mailbox: name, ChildInfo: childInfo}
		if e.exists {
			if hasChildren(name) {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
			} else {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
			}
			data.Attrs = append(data.Attrs, specialUseAttrs(e.mailbox.SpecialUse)...)
		} else if isLSub(options) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		}
		if e.subscribed && (options.ReturnSubscribed || options.SelectSubscribed) && !isLSub(options) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil && e.exists {
			st, err := s.acct.Status(ctx, e.mailbox.ID)
			if err != nil {
				return mapError(s.log, "list-status", err, errSource)
			}
			data.Status = s.statusData(name, st, options.ReturnStatus)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// isLSub recognises the options the library passes for LSUB: SUBSCRIBED
// selection and nothing else. LIST (SUBSCRIBED) from a LIST-EXTENDED client
// always has RETURN options or gets \Subscribed, so it is told apart by the
// absence of any return option, which both forms then treat alike.
func isLSub(options *imap.ListOptions) bool {
	return options.SelectSubscribed && !options.SelectRecursiveMatch && !options.SelectSpecialUse &&
		!options.SelectRemote && !options.ReturnSubscribed && !options.ReturnChildren &&
		!options.ReturnSpecialUse && options.ReturnStatus == nil
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, mailstore.Separator, ref, p) {
			return true
		}
		// INBOX matches case-insensitively (RFC 9051 §5.1).
		if name == mailstore.Inbox && imapserver.MatchList(name, mailstore.Separator, canonName(ref), canonName(p)) {
			return true
		}
	}
	return false
}
