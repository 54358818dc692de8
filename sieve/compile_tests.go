package sieve

import "strings"

// addressHeaders are the fields the address test accepts (RFC 5228
// §5.1: those that hold addresses).
var addressHeaders = map[string]bool{
	"from": true, "to": true, "cc": true, "bcc": true, "sender": true,
	"resent-from": true, "resent-to": true, "resent-cc": true, "resent-bcc": true,
	"resent-sender": true, "reply-to": true, "resent-reply-to": true,
	"return-path": true, "delivered-to": true, "x-original-to": true,
	"envelope-to": true, "x-envelope-to": true, "errors-to": true,
	"disposition-notification-to": true, "mail-followup-to": true, "mail-reply-to": true,
	"x-beenthere": true, "original-recipient": true,
}

func (c *compiler) test(n *node) (test, error) {
	if n.hasBlock {
		return nil, errAt(n.pos, "a test has no block")
	}
	switch n.name {
	case "true", "false":
		if len(n.args) > 0 || len(n.tests) > 0 {
			return nil, errAt(n.pos, "%s takes no arguments", n.name)
		}
		return constTest(n.name == "true"), nil
	case "not":
		if len(n.args) > 0 || len(n.tests) != 1 || n.testList {
			return nil, errAt(n.pos, "not takes one test")
		}
		t, err := c.test(n.tests[0])
		if err != nil {
			return nil, err
		}
		return &notTest{t}, nil
	case "allof", "anyof":
		if len(n.args) > 0 || !n.testList || len(n.tests) == 0 {
			return nil, errAt(n.pos, "%s takes a list of tests in parentheses", n.name)
		}
		l := &listTest{all: n.name == "allof"}
		for _, tn := range n.tests {
			t, err := c.test(tn)
			if err != nil {
				return nil, err
			}
			l.tests = append(l.tests, t)
		}
		return l, nil
	}
	if len(n.tests) > 0 {
		return nil, errAt(n.pos, "%s takes no test", n.name)
	}
	a := c.args(n)
	var t test
	var err error
	switch n.name {
	case "address", "envelope", "header", "string", "hasflag", "body", "date", "currentdate", "spamtest":
		t, err = c.matchTest(n, a)
	case "exists":
		var names []*str
		names, err = a.strs("header names")
		t = &existsTest{names: names}
	case "size":
		t, err = c.sizeTest(n, a)
	case "mailboxexists":
		if err = c.need(n.pos, "mailboxexists", "mailbox"); err != nil {
			return nil, err
		}
		var names []*str
		names, err = a.strs("mailbox names")
		t = &mailboxExistsTest{names: names}
	case "duplicate":
		t, err = c.duplicate(n, a)
	default:
		return nil, errAt(n.pos, "unknown test %q", n.name)
	}
	if err != nil {
		return nil, err
	}
	if err := a.end(); err != nil {
		return nil, err
	}
	return t, nil
}

func (c *compiler) sizeTest(n *node, a *argReader) (test, error) {
	t, p, ok := a.tag()
	if !ok || (t != "over" && t != "under") {
		if ok {
			return nil, errAt(p, "size: expected :over or :under, not :%s", t)
		}
		return nil, errAt(n.pos, "size: expected :over or :under")
	}
	num, _, err := a.number("size limit")
	if err != nil {
		return nil, err
	}
	return &sizeTest{over: t == "over", limit: int64(num)}, nil
}

