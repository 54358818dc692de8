package sieve

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

type command interface {
	exec(r *run) error
}

type ifBranch struct {
	cond test // nil for else
	body []command
}

type cmdIf struct{ branches []ifBranch }

func (c *cmdIf) exec(r *run) error {
	for _, b := range c.branches {
		if b.cond != nil {
			ok, err := b.cond.eval(r)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		return r.block(b.body)
	}
	return nil
}

type cmdStop struct{}

func (cmdStop) exec(*run) error { return errStop }

type cmdReturn struct{}

func (cmdReturn) exec(*run) error { return errReturn }

type cmdKeep struct {
	pos   Pos
	flags []*str // nil: the internal variable
	has   bool
}

func (c *cmdKeep) exec(r *run) error {
	return r.fail(c.pos, r.addAction(Action{Kind: ActionKeep, Flags: r.actionFlags(c.has, c.flags), Pos: c.pos}))
}

func (r *run) actionFlags(has bool, list []*str) []string {
	if !has {
		return splitFlags(r.flags)
	}
	return splitFlags(strings.Join(r.expandAll(list), " "))
}

type cmdDiscard struct{ pos Pos }

func (c *cmdDiscard) exec(r *run) error {
	return r.fail(c.pos, r.addAction(Action{Kind: ActionDiscard, Pos: c.pos}))
}

type cmdFileInto struct {
	pos          Pos
	mailbox      *str
	copy, create bool
	flags        []*str
	hasFlags     bool
	imapFlags    bool // imap4flags required: the internal variable applies
}

func (c *cmdFileInto) exec(r *run) error {
	mbox := r.expand(c.mailbox)
	if err := checkMailbox(mbox); err != nil {
		return r.fail(c.pos, err)
	}
	var flags []string
	if c.imapFlags {
		flags = r.actionFlags(c.hasFlags, c.flags)
	}
	return r.fail(c.pos, r.addAction(Action{Kind: ActionFileInto, Mailbox: mbox, Copy: c.copy, Create: c.create, Flags: flags, Pos: c.pos}))
}

// checkMailbox refuses names no store could hold.
func checkMailbox(m string) error {
	if m == "" || len(m) > 1000 || !utf8.ValidString(m) || strings.ContainsAny(m, "\x00\r\n") {
		return fmt.Errorf("%w: bad mailbox name %q", ErrInvalid, truncUTF8(m, 100))
	}
	return nil
}

type cmdRedirect struct {
	pos     Pos
	address *str
	copy    bool
}

func (c *cmdRedirect) exec(r *run) error {
	addr, err := parseRedirect(r.expand(c.address))
	if err != nil {
		return r.fail(c.pos, err)
	}
	return r.fail(c.pos, r.addAction(Action{Kind: ActionRedirect, Address: addr, Copy: c.copy, Pos: c.pos}))
}

// parseRedirect reads redirect's address (RFC 5228 §4.2): one mailbox,
// with or without a display name, returned bare.
func parseRedirect(s string) (string, error) {
	list := mimeparse.ParseAddressList(s)
	if len(list) != 1 || list[0].Host == "" || list[0].Mailbox == mimeparse.MissingMailbox ||
		list[0].Host == mimeparse.MissingDomain || strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%w: bad redirect address %q", ErrInvalid, truncUTF8(s, 100))
	}
	return list[0].Mailbox + "@" + list[0].Host, nil
}

type cmdReject struct {
	pos    Pos
	reason *str
	e      bool
}

func (c *cmdReject) exec(r *run) error {
	k := ActionReject
	if c.e {
		k = ActionEReject
	}
	return r.fail(c.pos, r.addAction(Action{Kind: k, Reason: r.expand(c.reason), Pos: c.pos}))
}

type cmdFlag struct {
	pos      Pos
	op       string
	variable *str // nil: the internal variable
	flags    []*str
}

