package sieve

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// Runtime errors. A run that ends in one of them (or in an error of the
// caller's interfaces) keeps the message: see Result.
var (
	ErrSteps            = errors.New("sieve: work budget exceeded")
	ErrTooManyActions   = errors.New("sieve: too many actions")
	ErrTooManyRedirects = errors.New("sieve: too many redirects")
	ErrIncludeDepth     = errors.New("sieve: includes nested too deeply")
	ErrIncludeLoop      = errors.New("sieve: recursive include")
	ErrConflict         = errors.New("sieve: conflicting actions")
	ErrInvalid          = errors.New("sieve: invalid value")
)

// RuntimeError is an error of a run, with the place in the script.
type RuntimeError struct {
	Pos
	Script string // "" for the top script, else "personal/name" or "global/name"
	Err    error
}

func (e *RuntimeError) Error() string {
	where := e.Pos.String()
	if e.Script != "" {
		where = e.Script + ": " + where
	}
	return where + ": " + e.Err.Error()
}

func (e *RuntimeError) Unwrap() error { return e.Err }

// control flow, not errors
var (
	errStop   = errors.New("stop")
	errReturn = errors.New("return")
)

var wordDecoder = mime.WordDecoder{CharsetReader: gomessage.CharsetReader}

// hfield is a field of the header as the script sees it (RFC 5293: edits
// are visible to later tests).
type hfield struct {
	name, lname string
	value       string // as in the message (unfolded by the reader, or not)
	orig        int    // 1-based index among the original fields of its name; 0 if added
	bottom      bool   // added with :last
	decoded     string
	hasDecoded  bool
	addrs       []imap.Address
	hasAddrs    bool
}

// addresses parses the field as an address list, once.
func (f *hfield) addresses() []imap.Address {
	if !f.hasAddrs {
		f.addrs, f.hasAddrs = mimeparse.ParseAddressList(f.value), true
	}
	return f.addrs
}

// run is the state of one execution of a script and its includes.
type run struct {
	ctx  context.Context
	env  *Env
	opts *Options

	steps int64

	header  []*hfield
	byName  map[string][]*hfield // lower-case name → fields in order; nil after an edit until rebuilt
	deleted []FieldRef

	scope   *scope
	globals map[string]string
	match   []string
	flags   string // imap4flags' internal variable, shared by all scripts of the run

	actions      []Action
	implicitKeep bool
	redirects    int
	rejected     bool
	delivering   bool // keep, fileinto or redirect happened
	vacation     *Vacation
	dups         []DuplicateMark
	dupSeen      map[string]bool

	includeStack []string
	included     map[string]bool
	scriptName   string

	body    map[string][]string // body transform key → texts
	regexes map[string]*regexp.Regexp
}

// scope is one script's variables (RFC 5229: visible only to the running
// script; RFC 6609 §3.4: "global" names are shared).
type scope struct {
	vars    map[string]string
	globals map[string]bool
	exts    map[string]bool
}

// Run executes the script for one message. A non-nil error means the run
// failed (a limit, a conflict, a failure of env's interfaces, ctx done):
// the Result is then FailedResult, the message is kept in INBOX and
// nothing else happens.
func (s *Script) Run(ctx context.Context, env Env) (Result, error) {
	r := &run{
		ctx:          ctx,
		env:          &env,
		opts:         &s.opts,
		implicitKeep: true,
		globals:      map[string]string{},
	}
	r.loadHeader()
	err := r.exec(s, "")
	if err != nil && err != errStop {
		return FailedResult(), err
	}
	return r.result(), nil
}

func (r *run) exec(s *Script, name string) error {
	saved, savedName := r.scope, r.scriptName
	r.scope = &scope{vars: map[string]string{}, exts: s.exts}
	r.scriptName = name
	defer func() { r.scope, r.scriptName = saved, savedName }()
	err := r.block(s.cmds)
	if err == errReturn {
		return nil
	}
	return err
}

func (r *run) block(cmds []command) error {
	for _, c := range cmds {
		if err := r.step(1); err != nil {
			return err
		}
		if err := c.exec(r); err != nil {
			return err
		}
	}
	return nil
}

