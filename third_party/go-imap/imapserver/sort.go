package imapserver

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionSort is an IMAP session which supports SORT (RFC 5256) and, with
// RETURN options, ESORT (RFC 5267) and PARTIAL (RFC 9394) (Posthouse
// patch).
type SessionSort interface {
	Session

	// Sort returns the message numbers (sequence numbers or UIDs, as kind
	// says) of the messages matching criteria, in the order sortCriteria
	// give. The connection derives MIN, MAX, COUNT, ALL and PARTIAL from
	// it.
	Sort(kind NumKind, sortCriteria []imap.SortCriterion, criteria *imap.SearchCriteria) ([]uint32, error)
}

// SessionSortContext is an IMAP session which supports CONTEXT=SORT (RFC
// 5267 §4): SORT RETURN (UPDATE) results it keeps up to date with
// UpdateWriter.WriteSortUpdate, ended by CancelUpdate (Posthouse patch).
type SessionSortContext interface {
	SessionSort
	SessionSearchContext

	// SortUpdate is Sort for a RETURN (UPDATE) command: the session keeps
	// the result, named by the command's tag, up to date. noUpdate says it
	// will not (a limit): "* NO [NOUPDATE tag]" follows the ESEARCH
	// response (RFC 5267 §4.3.1).
	SortUpdate(tag string, kind NumKind, sortCriteria []imap.SortCriterion, criteria *imap.SearchCriteria) (nums []uint32, noUpdate bool, err error)
}

// maxSortCriteria bounds the sort-criterion list; RFC 5256 has eleven keys.
const maxSortCriteria = 32

func (c *Conn) handleSort(tag string, dec *imapwire.Decoder, numKind NumKind) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	var options imap.SortOptions
	var atom string
	if maybeReadSearchKeyAtom(dec, &atom) {
		if !strings.EqualFold(atom, "RETURN") {
			return newClientBugError("expected sort criteria")
		}
		if err := readSortReturnOpts(dec, &options); err != nil {
			return fmt.Errorf("in sort-return-opts: %w", err)
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
	}

	var sortCriteria []imap.SortCriterion
	reverse := false
	err := dec.ExpectList(func() error {
		var key string
		if !dec.ExpectAtom(&key) {
			return dec.Err()
		}
		key = strings.ToUpper(key)
		if key == "REVERSE" {
			if reverse {
				return newClientBugError("REVERSE REVERSE")
			}
			reverse = true
			return nil
		}
		switch k := imap.SortKey(key); k {
		case imap.SortKeyArrival, imap.SortKeyCc, imap.SortKeyDate, imap.SortKeyFrom,
			imap.SortKeySize, imap.SortKeySubject, imap.SortKeyTo,
			imap.SortKeyDisplayFrom, imap.SortKeyDisplayTo:
			if len(sortCriteria) >= maxSortCriteria {
				return newClientBugError("too many sort criteria")
			}
			sortCriteria = append(sortCriteria, imap.SortCriterion{Key: k, Reverse: reverse})
			reverse = false
			return nil
		default:
			return newClientBugError("unknown sort key " + key)
		}
	})
	if err != nil {
		return fmt.Errorf("in sort-criteria: %w", err)
	}
	if reverse || len(sortCriteria) == 0 {
		return newClientBugError("sort criteria end without a key")
	}

	var charset string
	if !dec.ExpectSP() || !dec.ExpectAString(&charset) || !dec.ExpectSP() {
		return dec.Err()
	}
	criteria, err := readSearchCriteria(dec)
	if err != nil {
		return err
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := checkSearchCharset(charset); err != nil {
		return err
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionSort)
	if !ok {
		return newClientBugError("SORT is not supported")
	}
	if options.ReturnUpdate { // Posthouse patch: RFC 5267 §4.3
		ctxSession, ok := c.session.(SessionSortContext)
		if !ok {
			return newClientBugError("SORT RETURN (UPDATE) is not supported")
		}
		nums, noUpdate, err := ctxSession.SortUpdate(tag, numKind, sortCriteria, criteria)
		if err != nil {
			return err
		}
		if err := c.writeESort(tag, nums, &options, numKind); err != nil {
			return err
		}
		if noUpdate {
			return c.writeNoUpdate(tag)
		}
		return nil
	}
	nums, err := session.Sort(numKind, sortCriteria, criteria)
	if err != nil {
		return err
	}
	if !options.Return {
		return c.writeSort(nums)
	}
	return c.writeESort(tag, nums, &options, numKind)
}

// WriteSortUpdate writes an unsolicited ESEARCH response for the live SORT
// result named by tag (RFC 5267 §4.3.3, §4.3.4): ADDTO, or REMOVEFROM when
// removed, of nums in sort order at the 1-based context position pos.
// Posthouse patch.
func (w *UpdateWriter) WriteSortUpdate(tag string, kind NumKind, removed bool, pos uint32, nums []uint32) error {
	enc := newResponseEncoder(w.conn)
	defer enc.end()
	enc.Atom("*").SP().Atom("ESEARCH").SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	if kind == NumKindUID {
		enc.SP().Atom("UID")
	}
	if removed {
		enc.SP().Atom("REMOVEFROM")
	} else {
		enc.SP().Atom("ADDTO")
	}
	enc.SP().Special('(').Number(pos).SP().Atom(OrderedNumSet(nums)).Special(')')
	return enc.CRLF()
}

// readSearchCriteria reads one or more search keys, up to the CRLF.
func readSearchCriteria(dec *imapwire.Decoder) (*imap.SearchCriteria, error) {
	var criteria imap.SearchCriteria
	for {
		if err := readSearchKey(&criteria, dec, 0); err != nil {
			return nil, fmt.Errorf("in search-key: %w", err)
		}
		if !dec.SP() {
			return &criteria, nil
		}
	}
}

// checkSearchCharset accepts the charsets of search strings we decode.
func checkSearchCharset(charset string) error {
	switch strings.ToUpper(charset) {
	case "US-ASCII", "UTF-8":
		return nil
	}
	return &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeBadCharset + " (UTF-8 US-ASCII)",
		Text: "Unsupported charset",
	}
}

