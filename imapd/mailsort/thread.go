package mailsort

import (
	"cmp"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
)

// SentDate is the sent date of RFC 5256 §2.2: the Date header's instant,
// or the internal date when the header is missing or unparsable (zero).
func SentDate(date, internal time.Time) int64 {
	if date.IsZero() {
		return internal.Unix()
	}
	return date.Unix()
}

// Message is what threading needs of one message.
type Message struct {
	Num        uint32 // what the response names: sequence number or UID
	Date       int64  // SentDate
	Subject    string // BaseSubject's base
	ReplyOrFwd bool   // BaseSubject's second result
	// MessageID is FirstMsgID of the Message-ID field; References is
	// MsgIDs of References or, when that has none, the first of
	// In-Reply-To (RFC 5256 §3 step 1).
	MessageID  string
	References []string
}

// node is a container of the REFERENCES algorithm; msg < 0 is a dummy.
type node struct {
	msg              int
	parent           *node
	firstChild, next *node
	lastChild        *node
	date             int64 // sort date: the message's, or a dummy's first child's
	seq              int   // tie-breaker: the message's index
}

func (n *node) addChild(c *node) {
	c.parent, c.next = n, nil
	if n.lastChild == nil {
		n.firstChild = c
	} else {
		n.lastChild.next = c
	}
	n.lastChild = c
}

func (n *node) removeChild(c *node) {
	var prev *node
	for p := n.firstChild; p != nil; prev, p = p, p.next {
		if p != c {
			continue
		}
		if prev == nil {
			n.firstChild = c.next
		} else {
			prev.next = c.next
		}
		if n.lastChild == c {
			n.lastChild = prev
		}
		break
	}
	c.parent, c.next = nil, nil
}

// isAncestor reports whether a is b or one of b's ancestors.
func isAncestor(a, b *node) bool {
	for n := b; n != nil; n = n.parent {
		if n == a {
			return true
		}
	}
	return false
}

// References threads msgs (in sequence order) by the REFERENCES algorithm
// of RFC 5256 §3.
func References(msgs []Message) []imap.ThreadData {
	byID := make(map[string]*node, len(msgs))
	get := func(id string) *node {
		n := byID[id]
		if n == nil {
			n = &node{msg: -1}
			byID[id] = n
		}
		return n
	}
	nodes := make([]*node, len(msgs))
	// (1) Containers, references linked in order, message under its last.
	for i := range msgs {
		m := &msgs[i]
		var n *node
		if m.MessageID != "" {
			if c := byID[m.MessageID]; c == nil || c.msg < 0 {
				n = get(m.MessageID)
			}
		}
		if n == nil {
			// (1A) No ID, or one an earlier message has: unique.
			n = &node{}
		}
		n.msg, n.seq = i, i
		nodes[i] = n
		var prev *node
		for _, ref := range m.References {
			c := get(ref)
			// (1B) Link prev -> c unless c has a parent or it makes a loop.
			if prev != nil && c.parent == nil && !isAncestor(c, prev) {
				prev.addChild(c)
			}
			prev = c
		}
		// (1C) The last reference is the parent, replacing any presumed one.
		if prev != nil && isAncestor(n, prev) {
			prev = nil // a loop through this message: keep no parent
		}
		if n.parent != prev {
			if n.parent != nil {
				n.parent.removeChild(n)
			}
			if prev != nil {
				prev.addChild(n)
			}
		}
	}
	// (2) The root set, in the order messages first reach it; (3) the
	// ID table is dropped with byID.
	var tops []*node
	inRoot := make(map[*node]bool)
	for _, n := range nodes {
		for n.parent != nil {
			n = n.parent
		}
		if !inRoot[n] {
			inRoot[n] = true
			tops = append(tops, n)
		}
	}
	root := &node{msg: -1}
	root.setChildren(tops)
	// (4) Prune dummies.
	prune(root)
	// (5) Group the root set by base subject.
	groupBySubject(root, msgs)
	// (6) Sort siblings by sent date, then sequence.
	sortTree(root, msgs)
	return threadData(root, msgs)
}

func (n *node) children() []*node {
	var cs []*node
	for c := n.firstChild; c != nil; c = c.next {
		cs = append(cs, c)
	}
	return cs
}

func (n *node) setChildren(cs []*node) {
	n.firstChild, n.lastChild = nil, nil
	for _, c := range cs {
		n.addChild(c)
	}
}

// prune applies step 4 below n: dummies without children go; a dummy's
// children replace it, except at the root when it has more than one.
func prune(n *node) {
	var out []*node
	work := n.children()
	for len(work) > 0 {
		c := work[0]
		work = work[1:]
		if c.msg >= 0 {
			prune(c)
			out = append(out, c)
			continue
		}
		kids := c.children()
		switch {
		case len(kids) == 0:
		case n.parent != nil || n.msg >= 0 || len(kids) == 1:
			// Promote: the children are looked at again at this level.
			work = append(kids, work...)
		default:
			prune(c)
			out = append(out, c)
		}
	}
	n.setChildren(out)
}

// subjectOf is a root's thread subject: its message's, or its first
// child's when it is a dummy.
func subjectOf(n *node, msgs []Message) (*Message, bool) {
	if n.msg < 0 {
		n = n.firstChild
		if n == nil || n.msg < 0 {
			return nil, false
		}
	}
	return &msgs[n.msg], true
}

