package sieve

import (
	"strings"
	"time"
)

// command compiles one command other than require, if, elsif and else.
func (c *compiler) command(n *node) (command, error) {
	switch n.name {
	case "stop", "keep", "discard", "redirect", "fileinto", "reject", "ereject",
		"setflag", "addflag", "removeflag", "set", "vacation", "addheader",
		"deleteheader", "include", "return", "global":
	default:
		return nil, errAt(n.pos, "unknown command %q", n.name)
	}
	if err := noTests(n); err != nil {
		return nil, err
	}
	a := c.args(n)
	var cmd command
	var err error
	switch n.name {
	case "stop":
		cmd = cmdStop{}
	case "discard":
		cmd = &cmdDiscard{pos: n.pos}
	case "keep":
		cmd, err = c.keep(n, a)
	case "fileinto":
		cmd, err = c.fileinto(n, a)
	case "redirect":
		cmd, err = c.redirect(n, a)
	case "reject", "ereject":
		if err = c.need(n.pos, n.name, n.name); err != nil {
			return nil, err
		}
		r := &cmdReject{pos: n.pos, e: n.name == "ereject"}
		r.reason, err = a.str("reason")
		cmd = r
	case "setflag", "addflag", "removeflag":
		cmd, err = c.flagCmd(n, a)
	case "set":
		cmd, err = c.set(n, a)
	case "vacation":
		cmd, err = c.vacation(n, a)
	case "addheader":
		cmd, err = c.addheader(n, a)
	case "deleteheader":
		cmd, err = c.deleteheader(n, a)
	case "include":
		cmd, err = c.include(n, a)
	case "return":
		if err = c.need(n.pos, "return", "include"); err != nil {
			return nil, err
		}
		cmd = cmdReturn{}
	case "global":
		cmd, err = c.global(n, a)
	}
	if err != nil {
		return nil, err
	}
	if err := a.end(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// flagsTag reads ":flags <list>" (RFC 5232 §5).
func (c *compiler) flagsTag(a *argReader, p Pos) ([]*str, error) {
	if err := c.need(p, ":flags", "imap4flags"); err != nil {
		return nil, err
	}
	if err := a.once("flags", p); err != nil {
		return nil, err
	}
	return a.strs("flag list")
}

func (c *compiler) keep(n *node, a *argReader) (command, error) {
	k := &cmdKeep{pos: n.pos}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		if t != "flags" {
			return nil, errAt(p, "keep: unknown tag :%s", t)
		}
		f, err := c.flagsTag(a, p)
		if err != nil {
			return nil, err
		}
		k.flags, k.has = f, true
	}
	return k, nil
}

func (c *compiler) fileinto(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, "fileinto", "fileinto"); err != nil {
		return nil, err
	}
	f := &cmdFileInto{pos: n.pos, imapFlags: c.has("imap4flags")}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		var err error
		switch t {
		case "copy":
			err = c.need(p, ":copy", "copy")
			if err == nil {
				err = a.once("copy", p)
			}
			f.copy = true
		case "create":
			err = c.need(p, ":create", "mailbox")
			if err == nil {
				err = a.once("create", p)
			}
			f.create = true
		case "flags":
			f.flags, err = c.flagsTag(a, p)
			f.hasFlags = true
		default:
			return nil, errAt(p, "fileinto: unknown tag :%s", t)
		}
		if err != nil {
			return nil, err
		}
	}
	var err error
	f.mailbox, err = a.str("mailbox")
	if err != nil {
		return nil, err
	}
	if f.mailbox.constant() {
		if err := checkMailbox(f.mailbox.raw); err != nil {
			return nil, errAt(f.mailbox.pos, "%v", err)
		}
	}
	return f, nil
}

func (c *compiler) redirect(n *node, a *argReader) (command, error) {
	rd := &cmdRedirect{pos: n.pos}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		if t != "copy" {
			return nil, errAt(p, "redirect: unknown tag :%s", t)
		}
		if err := c.need(p, ":copy", "copy"); err != nil {
			return nil, err
		}
		if err := a.once("copy", p); err != nil {
			return nil, err
		}
		rd.copy = true
	}
	var err error
	rd.address, err = a.str("address")
	if err != nil {
		return nil, err
	}
	if rd.address.constant() {
		if _, err := parseRedirect(rd.address.raw); err != nil {
			return nil, errAt(rd.address.pos, "%v", err)
		}
	}
	return rd, nil
}

