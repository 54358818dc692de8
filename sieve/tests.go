package sieve

import (
	"regexp"
	"strconv"
	"strings"
)

type test interface {
	eval(r *run) (bool, error)
}

// testOpts gathers the tags shared by tests: comparator, match type,
// address part, :index/:last.
type testOpts struct {
	typ      matchType
	rel      relOp
	cmp      comparator
	hasCmp   bool
	part     addrPart
	index    int
	last     bool
	percent  bool
	zone     *str
	origZone bool
}

// matchSpec is a prepared match: type, comparator and keys.
type matchSpec struct {
	typ     matchType
	rel     relOp
	cmp     comparator
	pre     []key // prepared keys when all are constant
	setVars bool  // :matches/:regex with variables: set match variables
}

// matchTag handles a comparator or match-type tag; withIndex allows
// :index and :last (the index extension). It reports whether the tag was
// one of these.
func (c *compiler) matchTag(a *argReader, t string, p Pos, o *testOpts, withIndex bool) (bool, error) {
	switch t {
	case "comparator":
		if err := a.once("comparator", p); err != nil {
			return true, err
		}
		s, err := a.srcStr("comparator name")
		if err != nil {
			return true, err
		}
		switch strings.ToLower(s.s) {
		case "i;octet":
			o.cmp = cmpOctet
		case "i;ascii-casemap":
			o.cmp = cmpCasemap
		case "i;ascii-numeric":
			if !c.has("comparator-i;ascii-numeric") {
				return true, errAt(s.pos, "comparator i;ascii-numeric requires \"comparator-i;ascii-numeric\" in require")
			}
			o.cmp = cmpNumeric
		default:
			return true, errAt(s.pos, "unknown comparator %q", s.s)
		}
		o.hasCmp = true
		return true, nil
	case "is", "contains", "matches", "regex", "value", "count":
		if err := a.once("match type", p); err != nil {
			return true, err
		}
		switch t {
		case "is":
			o.typ = mIs
		case "contains":
			o.typ = mContains
		case "matches":
			o.typ = mMatches
		case "regex":
			if err := c.need(p, ":regex", "regex"); err != nil {
				return true, err
			}
			o.typ = mRegex
		case "value", "count":
			if err := c.need(p, ":"+t, "relational"); err != nil {
				return true, err
			}
			o.typ = mValue
			if t == "count" {
				o.typ = mCount
			}
			s, err := a.srcStr("relational operator")
			if err != nil {
				return true, err
			}
			op, ok := relOps[strings.ToLower(s.s)]
			if !ok {
				return true, errAt(s.pos, "unknown relational operator %q", s.s)
			}
			o.rel = op
		}
		return true, nil
	case "index", "last":
		if !withIndex {
			return false, nil
		}
		if err := c.need(p, ":"+t, "index"); err != nil {
			return true, err
		}
		if err := a.once(t, p); err != nil {
			return true, err
		}
		if t == "last" {
			o.last = true
			return true, nil
		}
		num, np, err := a.number(":index")
		if err != nil {
			return true, err
		}
		if num == 0 || num > 1<<20 {
			return true, errAt(np, ":index must be from 1")
		}
		o.index = int(num)
		return true, nil
	}
	return false, nil
}

// finishMatch checks the combination and prepares constant keys.
func (c *compiler) finishMatch(n *node, o *testOpts, keys []*str) (*matchSpec, error) {
	if o.last && o.index == 0 {
		return nil, errAt(n.pos, "%s: :last without :index", n.name)
	}
	if o.cmp == cmpNumeric && (o.typ == mContains || o.typ == mMatches || o.typ == mRegex) {
		return nil, errAt(n.pos, "%s: i;ascii-numeric cannot be used with this match type", n.name)
	}
	m := &matchSpec{typ: o.typ, rel: o.rel, cmp: o.cmp}
	m.setVars = c.has("variables") && (o.typ == mMatches || o.typ == mRegex)
	allConst := true
	for _, k := range keys {
		if !k.constant() {
			allConst = false
		}
	}
	if allConst {
		m.pre = make([]key, 0, len(keys))
		for _, k := range keys {
			pk, err := prepareKey(m, k.raw, c.opts)
			if err != nil {
				return nil, errAt(k.pos, "%v", err)
			}
			m.pre = append(m.pre, pk)
		}
	}
	return m, nil
}