// groupBySubject applies step 5.
func groupBySubject(root *node, msgs []Message) {
	table := make(map[string]*node)
	roots := root.children()
	for _, n := range roots {
		m, ok := subjectOf(n, msgs)
		if !ok || m.Subject == "" {
			continue
		}
		old := table[m.Subject]
		if old == nil ||
			(old.msg >= 0 && n.msg < 0) ||
			(old.msg >= 0 && n.msg >= 0 && msgs[old.msg].ReplyOrFwd && !m.ReplyOrFwd) {
			table[m.Subject] = n
		}
	}
	var out []*node
	for _, n := range roots {
		m, ok := subjectOf(n, msgs)
		if !ok || m.Subject == "" {
			out = append(out, n)
			continue
		}
		t := table[m.Subject]
		if t == n {
			out = append(out, n)
			continue
		}
		switch {
		case t.msg < 0 && n.msg < 0:
			for _, c := range n.children() {
				t.addChild(c)
			}
		case t.msg < 0:
			t.addChild(n)
		case n.msg < 0:
			// The table's message goes under this dummy, which takes its
			// place among the roots.
			if t.parent == root {
				replaceRoot(&out, t, n)
			}
			t.next = nil
			n.addChild(t)
			table[m.Subject] = n
		case !msgs[t.msg].ReplyOrFwd && msgs[n.msg].ReplyOrFwd:
			t.addChild(n)
		default:
			d := &node{msg: -1}
			replaceRoot(&out, t, d)
			t.next = nil
			d.addChild(t)
			d.addChild(n)
			table[m.Subject] = d
		}
	}
	root.setChildren(out)
}

// replaceRoot puts d where old is in out (old always precedes the root
// being merged, so it is there).
func replaceRoot(out *[]*node, old, d *node) {
	for i, c := range *out {
		if c == old {
			(*out)[i] = d
			d.parent = old.parent
			return
		}
	}
}

// sortTree applies step 6: children before parents, each set of siblings
// by sent date then sequence; a dummy sorts by its first child.
func sortTree(n *node, msgs []Message) {
	cs := n.children()
	for _, c := range cs {
		sortTree(c, msgs)
	}
	if n.msg >= 0 {
		n.date, n.seq = msgs[n.msg].Date, n.msg
	} else if len(cs) > 0 {
		// Children are sorted below, so the first child is known after.
		defer func() { n.date, n.seq = n.firstChild.date, n.firstChild.seq }()
	}
	slices.SortStableFunc(cs, func(a, b *node) int {
		if r := cmp.Compare(a.date, b.date); r != 0 {
			return r
		}
		return cmp.Compare(a.seq, b.seq)
	})
	n.setChildren(cs)
}

// threadData turns the children of root into THREAD's nested lists:
// a message with one child continues the chain.
func threadData(root *node, msgs []Message) []imap.ThreadData {
	var out []imap.ThreadData
	for c := root.firstChild; c != nil; c = c.next {
		out = append(out, threadOf(c, msgs))
	}
	return out
}

func threadOf(n *node, msgs []Message) imap.ThreadData {
	var t imap.ThreadData
	for n.msg >= 0 {
		t.Chain = append(t.Chain, msgs[n.msg].Num)
		if n.firstChild == nil || n.firstChild.next != nil {
			break
		}
		n = n.firstChild
	}
	for c := n.firstChild; c != nil; c = c.next {
		t.SubThreads = append(t.SubThreads, threadOf(c, msgs))
	}
	return t
}

// OrderedSubject threads msgs (in sequence order) by ORDEREDSUBJECT
// (RFC 5256 §3): messages sorted by base subject, then sent date; each
// run of one subject is a thread whose first message is the parent of
// the others; threads ordered by their first message's sent date.
func OrderedSubject(msgs []Message) []imap.ThreadData {
	idx := make([]int, len(msgs))
	for i := range idx {
		idx[i] = i
	}
	byDate := func(a, b int) int {
		if r := cmp.Compare(msgs[a].Date, msgs[b].Date); r != 0 {
			return r
		}
		return cmp.Compare(a, b)
	}
	slices.SortFunc(idx, func(a, b int) int {
		if r := cmp.Compare(msgs[a].Subject, msgs[b].Subject); r != 0 {
			return r
		}
		return byDate(a, b)
	})
	type thread struct {
		first int
		data  imap.ThreadData
	}
	var threads []thread
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && msgs[idx[j]].Subject == msgs[idx[i]].Subject {
			j++
		}
		t := thread{first: idx[i], data: imap.ThreadData{Chain: []uint32{msgs[idx[i]].Num}}}
		if j-i == 2 {
			t.data.Chain = append(t.data.Chain, msgs[idx[i+1]].Num)
		} else {
			for _, k := range idx[i+1 : j] {
				t.data.SubThreads = append(t.data.SubThreads, imap.ThreadData{Chain: []uint32{msgs[k].Num}})
			}
		}
		threads = append(threads, t)
		i = j
	}
	slices.SortFunc(threads, func(a, b thread) int { return byDate(a.first, b.first) })
	out := make([]imap.ThreadData, len(threads))
	for i := range threads {
		out[i] = threads[i].data
	}
	return out
}
