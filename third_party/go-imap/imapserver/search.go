package imapserver

import (
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (c *Conn) handleSearch(tag string, dec *imapwire.Decoder, numKind NumKind) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	var (
		atom     string
		options  imap.SearchOptions
		extended bool
	)
	if maybeReadSearchKeyAtom(dec, &atom) && strings.EqualFold(atom, "RETURN") {
		if err := readSearchReturnOpts(dec, &options); err != nil {
			return fmt.Errorf("in search-return-opts: %w", err)
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
		extended = true
		atom = ""
		maybeReadSearchKeyAtom(dec, &atom)
	}
	if strings.EqualFold(atom, "CHARSET") {
		var charset string
		if !dec.ExpectSP() || !dec.ExpectAString(&charset) || !dec.ExpectSP() {
			return dec.Err()
		}
		switch strings.ToUpper(charset) {
		case "US-ASCII", "UTF-8":
			// nothing to do
		default:
			return &imap.Error{
				Type: imap.StatusResponseTypeNo,
				Code: imap.ResponseCodeBadCharset, // TODO: return list of supported charsets
				Text: "Only US-ASCII and UTF-8 are supported SEARCH charsets",
			}
		}
		atom = ""
		maybeReadSearchKeyAtom(dec, &atom)
	}

	var criteria imap.SearchCriteria
	for {
		var err error
		if atom != "" {
			err = readSearchKeyWithAtom(&criteria, dec, atom, 0)
			atom = ""
		} else {
			err = readSearchKey(&criteria, dec, 0)
		}
		if err != nil {
			return fmt.Errorf("in search-key: %w", err)
		}

		if !dec.SP() {
			break
		}
	}

	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	// Posthouse patch: SEARCH MODSEQ enables CONDSTORE (RFC 7162 §3.1.5).
	if searchHasModSeq(&criteria) {
		if !c.server.options.caps().Has(imap.CapCondStore) {
			return newClientBugError("MODSEQ needs CONDSTORE")
		}
		if err := c.enableCondStore(); err != nil {
			return err
		}
	}

	// If no return option is specified, ALL is assumed
	if !options.ReturnMin && !options.ReturnMax && !options.ReturnAll && !options.ReturnCount &&
		options.ReturnPartial == nil && !options.ReturnUpdate {
		options.ReturnAll = true
	}
	if options.ReturnUpdate {
		// Posthouse patch: RFC 5267 §4.3, the session keeps the result
		// named by the tag up to date.
		if _, ok := c.session.(SessionSearchContext); !ok {
			return newClientBugError("SEARCH RETURN (UPDATE) is not supported")
		}
	}
	options.Tag = tag

	data, err := c.session.Search(numKind, &criteria, &options)
	if err != nil {
		return err
	}

	if c.enabled.Has(imap.CapIMAP4rev2) || extended {
		if err := c.writeESearch(tag, data, &options, numKind); err != nil {
			return err
		}
		if options.ReturnUpdate && data.NoUpdate {
			return c.writeNoUpdate(tag)
		}
		return nil
	} else {
		return c.writeSearch(data.All, data.ModSeq)
	}
}

// writeNoUpdate says a RETURN (UPDATE) result will not be kept up to date
// (RFC 5267 §4.3.1). Posthouse patch.
func (c *Conn) writeNoUpdate(tag string) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("NO").SP().Special('[').Atom("NOUPDATE").SP().String(tag).Special(']')
	enc.SP().Text("Too many live search results; this one is not updated")
	return enc.CRLF()
}