func prepareKey(m *matchSpec, s string, opts *Options) (key, error) {
	fold := m.cmp == cmpCasemap
	switch m.typ {
	case mMatches:
		return key{glob: compileGlob(s, fold)}, nil
	case mRegex:
		re, err := compileRegex(s, fold, opts)
		return key{re: re}, err
	case mContains, mIs:
		if fold {
			s = foldASCII(s)
		}
	}
	return key{lit: s}, nil
}

// matchKeys tells whether any value matches any key (RFC 5228 §2.7.1).
func (r *run) matchKeys(m *matchSpec, values []string, keys []*str) (bool, error) {
	if m.typ == mCount {
		return r.matchCount(m, len(values), keys)
	}
	pre := m.pre
	if pre == nil {
		pre = make([]key, 0, len(keys))
		for _, k := range keys {
			s := r.expand(k)
			var pk key
			var err error
			if m.typ == mRegex {
				pk.re, err = r.regex(s, m.cmp == cmpCasemap)
			} else {
				pk, err = prepareKey(m, s, r.opts)
			}
			if err != nil {
				return false, err
			}
			pre = append(pre, pk)
		}
	}
	for _, v := range values {
		if err := r.step(1 + int64(len(v))/256*int64(len(pre))); err != nil {
			return false, err
		}
		fv := v
		if m.cmp == cmpCasemap && (m.typ == mIs || m.typ == mContains || m.typ == mMatches) {
			fv = foldASCII(v)
		}
		for i := range pre {
			if r.matchOne(m, &pre[i], v, fv) {
				return true, nil
			}
			if r.steps > r.opts.MaxSteps {
				return false, ErrSteps
			}
		}
	}
	return false, nil
}

func (r *run) matchOne(m *matchSpec, k *key, v, fv string) bool {
	switch m.typ {
	case mIs:
		if m.cmp == cmpNumeric {
			return cmpNumeric.compare(v, k.lit) == 0
		}
		return fv == k.lit
	case mContains:
		return strings.Contains(fv, k.lit)
	case mValue:
		return m.rel.holds(m.cmp.compare(v, k.lit))
	case mMatches:
		if !m.setVars {
			return globMatch(k.glob, fv, v, m.cmp == cmpOctet, nil, &r.steps, r.opts.MaxSteps)
		}
		var caps []string
		if !globMatch(k.glob, fv, v, m.cmp == cmpOctet, &caps, &r.steps, r.opts.MaxSteps) {
			return false
		}
		r.match = caps
		return true
	case mRegex:
		if k.re == nil {
			return false
		}
		if !m.setVars {
			return k.re.MatchString(v)
		}
		idx := k.re.FindStringSubmatchIndex(v)
		if idx == nil {
			return false
		}
		caps := make([]string, 0, len(idx)/2)
		for i := 0; i+1 < len(idx) && len(caps) <= maxMatchIndex; i += 2 {
			if idx[i] < 0 {
				caps = append(caps, "")
			} else {
				caps = append(caps, v[idx[i]:idx[i+1]])
			}
		}
		r.match = caps
		return true
	}
	return false
}

// matchCount is :count (RFC 5231 §4.2): the number of values against
// each key, with the comparator.
func (r *run) matchCount(m *matchSpec, n int, keys []*str) (bool, error) {
	count := strconv.Itoa(n)
	if m.pre != nil {
		for _, k := range m.pre {
			if m.rel.holds(m.cmp.compare(count, k.lit)) {
				return true, nil
			}
		}
		return false, nil
	}
	for _, k := range keys {
		if m.rel.holds(m.cmp.compare(count, r.expand(k))) {
			return true, nil
		}
	}
	return false, nil
}

// regex compiles a key computed at run time, once per run.
func (r *run) regex(s string, fold bool) (*regexp.Regexp, error) {
	ck := s
	if fold {
		ck = "i:" + s
	} else {
		ck = "o:" + s
	}
	if re, ok := r.regexes[ck]; ok {
		return re, nil
	}
	if err := r.step(int64(len(s)) * 10); err != nil {
		return nil, err
	}
	re, err := compileRegex(s, fold, r.opts)
	if err != nil {
		return nil, err
	}
	if r.regexes == nil {
		r.regexes = map[string]*regexp.Regexp{}
	}
	r.regexes[ck] = re
	return re, nil
}
