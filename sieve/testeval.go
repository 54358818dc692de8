package sieve

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

type constTest bool

func (t constTest) eval(*run) (bool, error) { return bool(t), nil }

type notTest struct{ t test }

func (t *notTest) eval(r *run) (bool, error) {
	ok, err := t.t.eval(r)
	return !ok, err
}

type listTest struct {
	all   bool
	tests []test
}

// eval short-circuits, left to right (RFC 5228 §5.2, §5.3).
func (t *listTest) eval(r *run) (bool, error) {
	for _, x := range t.tests {
		if err := r.step(1); err != nil {
			return false, err
		}
		ok, err := x.eval(r)
		if err != nil {
			return false, err
		}
		if ok != t.all {
			return ok, nil
		}
	}
	return t.all, nil
}

type existsTest struct{ names []*str }

func (t *existsTest) eval(r *run) (bool, error) {
	for _, n := range r.expandAll(t.names) {
		if len(r.fields(strings.ToLower(n))) == 0 {
			return false, nil
		}
	}
	return true, nil
}

type sizeTest struct {
	over  bool
	limit int64
}

func (t *sizeTest) eval(r *run) (bool, error) {
	var size int64
	if r.env.Content != nil {
		size = r.env.Content.Size()
	}
	if t.over {
		return size > t.limit, nil
	}
	return size < t.limit, nil
}

type mailboxExistsTest struct{ names []*str }