func (c *cmdFlag) exec(r *run) error {
	args := r.expandAll(c.flags)
	if c.variable == nil {
		r.flags = flagOp(c.op, r.flags, args)
		return nil
	}
	name := strings.ToLower(c.variable.raw)
	return r.fail(c.pos, r.setVar(name, flagOp(c.op, r.getVar(name), args)))
}

type cmdSet struct {
	pos   Pos
	name  string
	value *str
	mods  []string // in the order they apply
}

func (c *cmdSet) exec(r *run) error {
	v := r.expand(c.value)
	for _, m := range c.mods {
		v = applyModifier(m, v)
	}
	return r.fail(c.pos, r.setVar(c.name, v))
}

// modifierPrecedence is RFC 5229 §4.1's table (and :quoteregex, regex
// draft §5).
var modifierPrecedence = map[string]int{
	"lower": 40, "upper": 40, "lowerfirst": 30, "upperfirst": 30,
	"quotewildcard": 20, "quoteregex": 20, "length": 10,
}

func applyModifier(m, v string) string {
	switch m {
	case "lower":
		return strings.ToLower(v)
	case "upper":
		return strings.ToUpper(v)
	case "lowerfirst", "upperfirst":
		if v == "" {
			return v
		}
		ch, n := utf8.DecodeRuneInString(v)
		if m == "lowerfirst" {
			return strings.ToLower(string(ch)) + v[n:]
		}
		return strings.ToUpper(string(ch)) + v[n:]
	case "quotewildcard":
		return quoteWildcard(v)
	case "quoteregex":
		return quoteRegex(v)
	case "length":
		return strconv.Itoa(utf8.RuneCountInString(v))
	}
	return v
}

// quoteRegex escapes POSIX ERE special characters (regex draft §5).
func quoteRegex(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(`\^$.[]|()?*+{}`, v[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

type cmdVacation struct {
	pos           Pos
	period        time.Duration
	hasPeriod     bool
	subject, from *str
	addresses     []*str
	mime          bool
	handle        *str
	reason        *str
}

func (c *cmdVacation) exec(r *run) error {
	if r.vacation != nil {
		return r.fail(c.pos, fmt.Errorf("%w: vacation twice", ErrConflict))
	}
	if r.rejected {
		return r.fail(c.pos, fmt.Errorf("%w: vacation with reject", ErrConflict))
	}
	v := &Vacation{Reason: r.expand(c.reason), MIME: c.mime, To: r.env.Envelope.From}
	if c.handle != nil {
		v.Handle = "h:" + c.handle.raw
	} else {
		// RFC 5230 §4.2: the unexpanded arguments, each counted, so that
		// the same text in different arguments differs.
		h := sha256.New()
		for _, s := range []*str{c.subject, c.from, c.reason} {
			raw := ""
			if s != nil {
				raw = s.raw
			}
			fmt.Fprintf(h, "%d:%s;", len(raw), raw)
		}
		fmt.Fprintf(h, "mime=%t", c.mime)
		v.Handle = "s:" + hex.EncodeToString(h.Sum(nil)[:16])
	}
	o := r.opts
	v.Period = o.VacationPeriod
	if c.hasPeriod {
		v.Period = c.period
		if v.Period < o.VacationMinPeriod {
			v.Period = o.VacationMinPeriod
		}
		if v.Period > o.VacationMaxPeriod {
			v.Period = o.VacationMaxPeriod
		}
	}
	if c.subject != nil {
		v.Subject = r.expand(c.subject)
	} else if s, ok := r.firstValue("subject"); ok {
		v.Subject = "Auto: " + s
	} else {
		v.Subject = "Automated reply"
	}
	v.From = r.env.Envelope.To
	if c.from != nil {
		// RFC 5230 §4.3: an unusable :from is ignored, not an error.
		f := r.expand(c.from)
		if list := mimeparse.ParseAddressList(f); len(list) == 1 && list[0].Host != "" &&
			list[0].Host != mimeparse.MissingDomain && !strings.ContainsAny(f, "\r\n") {
			v.From = f
		}
	}
	if id, ok := r.firstValue("message-id"); ok {
		v.InReplyTo = id
	}
	v.Skip = r.vacationSkip(r.expandAll(c.addresses))
	r.vacation = v
	return nil
}

// vacationSkip applies RFC 5230 §4.5 and §4.6.
func (r *run) vacationSkip(extra []string) string {
	from := strings.ToLower(r.env.Envelope.From)
	if from == "" {
		return "null sender"
	}
	local := from
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		local = from[:at]
	}
	switch {
	case local == "mailer-daemon" || local == "listserv" || local == "majordomo" ||
		local == "noreply" || local == "no-reply" ||
		strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request") ||
		strings.HasSuffix(local, "-owner") || strings.HasSuffix(local, "-bounces"):
		return "automated sender"
	}
	for _, h := range []string{"list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post", "list-owner", "list-archive"} {
		if len(r.fields(h)) > 0 {
			return "list mail (" + h + ")"
		}
	}
	if v, ok := r.firstValue("auto-submitted"); ok && !strings.EqualFold(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]), "no") {
		return "auto-submitted"
	}
	if v, ok := r.firstValue("precedence"); ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "list", "junk":
			return "precedence " + strings.ToLower(strings.TrimSpace(v))
		}
	}
	own := append([]string{r.env.Envelope.To, r.env.Envelope.OriginalTo}, r.env.Addresses...)
	own = append(own, extra...)
	isOwn := func(a string) bool {
		for _, o := range own {
			if o != "" && strings.EqualFold(bareAddress(o), a) {
				return true
			}
		}
		return false
	}
	if isOwn(from) {
		return "own message"
	}
	for _, h := range []string{"to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"} {
		for _, f := range r.fields(h) {
			for _, a := range f.addresses() {
				if a.Host != "" && isOwn(a.Mailbox+"@"+a.Host) {
					return ""
				}
			}
		}
	}
	return "not addressed to the recipient"
}

