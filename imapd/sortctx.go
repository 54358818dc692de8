package imapd

import (
	"encoding/binary"
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/imapd/mailsort"
	"github.com/posthouse/posthouse/mailstore"
)

// CONTEXT=SORT (RFC 5267 §4): live SORT results.
//
// A SORT with RETURN (UPDATE) is a live result like SEARCH's (searchctx.go:
// the same dirty UIDs, store search restricted to them, limit and
// CANCELUPDATE) that also keeps its order: one string per message,
// mailsort.Encode of its sort key, whose byte order is the sort order
// and which ends with the UID. Sort keys never change (they come from
// the message's envelope, size and internal date), so a flag change can
// only move a message in or out of the result, never within it. The poll
// computes the keys of the messages entering, from the index, and finds
// their positions by binary search in the kept order; a message leaving
// is found through its UID. ADDTO and REMOVEFROM carry 1-based positions
// in the result as the client has it (§4.3.3, §4.3.4), each applied in
// turn, and the numbers of a run of adjacent positions in sort order.
//
// Memory: a result costs its encoded keys (the keys the criteria use, 12
// bytes for ARRIVAL, DATE or SIZE, plus the casemapped string of a
// SUBJECT or address key) and two string headers per message: on 100,000
// messages, 48 bytes a message sorted by DATE and 77 by a 25-character
// subject (HeapInuse after GC around newSortedResult). A result
// over maxLiveSortBytes when made is answered once and not kept (NO
// [NOUPDATE]); after that it grows only by the messages entering it.

// maxLiveSortBytes bounds what one live SORT result may hold when it is
// made: about 200,000 messages sorted by date, 100,000 by subject.
const maxLiveSortBytes = 8 << 20

// sortedResult is the order of a live SORT result.
type sortedResult struct {
	km    keyMaker
	order keyList // encoded keys, in sort order
	byUID keyList // the same strings, in UID order
}

// newSortedResult keeps keys, already in sort order; false when they are
// more than maxLiveSortBytes.
func newSortedResult(km keyMaker, keys []mailsort.Key) (*sortedResult, bool) {
	enc := make([]string, len(keys))
	size := 0
	for i := range keys {
		enc[i] = mailsort.Encode(&keys[i], km.criteria)
		size += len(enc[i]) + 2*16
		if size > maxLiveSortBytes {
			return nil, false
		}
	}
	byUID := slices.Clone(enc)
	slices.SortFunc(byUID, compareUID)
	return &sortedResult{
		km:    km,
		order: newKeyList(enc, strings.Compare),
		byUID: newKeyList(byUID, compareUID),
	}, true
}

// compareUID orders encoded keys by the UID they end with.
func compareUID(a, b string) int {
	return strings.Compare(a[len(a)-4:], b[len(b)-4:])
}

// uidProbe is a string that compareUID places where uid's key is.
func uidProbe(uid imap.UID) string {
	return string(binary.BigEndian.AppendUint32(nil, uint32(uid)))
}

func keyUID(enc string) imap.UID { return imap.UID(mailsort.EncodedSeq(enc)) }

// uidSet is the result's UIDs.
func (r *sortedResult) uidSet() imap.UIDSet {
	var set imap.UIDSet
	r.byUID.each(func(enc string) { set.AddNum(keyUID(enc)) })
	return set
}

// insert adds enc and returns its 0-based position.
func (r *sortedResult) insert(enc string) int {
	r.byUID.insert(enc)
	return r.order.insert(enc)
}

// remove takes uid out and returns the 0-based position it had.
func (r *sortedResult) remove(uid imap.UID) (int, bool) {
	enc, _, ok := r.byUID.remove(uidProbe(uid))
	if !ok {
		return 0, false
	}
	_, pos, ok := r.order.remove(enc)
	return pos, ok
}