// step spends n units of the work budget.
func (r *run) step(n int64) error {
	r.steps += n
	if r.steps > r.opts.MaxSteps {
		return ErrSteps
	}
	if r.steps&0x3ff == 0 {
		if err := r.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) fail(p Pos, err error) error {
	if err == nil {
		return nil
	}
	var re *RuntimeError
	if errors.As(err, &re) || err == errStop || err == errReturn {
		return err
	}
	return &RuntimeError{Pos: p, Script: r.scriptName, Err: err}
}

func (r *run) loadHeader() {
	counts := map[string]int{}
	r.header = make([]*hfield, 0, len(r.env.Header))
	for _, f := range r.env.Header {
		l := strings.ToLower(f.Name)
		counts[l]++
		r.header = append(r.header, &hfield{name: f.Name, lname: l, value: f.Value, orig: counts[l]})
	}
}

// fields returns the current fields named lname, in order.
func (r *run) fields(lname string) []*hfield {
	if r.byName == nil {
		r.byName = make(map[string][]*hfield, len(r.header))
		for _, f := range r.header {
			r.byName[f.lname] = append(r.byName[f.lname], f)
		}
	}
	return r.byName[lname]
}

// decodedValue is a field's value as header tests see it: unfolded,
// trimmed, encoded words decoded (RFC 5228 §2.7.2).
func (f *hfield) decodedValue() string {
	if !f.hasDecoded {
		v := f.value
		if strings.ContainsAny(v, "\r\n") {
			v = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
		}
		v = strings.Trim(v, " \t")
		if strings.Contains(v, "=?") {
			if d, err := wordDecoder.DecodeHeader(v); err == nil {
				v = d
			}
		}
		f.decoded, f.hasDecoded = v, true
	}
	return f.decoded
}

// firstValue is the decoded value of the first field named lname.
func (r *run) firstValue(lname string) (string, bool) {
	fs := r.fields(lname)
	if len(fs) == 0 {
		return "", false
	}
	return fs[0].decodedValue(), true
}

// expand evaluates a string argument.
func (r *run) expand(s *str) string {
	if s.parts == nil {
		return s.raw
	}
	var b strings.Builder
	for _, p := range s.parts {
		switch {
		case p.name != "":
			b.WriteString(r.getVar(p.name))
		case p.match >= 0:
			if p.match < len(r.match) {
				b.WriteString(r.match[p.match])
			}
		default:
			b.WriteString(p.lit)
		}
	}
	return truncUTF8(b.String(), r.opts.MaxVariableBytes*4)
}

func (r *run) expandAll(list []*str) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = r.expand(s)
	}
	return out
}

func (r *run) isGlobal(name string) (string, bool) {
	if strings.HasPrefix(name, "global.") {
		return name[len("global."):], true
	}
	return name, r.scope.globals[name]
}

func (r *run) getVar(name string) string {
	if n, ok := r.isGlobal(name); ok {
		return r.globals[n]
	}
	return r.scope.vars[name]
}

func (r *run) setVar(name, value string) error {
	value = truncUTF8(value, r.opts.MaxVariableBytes)
	m := r.scope.vars
	if n, ok := r.isGlobal(name); ok {
		m, name = r.globals, n
	}
	if _, ok := m[name]; !ok && len(m) >= r.opts.MaxVariables {
		return fmt.Errorf("%w: more than %d variables", ErrInvalid, r.opts.MaxVariables)
	}
	m[name] = value
	return nil
}

// addAction records an action, deduplicating and checking the limits and
// conflicts (RFC 5228 §2.10, RFC 5429 §2.4).
func (r *run) addAction(a Action) error {
	switch a.Kind {
	case ActionKeep, ActionFileInto:
		mbox := a.Mailbox
		if a.Kind == ActionKeep || strings.EqualFold(mbox, "INBOX") {
			mbox = "INBOX"
		}
		for i := range r.actions {
			b := &r.actions[i]
			if (b.Kind == ActionKeep || b.Kind == ActionFileInto) && (b.Mailbox == mbox || b.Kind == ActionKeep && mbox == "INBOX") {
				b.Flags = unionFlags(b.Flags, a.Flags)
				b.Create = b.Create || a.Create
				if !a.Copy {
					r.implicitKeep = false
				}
				return nil
			}
		}
		a.Mailbox = mbox
		if r.rejected {
			return ErrConflict
		}
		r.delivering = true
	case ActionRedirect:
		for _, b := range r.actions {
			if b.Kind == ActionRedirect && sameAddress(b.Address, a.Address) {
				if !a.Copy {
					r.implicitKeep = false
				}
				return nil
			}
		}
		if r.rejected {
			return ErrConflict
		}
		if r.redirects >= r.opts.MaxRedirects {
			return ErrTooManyRedirects
		}
		r.redirects++
		r.delivering = true
	case ActionReject, ActionEReject:
		if r.rejected || r.delivering || r.vacation != nil {
			return ErrConflict
		}
		r.rejected = true
	case ActionDiscard:
		r.implicitKeep = false
		for _, b := range r.actions {
			if b.Kind == ActionDiscard {
				return nil
			}
		}
	}
	if len(r.actions) >= r.opts.MaxActions {
		return ErrTooManyActions
	}
	if !a.Copy {
		r.implicitKeep = false
	}
	r.actions = append(r.actions, a)
	return nil
}

func (r *run) result() Result {
	res := Result{
		Actions:      r.actions,
		ImplicitKeep: r.implicitKeep,
		Vacation:     r.vacation,
		Delete:       r.deleted,
		Duplicates:   r.dups,
	}
	// A "keep" stores the INBOX copy: the implicit keep adds nothing.
	for _, a := range r.actions {
		if a.Kind == ActionKeep {
			res.ImplicitKeep = false
		}
	}
	if res.ImplicitKeep {
		res.KeepFlags = splitFlags(r.flags)
	}
	for _, f := range r.header {
		switch {
		case f.orig == 0 && f.bottom:
			res.AddBottom = append(res.AddBottom, Field{f.name, f.value})
		case f.orig == 0:
			res.AddTop = append(res.AddTop, Field{f.name, f.value})
		}
	}
	return res
}

// sameAddress compares addresses as SMTP does: the local part exactly,
// the domain without regard to case (RFC 5321 §2.4).
func sameAddress(a, b string) bool {
	la, da := splitAddr(a)
	lb, db := splitAddr(b)
	return la == lb && strings.EqualFold(da, db)
}