func readSortReturnOpts(dec *imapwire.Decoder, options *imap.SortOptions) error {
	options.Return = true
	if !dec.ExpectSP() {
		return dec.Err()
	}
	err := dec.ExpectList(func() error {
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		switch strings.ToUpper(name) {
		case "MIN":
			options.ReturnMin = true
		case "MAX":
			options.ReturnMax = true
		case "ALL":
			options.ReturnAll = true
		case "COUNT":
			options.ReturnCount = true
		case "PARTIAL":
			var s string
			if !dec.ExpectSP() || !dec.Expect(dec.Func(&s, isPartialRangeChar), "partial-range") {
				return dec.Err()
			}
			r, err := ParsePartialRange(s)
			if err != nil {
				return err
			}
			options.ReturnPartial = r
		case "UPDATE": // Posthouse patch: RFC 5267 §4.3
			options.ReturnUpdate = true
		case "CONTEXT": // Posthouse patch: RFC 5267 §4.2, a hint
			options.ReturnContext = true
		default:
			return newClientBugError("unknown SORT RETURN option")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !options.ReturnMin && !options.ReturnMax && !options.ReturnCount && options.ReturnPartial == nil &&
		!options.ReturnUpdate { // Posthouse patch: UPDATE alone returns no ALL, as for SEARCH
		options.ReturnAll = true // RFC 4731 §3.1: RETURN () is RETURN (ALL)
	}
	if options.ReturnAll && options.ReturnPartial != nil {
		return newClientBugError("ALL and PARTIAL are exclusive")
	}
	return nil
}

func isPartialRangeChar(ch byte) bool {
	return ch == '-' || ch == ':' || (ch >= '0' && ch <= '9')
}

// ParsePartialRange parses a RFC 9394 partial-range ("1:100", "-1:-50");
// "4:2" is "2:4". Zero, "*", a single number and mixed signs are errors.
func ParsePartialRange(s string) (*imap.PartialRange, error) {
	bad := newClientBugError("invalid partial range " + strconv.Quote(s))
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return nil, bad
	}
	x, err1 := strconv.ParseInt(a, 10, 32)
	y, err2 := strconv.ParseInt(b, 10, 32)
	if err1 != nil || err2 != nil || x == 0 || y == 0 || (x < 0) != (y < 0) {
		return nil, bad
	}
	if (x > 0 && x > y) || (x < 0 && x < y) {
		x, y = y, x
	}
	return &imap.PartialRange{First: int32(x), Last: int32(y)}, nil
}

// PartialSlice returns the part of a result r selects.
func PartialSlice(nums []uint32, r *imap.PartialRange) []uint32 {
	n := int64(len(nums))
	first, last := int64(r.First), int64(r.Last)
	var lo, hi int64 // indices [lo, hi)
	if first > 0 {
		lo, hi = first-1, last
	} else {
		lo, hi = n+last, n+first+1
	}
	if lo < 0 {
		lo = 0
	}
	if hi > n {
		hi = n
	}
	if lo >= hi {
		return nil
	}
	return nums[lo:hi]
}

func (c *Conn) writeSort(nums []uint32) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("SORT")
	for _, num := range nums {
		enc.SP().Number(num)
	}
	return enc.CRLF()
}

func (c *Conn) writeESort(tag string, nums []uint32, options *imap.SortOptions, numKind NumKind) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ESEARCH")
	enc.SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	if numKind == NumKindUID {
		enc.SP().Atom("UID")
	}
	// RFC 5267 §3.2: MIN and MAX are the first and last in sort order,
	// ALL keeps the sort order.
	if options.ReturnMin && len(nums) > 0 {
		enc.SP().Atom("MIN").SP().Number(nums[0])
	}
	if options.ReturnMax && len(nums) > 0 {
		enc.SP().Atom("MAX").SP().Number(nums[len(nums)-1])
	}
	if options.ReturnAll && len(nums) > 0 {
		enc.SP().Atom("ALL").SP().Atom(OrderedNumSet(nums))
	}
	if options.ReturnCount {
		enc.SP().Atom("COUNT").SP().Number(uint32(len(nums)))
	}
	if r := options.ReturnPartial; r != nil {
		enc.SP().Atom("PARTIAL").SP().Special('(')
		enc.Atom(fmt.Sprintf("%d:%d", r.First, r.Last)).SP()
		if part := PartialSlice(nums, r); len(part) > 0 {
			enc.Atom(OrderedNumSet(part))
		} else {
			enc.NIL()
		}
		enc.Special(')')
	}
	return enc.CRLF()
}

// OrderedNumSet writes nums as a sequence-set that keeps their order:
// ascending runs become ranges ("5,3:4,2,1").
func OrderedNumSet(nums []uint32) string {
	var sb strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatUint(uint64(nums[i]), 10))
		if j > i {
			sb.WriteByte(':')
			sb.WriteString(strconv.FormatUint(uint64(nums[j]), 10))
		}
		i = j + 1
	}
	return sb.String()
}