func bareAddress(s string) string {
	if list := mimeparse.ParseAddressList(s); len(list) == 1 && list[0].Host != "" {
		return list[0].Mailbox + "@" + list[0].Host
	}
	return s
}

var qEncoding = mime.QEncoding

type cmdAddHeader struct {
	pos         Pos
	last        bool
	name, value *str
}

// Protected fields (RFC 5293 §6): not added or deleted, silently.
func protectedField(lname string) bool {
	return lname == "received" || lname == "auto-submitted"
}

// maxFieldValue bounds an added field's value (RFC 5293 §4: at least 998).
const maxFieldValue = 4000

func (c *cmdAddHeader) exec(r *run) error {
	name := r.expand(c.name)
	if !validFieldName(name) {
		return r.fail(c.pos, fmt.Errorf("%w: bad field name %q", ErrInvalid, truncUTF8(name, 100)))
	}
	lname := strings.ToLower(name)
	if protectedField(lname) {
		return nil
	}
	value := r.expand(c.value)
	if len(value) > maxFieldValue || !utf8.ValidString(value) {
		return r.fail(c.pos, fmt.Errorf("%w: field value too long", ErrInvalid))
	}
	if err := r.step(int64(len(r.header))); err != nil {
		return err
	}
	f := &hfield{name: name, lname: lname, value: encodeFieldValue(name, value), bottom: c.last}
	if c.last {
		r.header = append(r.header, f)
	} else {
		r.header = append([]*hfield{f}, r.header...)
	}
	r.byName = nil
	return nil
}

// validFieldName is RFC 5322's field-name: printable ASCII but ":".
func validFieldName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == ':' {
			return false
		}
	}
	return true
}