func (t *mailboxExistsTest) eval(r *run) (bool, error) {
	if r.env.Mailboxes == nil {
		return false, nil
	}
	for _, n := range r.expandAll(t.names) {
		if err := r.step(10); err != nil {
			return false, err
		}
		ok, err := r.env.Mailboxes.MailboxExists(r.ctx, n)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

type duplicateTest struct {
	pos                      Pos
	handle, header, uniqueID *str
	seconds                  int64
	hasSeconds               bool
	last                     bool
}

func (t *duplicateTest) eval(r *run) (bool, error) {
	var id string
	switch {
	case t.uniqueID != nil:
		id = r.expand(t.uniqueID)
	default:
		name := "message-id"
		if t.header != nil {
			name = r.expand(t.header)
			if !validFieldName(name) {
				return false, nil // RFC 7352 §3.1: false, not an error
			}
		}
		v, ok := r.firstValue(strings.ToLower(name))
		if !ok {
			return false, nil
		}
		id = v
	}
	period := r.opts.DuplicatePeriod
	if t.hasSeconds {
		if t.seconds == 0 {
			return false, nil
		}
		period = time.Duration(t.seconds) * time.Second
		if period > r.opts.DuplicateMaxPeriod {
			period = r.opts.DuplicateMaxPeriod
		}
	}
	h := sha256.New()
	handle := ""
	if t.handle != nil {
		handle = r.expand(t.handle)
	}
	h.Write([]byte(strconv.Itoa(len(handle)) + ":" + handle + ";" + id))
	key := hex.EncodeToString(h.Sum(nil))
	mark := DuplicateMark{ID: key, Period: period, Last: t.last}
	found := false
	for i := range r.dups {
		if r.dups[i].ID == key {
			r.dups[i] = mark // the last test's arguments win (RFC 7352 §3.3)
			found = true
		}
	}
	if !found {
		r.dups = append(r.dups, mark)
	}
	// RFC 7352 §3: every test of one run sees the list as it was.
	if seen, ok := r.dupSeen[key]; ok {
		return seen, nil
	}
	seen := false
	if r.env.Duplicates != nil {
		if err := r.step(10); err != nil {
			return false, err
		}
		var err error
		if seen, err = r.env.Duplicates.Seen(r.ctx, key); err != nil {
			return false, r.fail(t.pos, err)
		}
	}
	if r.dupSeen == nil {
		r.dupSeen = map[string]bool{}
	}
	r.dupSeen[key] = seen
	return seen, nil
}

// Address parts (RFC 5228 §2.7.4, RFC 5233).
type addrPart uint8

const (
	partAll addrPart = iota
	partLocal
	partDomain
	partUser
	partDetail
)

// subaddressSep separates user and detail (RFC 5233), as auth resolves
// user+tag.
const subaddressSep = "+"

// addressPart returns the part of local@domain; ok is false when the
// part does not exist (":detail" of an address without a separator).
func addressPart(local, domain string, p addrPart) (string, bool) {
	switch p {
	case partLocal:
		return local, true
	case partDomain:
		return domain, true
	case partUser:
		if i := strings.Index(local, subaddressSep); i >= 0 {
			return local[:i], true
		}
		return local, true
	case partDetail:
		if i := strings.Index(local, subaddressSep); i >= 0 {
			return local[i+len(subaddressSep):], true
		}
		return "", false
	}
	if domain == "" {
		return local, true
	}
	return local + "@" + domain, true
}

func splitAddr(a string) (local, domain string) {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[:i], a[i+1:]
	}
	return a, ""
}

type addressTest struct {
	headers, keys []*str
	part          addrPart
	index         int
	last          bool
	m             *matchSpec
}

// pickIndex applies :index/:last (RFC 5260 §6) to the fields of all the
// named headers, counted in the order of the list.
func pickIndex(fs []*hfield, index int, last bool) []*hfield {
	if index == 0 {
		return fs
	}
	i := index - 1
	if last {
		i = len(fs) - index
	}
	if i < 0 || i >= len(fs) {
		return nil
	}
	return fs[i : i+1]
}

func (r *run) namedFields(names []*str) []*hfield {
	if len(names) == 1 {
		return r.fields(strings.ToLower(r.expand(names[0])))
	}
	var fs []*hfield
	for _, n := range r.expandAll(names) {
		fs = append(fs, r.fields(strings.ToLower(n))...)
	}
	return fs
}

func (t *addressTest) eval(r *run) (bool, error) {
	fs := pickIndex(r.namedFields(t.headers), t.index, t.last)
	var values []string
	count := 0
	for _, f := range fs {
		if err := r.step(1 + int64(len(f.value))/64); err != nil {
			return false, err
		}
		for _, a := range f.addresses() {
			if a.Host == "" {
				continue // group start or end
			}
			local, domain := a.Mailbox, a.Host
			if local == mimeparse.MissingMailbox {
				local = ""
			}
			if domain == mimeparse.MissingDomain {
				domain = ""
			}
			count++
			if v, ok := addressPart(local, domain, t.part); ok {
				values = append(values, v)
			}
		}
	}
	if t.m.typ == mCount {
		return r.matchCount(t.m, count, t.keys)
	}
	return r.matchKeys(t.m, values, t.keys)
}

type envelopeTest struct {
	parts, keys []*str
	part        addrPart
	m           *matchSpec
}

func (t *envelopeTest) eval(r *run) (bool, error) {
	var values []string
	count := 0
	for _, p := range r.expandAll(t.parts) {
		var a string
		switch strings.ToLower(p) {
		case "from":
			a = r.env.Envelope.From
		case "to":
			a = r.env.Envelope.To
		case "auth":
			a = r.env.Envelope.Auth
			if a == "" {
				continue
			}
		default:
			continue
		}
		if a != "" {
			count++
		}
		// The null reverse-path is the empty string for every part
		// (RFC 5228 §5.4).
		local, domain := splitAddr(a)
		if v, ok := addressPart(local, domain, t.part); ok {
			values = append(values, v)
		}
	}
	if t.m.typ == mCount {
		return r.matchCount(t.m, count, t.keys)
	}
	return r.matchKeys(t.m, values, t.keys)
}

type headerTest struct {
	names, keys []*str
	index       int
	last        bool
	m           *matchSpec
}

func (t *headerTest) eval(r *run) (bool, error) {
	fs := pickIndex(r.namedFields(t.names), t.index, t.last)
	if t.m.typ == mCount {
		return r.matchCount(t.m, len(fs), t.keys)
	}
	if len(fs) == 0 {
		return false, nil
	}
	var buf [4]string
	values := buf[:0]
	for _, f := range fs {
		values = append(values, f.decodedValue())
	}
	return r.matchKeys(t.m, values, t.keys)
}

type stringTest struct {
	source, keys []*str
	m            *matchSpec
}

func (t *stringTest) eval(r *run) (bool, error) {
	values := r.expandAll(t.source)
	if t.m.typ == mCount {
		// RFC 5229 §5: the empty string counts 0.
		n := 0
		for _, v := range values {
			if v != "" {
				n++
			}
		}
		return r.matchCount(t.m, n, t.keys)
	}
	return r.matchKeys(t.m, values, t.keys)
}

type hasflagTest struct {
	vars []string // nil: the internal variable
	keys []*str
	m    *matchSpec
}

func (t *hasflagTest) eval(r *run) (bool, error) {
	var flags []string
	if t.vars == nil {
		flags = splitFlags(r.flags)
	} else {
		for _, v := range t.vars {
			flags = append(flags, splitFlags(r.getVar(v))...)
		}
	}
	if t.m.typ == mCount {
		return r.matchCount(t.m, len(flags), t.keys)
	}
	// RFC 5232 §7: each flag of the keys is a key of its own.
	var keys []*str
	for _, k := range r.expandAll(t.keys) {
		for _, f := range strings.Fields(k) {
			keys = append(keys, &str{raw: f})
		}
	}
	m := *t.m
	m.pre = nil
	return r.matchKeys(&m, flags, keys)
}

type spamTest struct {
	percent bool
	keys    []*str
	m       *matchSpec
}

// value is RFC 5235 §3.2's normalised result.
func (t *spamTest) value(s Spam) string {
	if !s.Tested {
		return "0"
	}
	score := math.Max(0, math.Min(1, s.Score))
	if math.IsNaN(s.Score) {
		score = 0.5
	}
	if t.percent {
		return strconv.Itoa(int(math.Round(score * 100)))
	}
	return strconv.Itoa(1 + int(math.Round(score*9)))
}

func (t *spamTest) eval(r *run) (bool, error) {
	if t.m.typ == mCount {
		n := 0
		if r.env.Spam.Tested {
			n = 1
		}
		return r.matchCount(t.m, n, t.keys)
	}
	return r.matchKeys(t.m, []string{t.value(r.env.Spam)}, t.keys)
}
