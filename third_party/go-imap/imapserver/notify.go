package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// Posthouse patch: NOTIFY (RFC 5465).

// Limits on one NOTIFY command.
const (
	maxNotifyGroups    = 32
	maxNotifyMailboxes = 256
)

// SessionNotify is an IMAP session which supports NOTIFY. Notify gets the
// parsed command and writes the initial STATUS responses (NOTIFY SET
// STATUS) with w; the session writes later events through the
// UpdateWriter of Poll and Idle.
type SessionNotify interface {
	Session
	Notify(w *UpdateWriter, options *imap.NotifyOptions) error
}

var notifyFilters = []imap.NotifyFilter{imap.NotifySelected, imap.NotifySelectedDelayed, imap.NotifyInboxes,
	imap.NotifyPersonal, imap.NotifySubscribed, imap.NotifySubtree, imap.NotifyMailboxes}

var notifyEvents = []imap.NotifyEvent{imap.NotifyMessageNew, imap.NotifyMessageExpunge, imap.NotifyFlagChange,
	imap.NotifyAnnotationChange, imap.NotifyMailboxName, imap.NotifySubscriptionChange,
	imap.NotifyMailboxMetadataChange, imap.NotifyServerMetadataChange}

func (c *Conn) handleNotify(dec *imapwire.Decoder) error {
	var options imap.NotifyOptions
	var verb string
	if !dec.ExpectSP() || !dec.ExpectAtom(&verb) {
		return dec.Err()
	}
	switch strings.ToUpper(verb) {
	case "NONE":
		options.None = true
	case "SET":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		var atom string
		if dec.Atom(&atom) {
			if !strings.EqualFold(atom, "STATUS") || !dec.ExpectSP() {
				return newClientBugError("Expected STATUS or an event group")
			}
			options.Status = true
		}
		for {
			if len(options.Groups) == maxNotifyGroups {
				return newClientBugError("Too many event groups")
			}
			g, err := readNotifyGroup(dec)
			if err != nil {
				return err
			}
			options.Groups = append(options.Groups, g)
			if !dec.SP() {
				break
			}
		}
	default:
		return newClientBugError("Expected SET or NONE")
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	w := &UpdateWriter{conn: c, allowExpunge: true}
	return c.session.(SessionNotify).Notify(w, &options)
}

func readNotifyGroup(dec *imapwire.Decoder) (imap.NotifyEventGroup, error) {
	var g imap.NotifyEventGroup
	var filter string
	if !dec.ExpectSpecial('(') || !dec.ExpectAtom(&filter) {
		return g, dec.Err()
	}
	for _, f := range notifyFilters {
		if strings.EqualFold(filter, string(f)) {
			g.Filter = f
		}
	}
	switch g.Filter {
	case "":
		return g, newClientBugError("Unknown NOTIFY filter")
	case imap.NotifySubtree, imap.NotifyMailboxes:
		if !dec.ExpectSP() {
			return g, dec.Err()
		}
		one := func() error {
			if len(g.Mailboxes) == maxNotifyMailboxes {
				return newClientBugError("Too many mailboxes")
			}
			var name string
			if !dec.ExpectMailbox(&name) {
				return dec.Err()
			}
			g.Mailboxes = append(g.Mailboxes, name)
			return nil
		}
		if isList, err := dec.List(one); err != nil {
			return g, err
		} else if !isList {
			if err := one(); err != nil {
				return g, err
			}
		}
	}
	if !dec.ExpectSP() {
		return g, dec.Err()
	}
	var none string
	if dec.Atom(&none) {
		if !strings.EqualFold(none, "NONE") {
			return g, newClientBugError("Expected NONE or a list of events")
		}
	} else if err := readNotifyEvents(dec, &g); err != nil {
		return g, err
	}
	if !dec.ExpectSpecial(')') {
		return g, dec.Err()
	}
	return g, nil
}

// readNotifyEvents reads "(" event *(SP event) ")"; MessageNew may be
// followed by a list of FETCH attributes, which is skipped.
func readNotifyEvents(dec *imapwire.Decoder, g *imap.NotifyEventGroup) error {
	if !dec.ExpectSpecial('(') {
		return dec.Err()
	}
	for {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		var ev imap.NotifyEvent
		for _, e := range notifyEvents {
			if strings.EqualFold(name, string(e)) {
				ev = e
			}
		}
		if ev == "" {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "BADEVENT", Text: "Unknown event " + name}
		}
		if len(g.Events) >= len(notifyEvents) {
			return newClientBugError("Too many events")
		}
		g.Events = append(g.Events, ev)
		if dec.Special(')') {
			return nil
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
		if dec.Special('(') {
			if ev != imap.NotifyMessageNew {
				return newClientBugError("Only MessageNew takes FETCH attributes")
			}
			g.NewFetch = true
			if err := skipListRest(dec, 0); err != nil {
				return err
			}
			if dec.Special(')') {
				return nil
			}
			if !dec.ExpectSP() {
				return dec.Err()
			}
		}
	}
}

// skipListRest skips the rest of a list whose "(" was read: atoms,
// strings and nested lists.
func skipListRest(dec *imapwire.Decoder, depth int) error {
	if depth > 8 {
		return newClientBugError("Lists nested too deep")
	}
	for !dec.Special(')') {
		var s string
		switch {
		case dec.Special('('):
			if err := skipListRest(dec, depth+1); err != nil {
				return err
			}
		case dec.Special('['), dec.Special(']'), dec.Special('<'), dec.Special('>'), dec.Special('.'):
		case dec.Atom(&s), dec.Quoted(&s):
		case dec.SP():
		default:
			return newClientBugError("Unexpected character in FETCH attributes")
		}
	}
	return nil
}

// WriteStatus writes a STATUS response (NOTIFY's unsolicited STATUS).
func (w *UpdateWriter) WriteStatus(data *imap.StatusData, options *imap.StatusOptions) error {
	return w.conn.writeStatus(data, options)
}