// writeExpunged writes the REMOVEFROM that precedes the EXPUNGE of uid,
// a member of the result, numbered seqNum.
func (r *sortedResult) writeExpunged(w *imapserver.UpdateWriter, ls *liveSearch, seqNum uint32, uid imap.UID) error {
	pos, ok := r.remove(uid)
	if !ok {
		return nil
	}
	n := seqNum
	if ls.kind == imapserver.NumKindUID {
		n = uint32(uid)
	}
	return w.WriteSortUpdate(ls.tag, ls.kind, true, uint32(pos+1), []uint32{n})
}

// sortKeysOf fills up.keys with the encoded keys of up.add, read from the
// index; messages gone meanwhile leave up.add.
func (s *session) sortKeysOf(up *searchUpdate) error {
	km := up.ls.sorted.km
	ts := make([]target, len(up.add))
	for i, uid := range up.add {
		ts[i] = target{uid: uid}
	}
	ctx, cancel := s.op()
	defer cancel()
	add := up.add[:0]
	err := s.eachRow(ctx, ts, km.fetchOptions(), func(t target, row *mailstore.MessageInfo) error {
		k := km.key(0, t.uid, row)
		add = append(add, t.uid)
		up.keys = append(up.keys, mailsort.Encode(&k, km.criteria))
		return nil
	})
	up.add = add
	return err
}

// sortOp is one ADDTO or REMOVEFROM of a live SORT result: nums, in sort
// order, at a 1-based position.
type sortOp struct {
	removed bool
	pos     uint32
	nums    []uint32
}

// writeSortUpdates applies what evalLiveSearches found to a live SORT
// result and writes it: first what left, then what entered, each in sort
// order, so that a run of adjacent messages is one REMOVEFROM or ADDTO.
// Positions are computed one message at a time on the result as the
// client has it at that point (RFC 5267 §4.3.2: the client applies them
// in order). A new message the client has not been told of stays dirty.
func (s *session) writeSortUpdates(w *imapserver.UpdateWriter, up searchUpdate) error {
	sel := s.sel
	st := sel.st
	ls := up.ls
	r := ls.sorted
	num := func(uid imap.UID, c uint32) uint32 {
		if ls.kind == imapserver.NumKindUID {
			return uint32(uid)
		}
		return c
	}
	var ops []sortOp
	st.mu.Lock()
	// What left, in sort order: each removal leaves the next adjacent
	// one at the same position.
	var gone []string
	for _, uid := range up.remove {
		if !ls.result.Contains(uid) || sel.clientSeqLocked(uid) == 0 {
			continue // expunged: the expunge hook tells the client
		}
		if enc, ok := r.byUID.find(uidProbe(uid)); ok {
			gone = append(gone, enc)
		}
	}
	slices.SortFunc(gone, strings.Compare)
	for _, enc := range gone {
		uid := keyUID(enc)
		pos, ok := r.remove(uid)
		if !ok {
			continue
		}
		ls.result = removeUID(ls.result, uid)
		n := num(uid, sel.clientSeqLocked(uid))
		if last := len(ops) - 1; last >= 0 && ops[last].pos == uint32(pos+1) {
			ops[last].nums = append(ops[last].nums, n)
		} else {
			ops = append(ops, sortOp{removed: true, pos: uint32(pos + 1), nums: []uint32{n}})
		}
	}
	// What entered, in sort order: adjacent ones take consecutive
	// positions.
	type entry struct {
		enc string
		c   uint32
	}
	var added []entry
	for i, uid := range up.add {
		if ls.result.Contains(uid) {
			continue
		}
		c := sel.clientSeqLocked(uid)
		if c == 0 {
			if _, ok := st.indexLocked(uid); ok {
				sel.dirty.AddNum(uid)
			}
			continue
		}
		added = append(added, entry{up.keys[i], c})
	}
	slices.SortFunc(added, func(a, b entry) int { return strings.Compare(a.enc, b.enc) })
	first := len(ops)
	for _, e := range added {
		uid := keyUID(e.enc)
		pos := r.insert(e.enc)
		ls.result.AddNum(uid)
		n := num(uid, e.c)
		if last := len(ops) - 1; last >= first && ops[last].pos+uint32(len(ops[last].nums)) == uint32(pos+1) {
			ops[last].nums = append(ops[last].nums, n)
		} else {
			ops = append(ops, sortOp{pos: uint32(pos + 1), nums: []uint32{n}})
		}
	}
	st.mu.Unlock()
	for _, op := range ops {
		if err := w.WriteSortUpdate(ls.tag, ls.kind, op.removed, op.pos, op.nums); err != nil {
			return err
		}
	}
	return nil
}

