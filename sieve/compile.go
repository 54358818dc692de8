package sieve

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Extensions lists every capability this package implements, as named in
// "require" (and as ManageSieve's SIEVE capability will list them).
var Extensions = []string{
	"body", "comparator-i;ascii-numeric", "copy", "date", "duplicate",
	"editheader", "encoded-character", "envelope", "ereject", "fileinto",
	"imap4flags", "include", "index", "mailbox", "regex", "reject",
	"relational", "spamtest", "spamtestplus", "subaddress", "vacation",
	"vacation-seconds", "variables",
}

// alwaysAvailable may be required but need not be (RFC 5228 §2.7.3).
var alwaysAvailable = map[string]bool{"comparator-i;octet": true, "comparator-i;ascii-casemap": true}

// Options are the limits a script is compiled and run under. A zero
// field takes the default named after it.
type Options struct {
	MaxScriptBytes   int   // DefaultMaxScriptBytes
	MaxNesting       int   // DefaultMaxNesting: blocks and tests within each other
	MaxActions       int   // DefaultMaxActions: actions in one result
	MaxRedirects     int   // DefaultMaxRedirects
	MaxIncludeDepth  int   // DefaultMaxIncludeDepth
	MaxSteps         int64 // DefaultMaxSteps: the work budget of one run
	MaxRegexBytes    int   // DefaultMaxRegexBytes: one :regex key
	MaxRegexProg     int   // DefaultMaxRegexProg: instructions of its compiled program
	MaxBodyBytes     int64 // DefaultMaxBodyBytes: how much of a message body tests read
	MaxVariables     int   // DefaultMaxVariables per script
	MaxVariableBytes int   // DefaultMaxVariableBytes: longer values are truncated

	// Vacation periods (RFC 5230 §4.1, RFC 6131): DefaultVacationPeriod,
	// DefaultVacationMinPeriod, DefaultVacationMaxPeriod.
	VacationPeriod, VacationMinPeriod, VacationMaxPeriod time.Duration
	// Duplicate tracking periods (RFC 7352 §3.3).
	DuplicatePeriod, DuplicateMaxPeriod time.Duration

	// Disabled names extensions a "require" may not ask for.
	Disabled []string
}

// Defaults of Options.
const (
	DefaultMaxScriptBytes     = 256 << 10
	DefaultMaxNesting         = 32
	DefaultMaxActions         = 32
	DefaultMaxRedirects       = 4
	DefaultMaxIncludeDepth    = 5
	DefaultMaxSteps           = 1_000_000
	DefaultMaxRegexBytes      = 1024
	DefaultMaxRegexProg       = 5000
	DefaultMaxBodyBytes       = 1 << 20
	DefaultMaxVariables       = 256
	DefaultMaxVariableBytes   = 4096
	DefaultVacationPeriod     = 7 * 24 * time.Hour
	DefaultVacationMinPeriod  = 24 * time.Hour
	DefaultVacationMaxPeriod  = 90 * 24 * time.Hour
	DefaultDuplicatePeriod    = 7 * 24 * time.Hour
	DefaultDuplicateMaxPeriod = 90 * 24 * time.Hour
)