func (c *compiler) flagCmd(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, n.name, "imap4flags"); err != nil {
		return nil, err
	}
	f := &cmdFlag{pos: n.pos, op: n.name}
	first, err := a.strs("flag list")
	if err != nil {
		return nil, err
	}
	if a.more() {
		// setflag <variablename: string> <list-of-flags: string-list>
		if err := c.need(n.pos, n.name+" with a variable", "variables"); err != nil {
			return nil, err
		}
		if len(first) != 1 || a.n.args[0].kind != argString {
			return nil, errAt(n.pos, "%s: the variable name must be one string", n.name)
		}
		if err := c.checkVarName(first[0], false); err != nil {
			return nil, err
		}
		f.variable = first[0]
		if f.flags, err = a.strs("flag list"); err != nil {
			return nil, err
		}
	} else {
		f.flags = first
	}
	return f, nil
}

// checkVarName checks a variable name for set and the flag commands
// (RFC 5229 §4): constant, an identifier, or a global one.
func (c *compiler) checkVarName(s *str, allowMatch bool) error {
	if !s.constant() {
		return errAt(s.pos, "variable name must be a constant string")
	}
	name := strings.ToLower(s.raw)
	if strings.HasPrefix(name, "global.") && c.has("include") && validIdent(name[len("global."):]) {
		return nil
	}
	if !validIdent(name) || len(name) > maxVarName {
		return errAt(s.pos, "invalid variable name %q", s.raw)
	}
	return nil
}

func (c *compiler) set(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, "set", "variables"); err != nil {
		return nil, err
	}
	s := &cmdSet{pos: n.pos}
	byPrec := map[int]string{}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		prec, known := modifierPrecedence[t]
		if !known || t == "quoteregex" && !c.has("regex") {
			return nil, errAt(p, "set: unknown modifier :%s", t)
		}
		if _, dup := byPrec[prec]; dup {
			return nil, errAt(p, "set: two modifiers of the same precedence (:%s and :%s)", byPrec[prec], t)
		}
		byPrec[prec] = t
	}
	for _, prec := range []int{40, 30, 20, 10} {
		if m, ok := byPrec[prec]; ok {
			s.mods = append(s.mods, m)
		}
	}
	name, err := a.str("variable name")
	if err != nil {
		return nil, err
	}
	if err := c.checkVarName(name, false); err != nil {
		return nil, err
	}
	s.name = strings.ToLower(name.raw)
	if s.value, err = a.str("value"); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *compiler) vacation(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, "vacation", "vacation"); err != nil {
		return nil, err
	}
	v := &cmdVacation{pos: n.pos}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		var err error
		switch t {
		case "days", "seconds":
			if t == "seconds" {
				if err := c.need(p, ":seconds", "vacation-seconds"); err != nil {
					return nil, err
				}
			}
			if err := a.once("period", p); err != nil {
				return nil, err
			}
			num, _, err2 := a.number(":" + t)
			if err2 != nil {
				return nil, err2
			}
			unit := time.Second
			if t == "days" {
				unit = 24 * time.Hour
			}
			if num > uint64(100*365*24*time.Hour/unit) {
				num = uint64(100 * 365 * 24 * time.Hour / unit)
			}
			v.period, v.hasPeriod = time.Duration(num)*unit, true
		case "subject":
			if err = a.once(t, p); err == nil {
				v.subject, err = a.str(":subject")
			}
		case "from":
			if err = a.once(t, p); err == nil {
				v.from, err = a.str(":from")
			}
		case "addresses":
			if err = a.once(t, p); err == nil {
				v.addresses, err = a.strs(":addresses")
			}
		case "mime":
			err = a.once(t, p)
			v.mime = true
		case "handle":
			if err = a.once(t, p); err == nil {
				v.handle, err = a.str(":handle")
			}
		default:
			return nil, errAt(p, "vacation: unknown tag :%s", t)
		}
		if err != nil {
			return nil, err
		}
	}
	var err error
	v.reason, err = a.str("reason")
	return v, err
}