func (c *compiler) duplicate(n *node, a *argReader) (test, error) {
	if err := c.need(n.pos, "duplicate", "duplicate"); err != nil {
		return nil, err
	}
	d := &duplicateTest{pos: n.pos}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		var err error
		switch t {
		case "handle":
			if err = a.once(t, p); err == nil {
				d.handle, err = a.str(":handle")
			}
		case "header", "uniqueid":
			if err = a.once("header or uniqueid", p); err == nil {
				if t == "header" {
					d.header, err = a.str(":header")
				} else {
					d.uniqueID, err = a.str(":uniqueid")
				}
			}
		case "seconds":
			if err = a.once(t, p); err == nil {
				var num uint64
				num, _, err = a.number(":seconds")
				if num > 100*365*24*3600 {
					num = 100 * 365 * 24 * 3600
				}
				d.seconds, d.hasSeconds = int64(num), true
			}
		case "last":
			err = a.once(t, p)
			d.last = true
		default:
			return nil, errAt(p, "duplicate: unknown tag :%s", t)
		}
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// matchTest compiles the tests that take a comparator and a match type.
func (c *compiler) matchTest(n *node, a *argReader) (test, error) {
	o := &testOpts{}
	var bodyT bodyTransform
	var contentTypes []*str
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		handled, err := c.matchTag(a, t, p, o, n.name == "header" || n.name == "address" || n.name == "date")
		if err != nil {
			return nil, err
		}
		if handled {
			continue
		}
		switch {
		case (n.name == "address" || n.name == "envelope") &&
			(t == "all" || t == "localpart" || t == "domain" || t == "user" || t == "detail"):
			if err := a.once("address part", p); err != nil {
				return nil, err
			}
			if t == "user" || t == "detail" {
				if err := c.need(p, ":"+t, "subaddress"); err != nil {
					return nil, err
				}
			}
			o.part = map[string]addrPart{"all": partAll, "localpart": partLocal, "domain": partDomain, "user": partUser, "detail": partDetail}[t]
		case n.name == "body" && (t == "raw" || t == "content" || t == "text"):
			if err := a.once("body transform", p); err != nil {
				return nil, err
			}
			bodyT = map[string]bodyTransform{"raw": bodyRaw, "content": bodyContent, "text": bodyText}[t]
			if t == "content" {
				if contentTypes, err = a.strs("content types"); err != nil {
					return nil, err
				}
			}
		case (n.name == "date" || n.name == "currentdate") && t == "zone":
			if err := a.once("zone", p); err != nil {
				return nil, err
			}
			if o.zone, err = a.str(":zone"); err != nil {
				return nil, err
			}
			if o.zone.constant() {
				if _, ok := parseZone(o.zone.raw); !ok {
					return nil, errAt(o.zone.pos, "invalid time zone %q (want +hhmm or -hhmm)", o.zone.raw)
				}
			}
		case n.name == "date" && t == "originalzone":
			if err := a.once("zone", p); err != nil {
				return nil, err
			}
			o.origZone = true
		case n.name == "spamtest" && t == "percent":
			if err := c.need(p, ":percent", "spamtestplus"); err != nil {
				return nil, err
			}
			if err := a.once(t, p); err != nil {
				return nil, err
			}
			o.percent = true
		default:
			return nil, errAt(p, "%s: unknown tag :%s", n.name, t)
		}
	}
	var err error
	switch n.name {
	case "address":
		at := &addressTest{}
		if at.headers, err = a.strs("header list"); err != nil {
			return nil, err
		}
		for _, h := range at.headers {
			if h.constant() && !addressHeaders[strings.ToLower(h.raw)] {
				return nil, errAt(h.pos, "address: %q is not a field that holds addresses", h.raw)
			}
		}
		if at.keys, err = a.strs("key list"); err != nil {
			return nil, err
		}
		at.part, at.index, at.last = o.part, o.index, o.last
		at.m, err = c.finishMatch(n, o, at.keys)
		return at, err
	case "envelope":
		if err := c.need(n.pos, "envelope", "envelope"); err != nil {
			return nil, err
		}
		et := &envelopeTest{}
		if et.parts, err = a.strs("envelope parts"); err != nil {
			return nil, err
		}
		for _, p := range et.parts {
			if p.constant() {
				switch strings.ToLower(p.raw) {
				case "from", "to", "auth":
				default:
					return nil, errAt(p.pos, "envelope: unknown envelope part %q", p.raw)
				}
			}
		}
		if et.keys, err = a.strs("key list"); err != nil {
			return nil, err
		}
		et.part = o.part
		et.m, err = c.finishMatch(n, o, et.keys)
		return et, err
	case "header":
		ht := &headerTest{}
		if ht.names, err = a.strs("header names"); err != nil {
			return nil, err
		}
		if ht.keys, err = a.strs("key list"); err != nil {
			return nil, err
		}
		ht.index, ht.last = o.index, o.last
		ht.m, err = c.finishMatch(n, o, ht.keys)
		return ht, err
	case "string":
		if err := c.need(n.pos, "string", "variables"); err != nil {
			return nil, err
		}
		st := &stringTest{}
		if st.source, err = a.strs("source"); err != nil {
			return nil, err
		}
		if st.keys, err = a.strs("key list"); err != nil {
			return nil, err
		}
		st.m, err = c.finishMatch(n, o, st.keys)
		return st, err
	case "hasflag":
		if err := c.need(n.pos, "hasflag", "imap4flags"); err != nil {
			return nil, err
		}
		ht := &hasflagTest{}
		first, err := a.strs("flag list")
		if err != nil {
			return nil, err
		}
		if a.more() {
			if err := c.need(n.pos, "hasflag with variables", "variables"); err != nil {
				return nil, err
			}
			for _, v := range first {
				if err := c.checkVarName(v, false); err != nil {
					return nil, err
				}
				ht.vars = append(ht.vars, strings.ToLower(v.raw))
			}
			if ht.keys, err = a.strs("flag list"); err != nil {
				return nil, err
			}
		} else {
			ht.keys = first
		}
		ht.m, err = c.finishMatch(n, o, ht.keys)
		return ht, err
	case "body":
		if err := c.need(n.pos, "body", "body"); err != nil {
			return nil, err
		}
		bt := &bodyTest{transform: bodyT, types: contentTypes}
		if bt.keys, err = a.strs("key list"); err != nil {
			return nil, err
		}
		bt.m, err = c.finishMatch(n, o, bt.keys)
		return bt, err
	case "date", "currentdate":
		if err := c.need(n.pos, n.name, "date"); err != nil {
			return nil, err
		}
		dt := &dateTest{current: n.name == "currentdate", zone: o.zone, origZone: o.origZone, index: o.index, last: o.last}
		if !dt.current {
			if dt.header, err = a.str("header name"); err != nil {
				return nil, err
			}
		}
		if dt.part, err = a.str("date part"); err != nil {
			return nil, err
		}
		if dt.part.constant() && !validDatePart(dt.part.raw) {
			return nil, errAt(dt.part.pos, "%s: unknown date part %q", n.name, dt.part.raw)
		}
		if dt.keys, err = a.strs("key list"); err != nil {
			return nil, err
		}
		dt.m, err = c.finishMatch(n, o, dt.keys)
		return dt, err
	case "spamtest":
		if err := c.need(n.pos, "spamtest", "spamtest"); err != nil {
			return nil, err
		}
		st := &spamTest{percent: o.percent}
		v, err := a.str("value")
		if err != nil {
			return nil, err
		}
		st.keys = []*str{v}
		st.m, err = c.finishMatch(n, o, st.keys)
		return st, err
	}
	return nil, errAt(n.pos, "unknown test %q", n.name)
}