func (o Options) withDefaults() Options {
	setI := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setI(&o.MaxScriptBytes, DefaultMaxScriptBytes)
	setI(&o.MaxNesting, DefaultMaxNesting)
	setI(&o.MaxActions, DefaultMaxActions)
	setI(&o.MaxRedirects, DefaultMaxRedirects)
	setI(&o.MaxIncludeDepth, DefaultMaxIncludeDepth)
	setI(&o.MaxRegexBytes, DefaultMaxRegexBytes)
	setI(&o.MaxRegexProg, DefaultMaxRegexProg)
	setI(&o.MaxVariables, DefaultMaxVariables)
	setI(&o.MaxVariableBytes, DefaultMaxVariableBytes)
	if o.MaxSteps <= 0 {
		o.MaxSteps = DefaultMaxSteps
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	setD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setD(&o.VacationPeriod, DefaultVacationPeriod)
	setD(&o.VacationMinPeriod, DefaultVacationMinPeriod)
	setD(&o.VacationMaxPeriod, DefaultVacationMaxPeriod)
	setD(&o.DuplicatePeriod, DefaultDuplicatePeriod)
	setD(&o.DuplicateMaxPeriod, DefaultDuplicateMaxPeriod)
	return o
}

// Script is a compiled script. It is immutable and safe for concurrent
// runs.
type Script struct {
	cmds []command
	opts Options
	exts map[string]bool
}

// Requires lists the extensions the script requires.
func (s *Script) Requires() []string {
	out := make([]string, 0, len(s.exts))
	for _, e := range Extensions {
		if s.exts[e] {
			out = append(out, e)
		}
	}
	return out
}

// Compile parses and checks a script (RFC 5228 and the extensions in
// Extensions). The error, a *Error, names the line and column of the
// first problem.
func Compile(src []byte, opts Options) (*Script, error) {
	opts = opts.withDefaults()
	if len(src) > opts.MaxScriptBytes {
		return nil, errAt(Pos{1, 1}, "script is larger than %d bytes", opts.MaxScriptBytes)
	}
	tree, err := parse(src, opts.MaxNesting)
	if err != nil {
		return nil, err
	}
	c := &compiler{opts: &opts, exts: map[string]bool{}}
	for _, d := range opts.Disabled {
		c.disabled = append(c.disabled, strings.ToLower(d))
	}
	cmds, err := c.block(tree, true)
	if err != nil {
		return nil, err
	}
	return &Script{cmds: cmds, opts: opts, exts: c.exts}, nil
}

type compiler struct {
	opts     *Options
	exts     map[string]bool
	disabled []string
	started  bool // a command other than require was seen
}

func (c *compiler) has(ext string) bool { return c.exts[ext] }

func (c *compiler) need(p Pos, what string, exts ...string) error {
	for _, e := range exts {
		if c.exts[e] {
			return nil
		}
	}
	return errAt(p, "%s requires the %q extension (missing from require)", what, exts[0])
}

// block compiles a list of commands; if/elsif/else chains become one.
func (c *compiler) block(nodes []*node, top bool) ([]command, error) {
	var out []command
	for i := 0; i < len(nodes); i++ {
		n := nodes[i]
		if n.name == "require" {
			if !top || c.started {
				return nil, errAt(n.pos, "require must come before any other command")
			}
			if err := c.require(n); err != nil {
				return nil, err
			}
			continue
		}
		c.started = true
		switch n.name {
		case "if":
			chain := &cmdIf{}
			for {
				br, err := c.branch(n, n.name != "else")
				if err != nil {
					return nil, err
				}
				chain.branches = append(chain.branches, br)
				if n.name == "else" || i+1 >= len(nodes) || (nodes[i+1].name != "elsif" && nodes[i+1].name != "else") {
					break
				}
				i++
				n = nodes[i]
			}
			out = append(out, chain)
			continue
		case "elsif", "else":
			return nil, errAt(n.pos, "%s without if", n.name)
		}
		cmd, err := c.command(n)
		if err != nil {
			return nil, err
		}
		out = append(out, cmd)
	}
	return out, nil
}

func (c *compiler) branch(n *node, withTest bool) (ifBranch, error) {
	if len(n.args) > 0 {
		return ifBranch{}, errAt(n.args[0].pos, "%s takes no arguments", n.name)
	}
	if !n.hasBlock {
		return ifBranch{}, errAt(n.pos, "%s needs a block", n.name)
	}
	var br ifBranch
	if withTest {
		if len(n.tests) != 1 || n.testList {
			return br, errAt(n.pos, "%s needs one test", n.name)
		}
		t, err := c.test(n.tests[0])
		if err != nil {
			return br, err
		}
		br.cond = t
	} else if len(n.tests) > 0 {
		return br, errAt(n.pos, "else takes no test")
	}
	body, err := c.block(n.block, false)
	br.body = body
	return br, err
}

func (c *compiler) require(n *node) error {
	a := c.args(n)
	list, err := a.strList("capability list")
	if err != nil {
		return err
	}
	if err := a.end(); err != nil {
		return err
	}
	if len(n.tests) > 0 || n.hasBlock {
		return errAt(n.pos, "require takes a string list and ';'")
	}
	for _, s := range list {
		name := strings.ToLower(s.s)
		known := alwaysAvailable[name]
		for _, e := range Extensions {
			if e == name {
				known = true
			}
		}
		for _, d := range c.disabled {
			if d == name {
				known = false
			}
		}
		if !known {
			return errAt(s.pos, "unsupported extension %q", s.s)
		}
		c.exts[name] = true
		if name == "vacation-seconds" {
			c.exts["vacation"] = true
		}
		if name == "spamtestplus" {
			c.exts["spamtest"] = true
		}
	}
	return nil
}

// str prepares a string argument: encoded characters, UTF-8, variables.
func (c *compiler) str(s srcString) (*str, error) {
	v := s.s
	if c.has("encoded-character") {
		d, err := decodeEncoded(v, s.pos)
		if err != nil {
			return nil, err
		}
		v = d
	}
	if !utf8.ValidString(v) {
		return nil, errAt(s.pos, "string is not valid UTF-8")
	}
	out := &str{raw: v, pos: s.pos}
	if c.has("variables") {
		parts, err := parseVars(v, s.pos, func(ns string) bool { return ns == "global" && c.has("include") })
		if err != nil {
			return nil, err
		}
		out.parts = parts
	}
	return out, nil
}

func (c *compiler) strs(list []srcString) ([]*str, error) {
	out := make([]*str, 0, len(list))
	for _, s := range list {
		v, err := c.str(s)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// argReader walks a node's arguments: tags first, then positionals.
type argReader struct {
	c    *compiler
	n    *node
	i    int
	seen map[string]bool
}

func (c *compiler) args(n *node) *argReader { return &argReader{c: c, n: n} }

// tag returns the next tagged argument, if the next argument is one.
func (a *argReader) tag() (string, Pos, bool) {
	if a.i < len(a.n.args) && a.n.args[a.i].kind == argTag {
		t := a.n.args[a.i]
		a.i++
		return t.tag, t.pos, true
	}
	return "", Pos{}, false
}

// once marks a tag (or a group of exclusive tags) as used.
func (a *argReader) once(group string, p Pos) error {
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	if a.seen[group] {
		return errAt(p, "%s: %s given twice or with a conflicting tag", a.n.name, group)
	}
	a.seen[group] = true
	return nil
}

func (a *argReader) next(what string) (arg, error) {
	if a.i >= len(a.n.args) {
		return arg{}, errAt(a.n.pos, "%s: missing %s", a.n.name, what)
	}
	x := a.n.args[a.i]
	a.i++
	return x, nil
}

func (a *argReader) number(what string) (uint64, Pos, error) {
	x, err := a.next(what)
	if err != nil {
		return 0, x.pos, err
	}
	if x.kind != argNumber {
		return 0, x.pos, errAt(x.pos, "%s: %s must be a number, not a %s", a.n.name, what, x.kind)
	}
	return x.num, x.pos, nil
}

func (a *argReader) srcStr(what string) (srcString, error) {
	x, err := a.next(what)
	if err != nil {
		return srcString{}, err
	}
	if x.kind != argString {
		return srcString{}, errAt(x.pos, "%s: %s must be a string, not a %s", a.n.name, what, x.kind)
	}
	return x.strs[0], nil
}

func (a *argReader) str(what string) (*str, error) {
	s, err := a.srcStr(what)
	if err != nil {
		return nil, err
	}
	return a.c.str(s)
}

func (a *argReader) strList(what string) ([]srcString, error) {
	x, err := a.next(what)
	if err != nil {
		return nil, err
	}
	if x.kind != argString && x.kind != argList {
		return nil, errAt(x.pos, "%s: %s must be a string list, not a %s", a.n.name, what, x.kind)
	}
	return x.strs, nil
}

func (a *argReader) strs(what string) ([]*str, error) {
	l, err := a.strList(what)
	if err != nil {
		return nil, err
	}
	return a.c.strs(l)
}

// more says whether a positional argument is left.
func (a *argReader) more() bool { return a.i < len(a.n.args) }

func (a *argReader) end() error {
	if a.i < len(a.n.args) {
		x := a.n.args[a.i]
		if x.kind == argTag {
			return errAt(x.pos, "%s: unknown or misplaced tag :%s", a.n.name, x.tag)
		}
		return errAt(x.pos, "%s: too many arguments", a.n.name)
	}
	return nil
}

// noTests checks a command takes neither tests nor a block.
func noTests(n *node) error {
	if len(n.tests) > 0 || n.testList {
		return errAt(n.pos, "%s takes no test", n.name)
	}
	if n.hasBlock {
		return errAt(n.pos, "%s takes no block", n.name)
	}
	return nil
}

// constStr demands a string without variables.
func constStr(s *str, what string) error {
	if !s.constant() {
		return errAt(s.pos, "%s must be a constant string", what)
	}
	return nil
}