func (c *compiler) addheader(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, "addheader", "editheader"); err != nil {
		return nil, err
	}
	h := &cmdAddHeader{pos: n.pos}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		if t != "last" {
			return nil, errAt(p, "addheader: unknown tag :%s", t)
		}
		if err := a.once("last", p); err != nil {
			return nil, err
		}
		h.last = true
	}
	var err error
	if h.name, err = a.str("field name"); err != nil {
		return nil, err
	}
	if h.name.constant() && !validFieldName(h.name.raw) {
		return nil, errAt(h.name.pos, "addheader: invalid field name %q", h.name.raw)
	}
	if h.value, err = a.str("value"); err != nil {
		return nil, err
	}
	return h, nil
}

func (c *compiler) deleteheader(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, "deleteheader", "editheader"); err != nil {
		return nil, err
	}
	d := &cmdDeleteHeader{pos: n.pos}
	o := &testOpts{}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		switch t {
		case "index":
			// RFC 5293 §5: :index is part of editheader itself.
			if err := a.once("index", p); err != nil {
				return nil, err
			}
			num, np, err := a.number(":index")
			if err != nil {
				return nil, err
			}
			if num == 0 || num > 1<<20 {
				return nil, errAt(np, "deleteheader: :index must be from 1")
			}
			d.index = int(num)
		case "last":
			if err := a.once("last", p); err != nil {
				return nil, err
			}
			d.last = true
		default:
			ok, err := c.matchTag(a, t, p, o, false)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, errAt(p, "deleteheader: unknown tag :%s", t)
			}
		}
	}
	if d.last && d.index == 0 {
		return nil, errAt(n.pos, "deleteheader: :last without :index")
	}
	var err error
	if d.name, err = a.str("field name"); err != nil {
		return nil, err
	}
	if d.name.constant() && !validFieldName(d.name.raw) {
		return nil, errAt(d.name.pos, "deleteheader: invalid field name %q", d.name.raw)
	}
	if a.more() {
		if d.keys, err = a.strs("value patterns"); err != nil {
			return nil, err
		}
	}
	if d.m, err = c.finishMatch(n, o, d.keys); err != nil {
		return nil, err
	}
	if o.typ == mCount {
		return nil, errAt(n.pos, "deleteheader: :count is not allowed")
	}
	return d, nil
}

func (c *compiler) include(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, "include", "include"); err != nil {
		return nil, err
	}
	in := &cmdInclude{pos: n.pos}
	for {
		t, p, ok := a.tag()
		if !ok {
			break
		}
		var err error
		switch t {
		case "personal", "global":
			err = a.once("location", p)
			if t == "global" {
				in.loc = Global
			}
		case "once":
			err = a.once(t, p)
			in.once = true
		case "optional":
			err = a.once(t, p)
			in.optional = true
		default:
			return nil, errAt(p, "include: unknown tag :%s", t)
		}
		if err != nil {
			return nil, err
		}
	}
	name, err := a.str("script name")
	if err != nil {
		return nil, err
	}
	if err := constStr(name, "include's script name"); err != nil {
		return nil, err
	}
	if !validScriptName(name.raw) {
		return nil, errAt(name.pos, "include: invalid script name %q", name.raw)
	}
	in.name = name.raw
	return in, nil
}

func (c *compiler) global(n *node, a *argReader) (command, error) {
	if err := c.need(n.pos, "global", "include"); err != nil {
		return nil, err
	}
	if err := c.need(n.pos, "global", "variables"); err != nil {
		return nil, err
	}
	list, err := a.strs("variable names")
	if err != nil {
		return nil, err
	}
	g := &cmdGlobal{}
	for _, s := range list {
		if !s.constant() || !validIdent(s.raw) {
			return nil, errAt(s.pos, "global: invalid variable name %q", s.raw)
		}
		g.names = append(g.names, strings.ToLower(s.raw))
	}
	return g, nil
}
