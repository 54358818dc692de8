package delivery

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// FieldRef names header fields a verdict removes: the Index-th field
// called Name (1-based, the name compared without regard to case), or
// every field of that name with Index 0. Fields are counted over the
// header the filter was shown: Message.Added on top, in that order, then
// the message's own fields (as a milter's SMFIR_CHGHEADER index counts
// over the header it was sent). A field that does not exist is no error:
// nothing is removed.
type FieldRef struct {
	Name  string
	Index int
}

// Bounds on removals.
const (
	// maxRemoveRefs bounds the refs all filters give for one copy.
	maxRemoveRefs = 100
	// maxCutRanges bounds the separate stretches of the message's header
	// one copy leaves out (adjacent removed fields are one): each costs a
	// section reader as long as the copy is read. Only Index 0 over a
	// hostile header of thousands of alternating tiny fields comes near.
	maxCutRanges = 1000
)

// validate accepts a field name as Field.validate does and an Index of 0
// or more.
func (r FieldRef) validate() error {
	if err := (Field{Name: r.Name}).validate(); err != nil {
		return err
	}
	if r.Index < 0 {
		return fmt.Errorf("bad index %d of header field %s", r.Index, r.Name)
	}
	return nil
}

// splitRefs sorts refs, counted over the header a filter was shown (added
// on top of the message's own fields), into the indices in added of the
// added fields they name and refs to the message's own fields, renumbered
// to count those alone.
func splitRefs(refs []FieldRef, added []Field) (drop []int, own []FieldRef) {
	for _, ref := range refs {
		seen := 0
		for i, f := range added {
			if !strings.EqualFold(f.Name, ref.Name) {
				continue
			}
			seen++
			if ref.Index == 0 || ref.Index == seen {
				drop = append(drop, i)
			}
		}
		switch {
		case ref.Index == 0:
			own = append(own, ref)
		case ref.Index > seen:
			own = append(own, FieldRef{Name: ref.Name, Index: ref.Index - seen})
		}
	}
	return drop, own
}

// locateFields scans the header at the start of r once and returns the
// byte ranges of the fields refs name (each field with its continuation
// lines and line end), in order, adjacent ones joined. more reports that
// there were more than maxCutRanges of them; the later ones are not
// returned.
//
// The fields are those a milter is sent (milter's scanHeader has the same
// rules): the header ends at an empty line, at a line that is neither a
// field (a name of printable ASCII, optional white space, a colon) nor a
// fold (a line starting with a space or tab), or at the end of the input.
// Only the first MaxHeaderBytes octets are looked at: a field that does
// not end within them is not found, nor is any after it. The scan holds
// one 4 KiB buffer and the ranges found, whatever the input.
func locateFields(r *io.SectionReader, refs []FieldRef) (ranges [][2]int64, more bool) {
	if len(refs) == 0 {
		return nil, false
	}
	type wanted struct {
		all   bool
		index []int
		seen  int
	}
	byName := map[string]*wanted{}
	for _, ref := range refs {
		k := strings.ToLower(ref.Name)
		w := byName[k]
		if w == nil {
			w = &wanted{}
			byName[k] = w
		}
		if ref.Index == 0 {
			w.all = true
		} else {
			w.index = append(w.index, ref.Index)
		}
	}
	// One octet past the bound: whether a field ending right at it has a
	// fold after it.
	window := min(r.Size(), MaxHeaderBytes+1)
	whole := window == r.Size()
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, window), 4096)
	var (
		off     int64       // start of the current line
		cut     int64  = -1 // start of the current field if it goes
		inField bool        // the current line may be a fold
		name    []byte      // the current field's, in lower case
	)
	found := func(end int64) bool {
		if cut < 0 {
			return true
		}
		if n := len(ranges); n > 0 && ranges[n-1][1] == cut {
			ranges[n-1][1] = end
		} else if n == maxCutRanges {
			more = true
			return false
		} else {
			ranges = append(ranges, [2]int64{cut, end})
		}
		cut = -1
		return true
	}
	for {
		first, err := br.Peek(1)
		if err != nil { // the end of the window
			if whole {
				found(off)
			}
			return ranges, more
		}
		n := int64(0) // octets of this line consumed
		if first[0] == ' ' || first[0] == '\t' {
			if !inField {
				return ranges, more
			}
		} else {
			if !found(off) {
				return ranges, more
			}
			inField = false
			// The name: field-name characters, optional white space,
			// a colon; anything else ends the header.
			name = name[:0]
			space := false
			for {
				c, err := br.ReadByte()
				if err != nil {
					return ranges, more
				}
				n++
				if c == ':' && len(name) > 0 {
					break
				}
				switch {
				case c == ' ' || c == '\t':
					space = true
				case c > ' ' && c < 0x7f && c != ':' && !space:
					if len(name) <= 76 {
						if 'A' <= c && c <= 'Z' {
							c += 'a' - 'A'
						}
						name = append(name, c)
					}
				default:
					return ranges, more
				}
			}
			inField = true
			if len(name) <= 76 {
				if w := byName[string(name)]; w != nil { // lower case
					w.seen++
					if w.all || slices.Contains(w.index, w.seen) {
						cut = off
					}
				}
			}
		}
		// The rest of the line.
		for {
			chunk, err := br.ReadSlice('\n')
			n += int64(len(chunk))
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull { // a last line without LF
				off += n
				if whole {
					found(off)
				}
				return ranges, more
			}
		}
		off += n
	}
}