// handleCancelUpdate ends the updates of the results named by its tags
// (RFC 5267 §4.3.5). Posthouse patch.
func (c *Conn) handleCancelUpdate(dec *imapwire.Decoder) error {
	var tags []string
	for dec.SP() {
		var tag string
		if !dec.ExpectString(&tag) {
			return dec.Err()
		}
		if len(tags) >= maxCancelUpdateTags {
			return newClientBugError("Too many tags in CANCELUPDATE")
		}
		tags = append(tags, tag)
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	if len(tags) == 0 {
		return newClientBugError("CANCELUPDATE needs a tag")
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionSearchContext)
	if !ok {
		return newClientBugError("Unknown command")
	}
	return session.CancelUpdate(tags)
}

// maxCancelUpdateTags bounds the tags of one CANCELUPDATE (Posthouse
// patch); a session keeps only a few live results anyway.
const maxCancelUpdateTags = 100

// WriteSearchUpdate writes an unsolicited ESEARCH response for the live
// SEARCH result named by tag (RFC 5267 §4.3.3, §4.3.4): ADDTO, or
// REMOVEFROM when removed, with numSet at position pos (0 for an
// unsorted SEARCH result). Posthouse patch.
func (w *UpdateWriter) WriteSearchUpdate(tag string, kind NumKind, removed bool, pos uint32, numSet imap.NumSet) error {
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
	enc.SP().Special('(').Number(pos).SP().NumSet(numSet).Special(')')
	return enc.CRLF()
}

func (c *Conn) writeESearch(tag string, data *imap.SearchData, options *imap.SearchOptions, numKind NumKind) error {
	enc := newResponseEncoder(c)
	defer enc.end()

	enc.Atom("*").SP().Atom("ESEARCH")
	if tag != "" {
		enc.SP().Special('(').Atom("TAG").SP().String(tag).Special(')')
	}
	if numKind == NumKindUID {
		enc.SP().Atom("UID")
	}
	// When there is no result, we need to send an ESEARCH response with no ALL
	// keyword
	if options.ReturnAll && !isNumSetEmpty(data.All) {
		enc.SP().Atom("ALL").SP().NumSet(data.All)
	}
	if options.ReturnMin && data.Min > 0 {
		enc.SP().Atom("MIN").SP().Number(data.Min)
	}
	if options.ReturnMax && data.Max > 0 {
		enc.SP().Atom("MAX").SP().Number(data.Max)
	}
	if options.ReturnCount {
		enc.SP().Atom("COUNT").SP().Number(data.Count)
	}
	if options.ReturnPartial != nil && data.Partial != nil {
		// Posthouse patch: RFC 9394 §3.1.
		r := data.Partial.Range
		enc.SP().Atom("PARTIAL").SP().Special('(').Atom(fmt.Sprintf("%d:%d", r.Start, r.Stop)).SP()
		if data.Partial.All == nil || isNumSetEmpty(data.Partial.All) {
			enc.NIL()
		} else {
			enc.NumSet(data.Partial.All)
		}
		enc.Special(')')
	}
	if data.ModSeq > 0 { // Posthouse patch: RFC 7162 §3.1.5, RFC 4731 §3.2
		enc.SP().Atom("MODSEQ").SP().ModSeq(data.ModSeq)
	}
	return enc.CRLF()
}

func isNumSetEmpty(numSet imap.NumSet) bool {
	switch numSet := numSet.(type) {
	case imap.SeqSet:
		return len(numSet) == 0
	case imap.UIDSet:
		return len(numSet) == 0
	default:
		panic("unknown imap.NumSet type")
	}
}

func (c *Conn) writeSearch(numSet imap.NumSet, modSeq uint64) error {
	enc := newResponseEncoder(c)
	defer enc.end()

	enc.Atom("*").SP().Atom("SEARCH")
	var ok bool
	switch numSet := numSet.(type) {
	case imap.SeqSet:
		var nums []uint32
		nums, ok = numSet.Nums()
		for _, num := range nums {
			enc.SP().Number(num)
		}
	case imap.UIDSet:
		var uids []imap.UID
		uids, ok = numSet.Nums()
		for _, uid := range uids {
			enc.SP().UID(uid)
		}
	}
	if !ok {
		return fmt.Errorf("imapserver: failed to enumerate message numbers in SEARCH response")
	}
	if modSeq > 0 { // Posthouse patch: RFC 7162 §3.1.5
		enc.SP().Special('(').Atom("MODSEQ").SP().ModSeq(modSeq).Special(')')
	}
	return enc.CRLF()
}

func readSearchReturnOpts(dec *imapwire.Decoder, options *imap.SearchOptions) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	return dec.ExpectList(func() error {
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
		case "SAVE":
			options.ReturnSave = true
		case "PARTIAL": // Posthouse patch: RFC 9394
			var s string
			if !dec.ExpectSP() || !dec.ExpectAtom(&s) {
				return dec.Err()
			}
			r, err := parsePartialRange(s)
			if err != nil {
				return err
			}
			options.ReturnPartial = &r
		case "UPDATE": // Posthouse patch: RFC 5267
			options.ReturnUpdate = true
		case "CONTEXT": // Posthouse patch: RFC 5267, a hint
			options.ReturnContext = true
		default:
			return newClientBugError("unknown SEARCH RETURN option")
		}
		return nil
	})
}

