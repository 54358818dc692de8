package imapd

import (
	"slices"
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
	// lsubParent: an unsubscribed parent of a subscribed name that LSUB
	// lists as \Noselect (its "%" matches the parent, not the child).
	lsubParent bool
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
	sortNames(names)

	hasChildren := func(name string) bool {
		prefix := name + string(mailstore.Separator)
		for _, n := range names {
			if e := entries[n]; e.exists && strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}
	// hiddenSubscribedChild: a subscribed descendant of name that the
	// patterns do not list themselves (RFC 5258 §3.5: RECURSIVEMATCH
	// reports the parent, with CHILDINFO, for such a child).
	hiddenSubscribedChild := func(name string) bool {
		prefix := name + string(mailstore.Separator)
		for _, n := range names {
			if entries[n].subscribed && strings.HasPrefix(n, prefix) && !matchAny(n, ref, patterns) {
				return true
			}
		}
		return false
	}
	lsub := w.LSub()
	if lsub {
		// RFC 3501 §6.3.9: "%" in LSUB also returns the unsubscribed
		// parents of subscribed names that it matches, as \Noselect.
		for _, n := range slices.Clone(names) {
			if !entries[n].subscribed || matchAny(n, ref, patterns) {
				continue
			}
			for p := parentName(n); p != ""; p = parentName(p) {
				if !matchAny(p, ref, patterns) {
					continue
				}
				e, ok := entries[p]
				if !ok {
					e = &listEntry{name: p}
					entries[p] = e
					names = append(names, p)
				}
				e.lsubParent = !e.subscribed
			}
		}
		sortNames(names)
	}

	for _, name := range names {
		e := entries[name]
		if !matchAny(name, ref, patterns) {
			continue
		}
		var childInfo *imap.ListDataChildInfo
		if lsub && e.lsubParent && !e.subscribed {
			if err := w.WriteList(&imap.ListData{Delim: mailstore.Separator, Mailbox: name, Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}}); err != nil {
				return err
			}
			continue
		}
		if options.SelectSubscribed && !e.subscribed {
			if !options.SelectRecursiveMatch || !hiddenSubscribedChild(name) {
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
		} else if lsub {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		}
		if e.subscribed && (options.ReturnSubscribed || options.SelectSubscribed) && !lsub {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil && e.exists {
			st, err := s.acct.Status(ctx, e.mailbox.ID)
			if err != nil {
				return mapError(s.log, "list-status", err, errSource)
			}
			data.Status = s.statusData(name, e.mailbox, st, options.ReturnStatus)
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// parentName is name's parent in the hierarchy, "" at the top.
func parentName(name string) string {
	i := strings.LastIndexByte(name, mailstore.Separator)
	if i <= 0 {
		return ""
	}
	return name[:i]
}

// sortNames puts INBOX first, then the rest by name.
func sortNames(names []string) {
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == mailstore.Inbox) != (names[j] == mailstore.Inbox) {
			return names[i] == mailstore.Inbox
		}
		return names[i] < names[j]
	})
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