// keyList is a sorted list of distinct strings kept in blocks of at most
// 2*keyBlock, so that an insertion or removal moves one block's entries,
// not the whole list's: a mass expunge from a large live result stays
// linear in the expunges. A position costs a walk over the blocks.
type keyList struct {
	cmp    func(a, b string) int
	blocks [][]string
}

const keyBlock = 256

// newKeyList takes sorted, distinct strings.
func newKeyList(sorted []string, cmp func(a, b string) int) keyList {
	l := keyList{cmp: cmp}
	for len(sorted) > 0 {
		n := min(len(sorted), keyBlock)
		// Clipped, so that growing one block never writes into the next.
		l.blocks = append(l.blocks, slices.Clip(sorted[:n]))
		sorted = sorted[n:]
	}
	return l
}

// search finds the block and index where k is or would go.
func (l *keyList) search(k string) (b, i int, found bool) {
	b = sort.Search(len(l.blocks), func(j int) bool {
		blk := l.blocks[j]
		return l.cmp(blk[len(blk)-1], k) >= 0
	})
	if b == len(l.blocks) {
		return b, 0, false
	}
	i, found = slices.BinarySearchFunc(l.blocks[b], k, l.cmp)
	return b, i, found
}

// position is the 0-based position of entry i of block b.
func (l *keyList) position(b, i int) int {
	for _, blk := range l.blocks[:b] {
		i += len(blk)
	}
	return i
}

// find returns the entry equal to k under cmp.
func (l *keyList) find(k string) (string, bool) {
	b, i, ok := l.search(k)
	if !ok {
		return "", false
	}
	return l.blocks[b][i], true
}

// insert adds k, which must not be there, and returns its position.
func (l *keyList) insert(k string) int {
	b, i, _ := l.search(k)
	switch {
	case len(l.blocks) == 0:
		l.blocks = [][]string{{k}}
		return 0
	case b == len(l.blocks):
		b = len(l.blocks) - 1
		i = len(l.blocks[b])
	}
	pos := l.position(b, i)
	l.blocks[b] = slices.Insert(l.blocks[b], i, k)
	if blk := l.blocks[b]; len(blk) > 2*keyBlock {
		half := len(blk) / 2
		l.blocks = slices.Insert(l.blocks, b+1, slices.Clone(blk[half:]))
		clear(blk[half:])
		l.blocks[b] = slices.Clip(blk[:half])
	}
	return pos
}

// remove takes out the entry equal to k under cmp and returns it with
// the position it had.
func (l *keyList) remove(k string) (string, int, bool) {
	b, i, ok := l.search(k)
	if !ok {
		return "", 0, false
	}
	enc := l.blocks[b][i]
	pos := l.position(b, i)
	l.blocks[b] = slices.Delete(l.blocks[b], i, i+1)
	if len(l.blocks[b]) == 0 {
		l.blocks = slices.Delete(l.blocks, b, b+1)
	}
	return enc, pos, true
}

func (l *keyList) each(fn func(string)) {
	for _, blk := range l.blocks {
		for _, k := range blk {
			fn(k)
		}
	}
}

func (l *keyList) len() int {
	n := 0
	for _, blk := range l.blocks {
		n += len(blk)
	}
	return n
}