// encodeFieldValue makes a value fit a header (RFC 5293 §4): encoded
// words for non-ASCII text, control characters replaced, folded at white
// space before 78 columns where possible.
func encodeFieldValue(name, v string) string {
	v = strings.Map(func(r rune) rune {
		if r < ' ' && r != '\t' || r == 0x7f {
			return ' '
		}
		return r
	}, v)
	ascii := true
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if !ascii {
		v = qEncoding.Encode("utf-8", v)
	}
	var b strings.Builder
	col := len(name) + 2
	for i, w := range strings.Split(v, " ") {
		if i > 0 {
			if col+1+len(w) > 78 && col > len(name)+2 {
				b.WriteString("\r\n ")
				col = 1
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

type cmdDeleteHeader struct {
	pos   Pos
	index int
	last  bool
	m     *matchSpec
	name  *str
	keys  []*str // nil: every field of the name
}

func (c *cmdDeleteHeader) exec(r *run) error {
	name := r.expand(c.name)
	lname := strings.ToLower(name)
	if !validFieldName(name) || protectedField(lname) {
		return nil // RFC 5293 §6: silently ignored
	}
	fs := r.fields(lname)
	if c.index > 0 {
		i := c.index - 1
		if c.last {
			i = len(fs) - c.index
		}
		if i < 0 || i >= len(fs) {
			return nil
		}
		fs = fs[i : i+1]
	}
	var drop []*hfield
	for _, f := range fs {
		if c.keys != nil {
			ok, err := r.matchKeys(c.m, []string{f.decodedValue()}, c.keys)
			if err != nil {
				return r.fail(c.pos, err)
			}
			if !ok {
				continue
			}
		}
		drop = append(drop, f)
	}
	if len(drop) == 0 {
		return nil
	}
	if err := r.step(int64(len(r.header))); err != nil {
		return err
	}
	kept := r.header[:0:0]
	for _, f := range r.header {
		gone := false
		for _, d := range drop {
			if d == f {
				gone = true
			}
		}
		if !gone {
			kept = append(kept, f)
		} else if f.orig > 0 {
			r.deleted = append(r.deleted, FieldRef{Name: f.name, Index: f.orig})
		}
	}
	r.header = kept
	r.byName = nil
	return nil
}

type cmdInclude struct {
	pos      Pos
	loc      Location
	once     bool
	optional bool
	name     string
}

func (c *cmdInclude) exec(r *run) error {
	id := c.loc.String() + "/" + c.name
	for _, s := range r.includeStack {
		if s == id {
			if c.once {
				return nil
			}
			return r.fail(c.pos, fmt.Errorf("%w: %s", ErrIncludeLoop, id))
		}
	}
	if c.once && r.included[id] {
		return nil
	}
	if len(r.includeStack) >= r.opts.MaxIncludeDepth {
		return r.fail(c.pos, ErrIncludeDepth)
	}
	var s *Script
	var err error
	if r.env.Scripts != nil {
		s, err = r.env.Scripts.Script(r.ctx, c.loc, c.name)
	} else {
		err = ErrNoSuchScript
	}
	if errors.Is(err, ErrNoSuchScript) && c.optional {
		return nil
	}
	if err != nil {
		return r.fail(c.pos, fmt.Errorf("include %s: %w", id, err))
	}
	if r.included == nil {
		r.included = map[string]bool{}
	}
	r.included[id] = true
	r.includeStack = append(r.includeStack, id)
	err = r.exec(s, id)
	r.includeStack = r.includeStack[:len(r.includeStack)-1]
	return err
}

type cmdGlobal struct{ names []string }

func (c *cmdGlobal) exec(r *run) error {
	if r.scope.globals == nil {
		r.scope.globals = map[string]bool{}
	}
	for _, n := range c.names {
		r.scope.globals[n] = true
	}
	return nil
}

// validScriptName follows ManageSieve's rule (RFC 5804 §1.6): UTF-8
// without control characters, and here also without "/" and at most
// 128 bytes, so a name is always a usable key.
func validScriptName(s string) bool {
	if s == "" || len(s) > 128 || !utf8.ValidString(s) || strings.ContainsRune(s, '/') {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f || r == 0x2028 || r == 0x2029 {
			return false
		}
	}
	return true
}
