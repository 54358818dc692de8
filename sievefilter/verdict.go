package sievefilter

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/sieve"
)

// rejectEnhanced is the status of a Sieve reject at SMTP time (RFC 5429
// §2.1: 550 with 5.7.1, "delivery not authorized, message refused").
var rejectEnhanced = [3]int{5, 7, 1}

// maxReasonBytes bounds a reject reason in the SMTP reply (delivery
// checks 400).
const maxReasonBytes = 300

// verdict maps a run's result onto the pipeline's verdict for one
// account: keep and fileinto become copies (the implicit keep one in the
// default place, where the filters before us put it: Junk for junk),
// discard no copy, reject and ereject the SMTP reply, redirect the
// queue, header edits the fields.
func (f *Filter) verdict(m *delivery.Message, msg *message, account string, p delivery.Planned, res *sieve.Result, log *slog.Logger) delivery.Verdict {
	var v delivery.Verdict
	var copies []delivery.Copy
	for _, a := range res.Actions {
		switch a.Kind {
		case sieve.ActionReject, sieve.ActionEReject:
			log.Info("sieve: message rejected", "action", a.Kind.String())
			return delivery.Verdict{Action: delivery.Reject,
				Reply: delivery.Reply{Code: 550, Enhanced: rejectEnhanced, Text: replyText(a.Reason)}}
		case sieve.ActionKeep:
			copies = append(copies, delivery.Copy{Flags: a.Flags})
		case sieve.ActionFileInto:
			copies = append(copies, delivery.Copy{Mailbox: a.Mailbox, Flags: a.Flags, Create: a.Create})
		case sieve.ActionRedirect:
			v.Redirect = append(v.Redirect, a.Address)
		}
	}
	if len(v.Redirect) > 0 {
		if why := f.loop(msg, account); why != "" {
			log.Warn("sieve: redirect not done; message kept", "why", why, "to", len(v.Redirect))
			v.Redirect = nil
			res.ImplicitKeep = true
		} else {
			v.Headers = append(v.Headers, delivery.Field{Name: TraceField, Value: account})
		}
	}
	if res.ImplicitKeep {
		copies = append(copies, delivery.Copy{Flags: res.KeepFlags})
	}
	switch {
	case len(copies) == 0:
		v.Action = delivery.Discard
	case len(copies) == 1 && copies[0].Mailbox == "" && len(copies[0].Flags) == 0:
		// The default copy: leave it to the filters before us.
	default:
		v.Copies = copies
	}
	v.Headers = append(v.Headers, fields(res.AddTop, log)...)
	v.Append = fields(res.AddBottom, log)
	v.Remove = removals(m, p, res.Delete, log)
	return v
}

// loop says why a redirect must not go out: this account already
// redirected the message, or it went through too many redirects.
func (f *Filter) loop(msg *message, account string) string {
	if slices.Contains(msg.hops, strings.ToLower(account)) {
		return "redirect loop"
	}
	if len(msg.hops) >= f.opts.MaxRedirectHops {
		return "too many redirects"
	}
	return ""
}

// replyText makes a reject reason an SMTP reply text: one line of
// printable ASCII (RFC 5321 §4.2; other characters become "?"), bounded.
func replyText(reason string) string {
	var b strings.Builder
	space := false
	for _, r := range reason {
		if b.Len() >= maxReasonBytes {
			break
		}
		switch {
		case r == ' ' || r == '\t' || r == '\r' || r == '\n':
			space = b.Len() > 0
			continue
		case r < 0x20 || r == 0x7f:
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if r > 0x7e {
			b.WriteByte('?')
		} else {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "Message refused by the recipient's rules"
	}
	return b.String()
}

// fields turns the script's added fields into the pipeline's, leaving
// out (and logging) any the pipeline would refuse: a bad field must not
// fail the whole message.
func fields(list []sieve.Field, log *slog.Logger) []delivery.Field {
	var out []delivery.Field
	for _, f := range list {
		df := delivery.Field{Name: f.Name, Value: f.Value}
		if err := df.Check(); err != nil {
			log.Warn("sieve: header field left out", "field", f.Name, "err", err)
			continue
		}
		out = append(out, df)
	}
	return out
}

// removals maps the script's deletions (counted over the header it saw:
// the fields added for the account, then the message's own) onto the pipeline's FieldRefs (counted over Message.Added, then
// the message's own). A field added for this account alone cannot be
// named so: it stays (logged).
func removals(m *delivery.Message, p delivery.Planned, refs []sieve.FieldRef, log *slog.Logger) []delivery.FieldRef {
	if len(refs) == 0 {
		return nil
	}
	added := m.Added()
	var out []delivery.FieldRef
	for _, ref := range refs {
		seen := 0
		placed := false
		for _, pf := range p.Fields {
			if !strings.EqualFold(pf.Name, ref.Name) {
				continue
			}
			seen++
			if seen != ref.Index {
				continue
			}
			placed = true
			if pf.Added < 0 {
				log.Debug("sieve: deleteheader of a field added for this account alone is not done", "field", ref.Name)
				break
			}
			n := 0
			for _, a := range added[:pf.Added+1] {
				if strings.EqualFold(a.Name, ref.Name) {
					n++
				}
			}
			out = append(out, delivery.FieldRef{Name: ref.Name, Index: n})
			break
		}
		if placed {
			continue
		}
		// One of the message's own: after every added one of the name.
		n := 0
		for _, a := range added {
			if strings.EqualFold(a.Name, ref.Name) {
				n++
			}
		}
		out = append(out, delivery.FieldRef{Name: ref.Name, Index: n + ref.Index - seen})
	}
	return out
}