// parsePartialRange parses RFC 9394's partial-range: "a:b" with both
// positive or both negative, within 32 bits, ordered so that Start is
// nearer the end it counts from (Posthouse patch).
func parsePartialRange(s string) (imap.SearchPartialRange, error) {
	bad := &imapwire.DecoderExpectError{Message: "invalid PARTIAL range"}
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return imap.SearchPartialRange{}, bad
	}
	x, okx := parsePartialPos(a)
	y, oky := parsePartialPos(b)
	if !okx || !oky || (x < 0) != (y < 0) {
		return imap.SearchPartialRange{}, bad
	}
	if (x > 0 && x > y) || (x < 0 && x < y) {
		x, y = y, x
	}
	return imap.SearchPartialRange{Start: x, Stop: y}, nil
}

func parsePartialPos(s string) (int32, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if s == "" || len(s) > 10 || s[0] == '0' {
		return 0, false
	}
	var n int64
	for _, ch := range s {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	if n > 1<<31-1 {
		return 0, false
	}
	if neg {
		n = -n
	}
	return int32(n), true
}

func maybeReadSearchKeyAtom(dec *imapwire.Decoder, ptr *string) bool {
	return dec.Func(ptr, func(ch byte) bool {
		return ch == '*' || imapwire.IsAtomChar(ch)
	})
}

// maxSearchDepth bounds how deeply NOT, OR and parentheses may nest in
// SEARCH criteria (Posthouse patch): the parser, and every backend walking
// the criteria, recurse once per level. Real clients stay far below it
// (Thunderbird's widest quick-filter search is an OR chain of 4 or 5).
const maxSearchDepth = 100

var errSearchTooDeep = &imapwire.DecoderExpectError{Message: "search criteria nested too deeply"}

// readSearchKey reads one search-key at nesting level depth.
func readSearchKey(criteria *imap.SearchCriteria, dec *imapwire.Decoder, depth int) error {
	var key string
	if maybeReadSearchKeyAtom(dec, &key) {
		return readSearchKeyWithAtom(criteria, dec, key, depth)
	}
	if depth >= maxSearchDepth {
		return errSearchTooDeep
	}
	n := 0
	err := dec.ExpectList(func() error {
		n++
		return readSearchKey(criteria, dec, depth+1)
	})
	if err == nil && n == 0 {
		// Posthouse patch: "()" is no search-key (RFC 9051 §9).
		return &imapwire.DecoderExpectError{Message: "empty search key list"}
	}
	return err
}

func readSearchKeyWithAtom(criteria *imap.SearchCriteria, dec *imapwire.Decoder, key string, depth int) error {
	key = strings.ToUpper(key)
	if (key == "NOT" || key == "OR") && depth >= maxSearchDepth {
		return errSearchTooDeep
	}
	switch key {
	case "ALL":
		// nothing to do
	case "UID":
		var uidSet imap.UIDSet
		if !dec.ExpectSP() || !dec.ExpectUIDSet(&uidSet) {
			return dec.Err()
		}
		criteria.UID = append(criteria.UID, uidSet)
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "RECENT", "SEEN":
		criteria.Flag = append(criteria.Flag, searchKeyFlag(key))
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		notKey := strings.TrimPrefix(key, "UN")
		criteria.NotFlag = append(criteria.NotFlag, searchKeyFlag(notKey))
	case "NEW":
		criteria.Flag = append(criteria.Flag, internal.FlagRecent)
		criteria.NotFlag = append(criteria.NotFlag, imap.FlagSeen)
	case "OLD":
		criteria.NotFlag = append(criteria.NotFlag, internal.FlagRecent)
	case "KEYWORD", "UNKEYWORD":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		flag, err := internal.ExpectFlag(dec)
		if err != nil {
			return err
		}
		switch key {
		case "KEYWORD":
			criteria.Flag = append(criteria.Flag, flag)
		case "UNKEYWORD":
			criteria.NotFlag = append(criteria.NotFlag, flag)
		}
	case "BCC", "CC", "FROM", "SUBJECT", "TO":
		var value string
		if !dec.ExpectSP() || !dec.ExpectAString(&value) {
			return dec.Err()
		}
		criteria.Header = append(criteria.Header, imap.SearchCriteriaHeaderField{
			Key:   strings.Title(strings.ToLower(key)),
			Value: value,
		})
	case "HEADER":
		var key, value string
		if !dec.ExpectSP() || !dec.ExpectAString(&key) || !dec.ExpectSP() || !dec.ExpectAString(&value) {
			return dec.Err()
		}
		criteria.Header = append(criteria.Header, imap.SearchCriteriaHeaderField{
			Key:   key,
			Value: value,
		})
	case "SINCE", "BEFORE", "ON", "SENTSINCE", "SENTBEFORE", "SENTON":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		t, err := internal.ExpectDate(dec)
		if err != nil {
			return err
		}
		var dateCriteria imap.SearchCriteria
		switch key {
		case "SINCE":
			dateCriteria.Since = t
		case "BEFORE":
			dateCriteria.Before = t
		case "ON":
			dateCriteria.Since = t
			dateCriteria.Before = t.Add(24 * time.Hour)
		case "SENTSINCE":
			dateCriteria.SentSince = t
		case "SENTBEFORE":
			dateCriteria.SentBefore = t
		case "SENTON":
			dateCriteria.SentSince = t
			dateCriteria.SentBefore = t.Add(24 * time.Hour)
		}
		criteria.And(&dateCriteria)
	case "BODY":
		var body string
		if !dec.ExpectSP() || !dec.ExpectAString(&body) {
			return dec.Err()
		}
		criteria.Body = append(criteria.Body, body)
	case "TEXT":
		var text string
		if !dec.ExpectSP() || !dec.ExpectAString(&text) {
			return dec.Err()
		}
		criteria.Text = append(criteria.Text, text)
	case "LARGER", "SMALLER":
		var n int64
		if !dec.ExpectSP() || !dec.ExpectNumber64(&n) {
			return dec.Err()
		}
		switch key {
		case "LARGER":
			criteria.And(&imap.SearchCriteria{Larger: n})
		case "SMALLER":
			criteria.And(&imap.SearchCriteria{Smaller: n})
		}
	case "NOT":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		var not imap.SearchCriteria
		if err := readSearchKey(&not, dec, depth+1); err != nil {
			return err
		}
		criteria.Not = append(criteria.Not, not)
	case "OR":
		if !dec.ExpectSP() {
			return dec.Err()
		}
		var or [2]imap.SearchCriteria
		if err := readSearchKey(&or[0], dec, depth+1); err != nil {
			return err
		}
		if !dec.ExpectSP() {
			return dec.Err()
		}
		if err := readSearchKey(&or[1], dec, depth+1); err != nil {
			return err
		}
		criteria.Or = append(criteria.Or, or)
	case "$":
		criteria.UID = append(criteria.UID, imap.SearchRes())
	case "MODSEQ": // Posthouse patch: RFC 7162 §3.1.5
		if err := readSearchModSeq(criteria, dec); err != nil {
			return err
		}
	case "EMAILID", "THREADID": // Posthouse patch: RFC 8474 §6
		var id string
		if !dec.ExpectSP() || !dec.ExpectAtom(&id) {
			return dec.Err()
		}
		if !isObjectID(id) {
			return &imapwire.DecoderExpectError{Message: "invalid objectid"}
		}
		if key == "EMAILID" {
			criteria.EmailID = append(criteria.EmailID, id)
		} else {
			criteria.ThreadID = append(criteria.ThreadID, id)
		}
	default:
		seqSet, err := imapwire.ParseSeqSet(key)
		if err != nil {
			// Posthouse patch: BAD, not SERVERBUG.
			return &imapwire.DecoderExpectError{Message: "unknown search key " + key}
		}
		criteria.SeqNum = append(criteria.SeqNum, seqSet)
	}
	return nil
}

// isObjectID reports whether s is an RFC 8474 objectid: 1 to 255 of
// ALPHA, DIGIT, "_" and "-" (Posthouse patch).
func isObjectID(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func searchKeyFlag(key string) imap.Flag {
	return imap.Flag("\\" + strings.Title(strings.ToLower(key)))
}
