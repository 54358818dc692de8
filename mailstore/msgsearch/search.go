// Package msgsearch evaluates IMAP SEARCH criteria (RFC 9051 §6.4.4) over a
// mailbox's index rows the same way for every backend: the cheap criteria
// (UIDs, dates, flags, sizes, MODSEQ, EMAILID) from the row, and header,
// BODY and TEXT criteria from the message's bytes, which are read only when
// such a criterion is reached and only after the cheap criteria of the same
// level passed. A backend collects the rows and says how to open a message.
package msgsearch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/indexrow"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// MaxText bounds how much decoded text of one message a TEXT or BODY
// search looks at.
const MaxText = 16 << 20

// ErrSeqNum: criteria must name messages by UID; imapd translates sequence
// numbers first.
var ErrSeqNum = errors.New("search by sequence number: translate to UIDs first")

// Row is what the index holds of one message for SEARCH.
type Row struct {
	UID      imap.UID
	ModSeq   uint64
	Flags    int64  // indexrow flag bits
	Keywords string // indexrow's keyword list
	Size     int64
	IDate    int64 // YYYYMMDD of the internal date in its zone (indexrow.DateNum)
	Sent     int64 // YYYYMMDD of the Date: field; 0 when it has none
	EmailID  int64 // the number of its EMAILID ("E" and the number)
}

// Opener returns the bytes of rows[i]; nil and no error when the message is
// gone (expunged meanwhile), which then matches no header or text
// criterion.
type Opener func(i int) (io.ReadSeekCloser, error)

// Run returns the UIDs of rows (in ascending UID order) that match c.
func Run(ctx context.Context, rows []Row, c *imap.SearchCriteria, open Opener) ([]imap.UID, error) {
	if c == nil {
		c = &imap.SearchCriteria{}
	}
	if HasSeqNums(c) {
		return nil, ErrSeqNum
	}
	var last imap.UID
	if len(rows) > 0 {
		last = rows[len(rows)-1].UID
	}
	ev := &evaluator{open: open, uidSets: map[*imap.SearchCriteria][][]mailstore.UIDInterval{}}
	ev.resolveSets(c, last)
	var out []imap.UID
	for i := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ev.index, ev.content, ev.loaded = i, nil, false
		ok, err := ev.match(c, &rows[i])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, rows[i].UID)
		}
	}
	return out, nil
}

// HasSeqNums reports whether c or a criterion under it names sequence
// numbers.
func HasSeqNums(c *imap.SearchCriteria) bool {
	if len(c.SeqNum) > 0 {
		return true
	}
	for i := range c.Not {
		if HasSeqNums(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if HasSeqNums(&c.Or[i][0]) || HasSeqNums(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

type evaluator struct {
	open    Opener
	uidSets map[*imap.SearchCriteria][][]mailstore.UIDInterval // each criteria's UID sets, resolved once
	index   int                                                // of the row being evaluated
	loaded  bool                                               // content was read (nil: the message is gone)
	content *content
}

func (ev *evaluator) resolveSets(c *imap.SearchCriteria, last imap.UID) {
	if len(c.UID) > 0 {
		sets := make([][]mailstore.UIDInterval, len(c.UID))
		for i, set := range c.UID {
			sets[i] = mailstore.UIDIntervals(set, last)
		}
		ev.uidSets[c] = sets
	}
	for i := range c.Not {
		ev.resolveSets(&c.Not[i], last)
	}
	for i := range c.Or {
		ev.resolveSets(&c.Or[i][0], last)
		ev.resolveSets(&c.Or[i][1], last)
	}
}

// content is a message prepared for text search, lower-cased.
type content struct {
	header textproto.Header
	hdrLow string // the raw header, lower-cased
	body   string // decoded text of the body parts, lower-cased
}

func (ev *evaluator) match(c *imap.SearchCriteria, m *Row) (bool, error) {
	for _, set := range ev.uidSets[c] {
		if !mailstore.InIntervals(set, m.UID) {
			return false, nil
		}
	}
	if !c.Since.IsZero() && m.IDate < indexrow.DateNum(c.Since) {
		return false, nil
	}
	if !c.Before.IsZero() && m.IDate >= indexrow.DateNum(c.Before) {
		return false, nil
	}
	sent := m.Sent
	if sent == 0 {
		sent = m.IDate // RFC 9051 §6.4.4 leaves it open; the internal date is the best guess
	}
	if !c.SentSince.IsZero() && sent < indexrow.DateNum(c.SentSince) {
		return false, nil
	}
	if !c.SentBefore.IsZero() && sent >= indexrow.DateNum(c.SentBefore) {
		return false, nil
	}
	for _, f := range c.Flag {
		if !indexrow.HasFlag(m.Flags, m.Keywords, f) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if indexrow.HasFlag(m.Flags, m.Keywords, f) {
			return false, nil
		}
	}
	if c.Larger > 0 && m.Size <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && m.Size >= c.Smaller {
		return false, nil
	}
	if c.ModSeq != nil && m.ModSeq < c.ModSeq.ModSeq {
		return false, nil
	}
	for _, id := range c.EmailID {
		if n, ok := indexrow.ParseEmailID(id); !ok || n != m.EmailID {
			return false, nil
		}
	}
	if len(c.ThreadID) > 0 { // no threads: no message has a THREADID
		return false, nil
	}
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 {
		mc, err := ev.load()
		if err != nil {
			return false, err
		}
		if mc == nil {
			return false, nil
		}
		for _, h := range c.Header {
			if !headerMatches(mc.header, h) {
				return false, nil
			}
		}
		for _, s := range c.Body {
			if !strings.Contains(mc.body, strings.ToLower(s)) {
				return false, nil
			}
		}
		for _, s := range c.Text {
			s = strings.ToLower(s)
			if !strings.Contains(mc.hdrLow, s) && !strings.Contains(mc.body, s) {
				return false, nil
			}
		}
	}
	for i := range c.Not {
		ok, err := ev.match(&c.Not[i], m)
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		ok, err := ev.match(&c.Or[i][0], m)
		if err != nil {
			return false, err
		}
		if !ok {
			if ok, err = ev.match(&c.Or[i][1], m); err != nil || !ok {
				return false, err
			}
		}
	}
	return true, nil
}

var wordDecoder = mime.WordDecoder{CharsetReader: gomessage.CharsetReader}

// headerMatches is RFC 9051 §6.4.4 HEADER: the field exists and its
// (decoded) value contains the string, case-insensitively; an empty string
// matches any message with the field.
func headerMatches(h textproto.Header, c imap.SearchCriteriaHeaderField) bool {
	fields := h.FieldsByKey(c.Key)
	want := strings.ToLower(c.Value)
	for fields.Next() {
		if want == "" {
			return true
		}
		v := fields.Value()
		if addressFields[strings.ToLower(c.Key)] && strings.Contains(addressText(v), want) {
			return true
		}
		if dec, err := wordDecoder.DecodeHeader(v); err == nil {
			v = dec
		}
		if strings.Contains(strings.ToLower(v), want) {
			return true
		}
	}
	return false
}

// addressFields are matched by their addresses too (SEARCH FROM, TO, CC,
// BCC are HEADER searches of these), so that `user@host` finds an address
// written with comments or folding between its parts.
var addressFields = map[string]bool{"from": true, "to": true, "cc": true, "bcc": true, "sender": true, "reply-to": true}

// addressText renders an address field's addresses as "name <mailbox@host>"
// (names decoded) and its groups by name, lower-cased.
func addressText(v string) string {
	var b strings.Builder
	for _, a := range mimeparse.ParseAddressList(v) {
		name := a.Name
		if dec, err := wordDecoder.DecodeHeader(name); err == nil {
			name = dec
		}
		switch {
		case a.Host != "":
			b.WriteString(name + " <" + a.Mailbox + "@" + a.Host + ">, ")
		case a.Mailbox != "":
			b.WriteString(a.Mailbox + ": ")
		}
	}
	return strings.ToLower(b.String())
}

// load reads the current message for text search, once per row.
func (ev *evaluator) load() (*content, error) {
	if ev.loaded {
		return ev.content, nil
	}
	f, err := ev.open(ev.index)
	if err != nil {
		return nil, err
	}
	ev.loaded = true
	if f == nil {
		return nil, nil
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, MaxText))
	var hdrRaw bytes.Buffer
	h, err := textproto.ReadHeader(bufio.NewReader(io.TeeReader(io.LimitReader(br, indexrow.MaxHeaderBytes), &hdrRaw)))
	if err != nil {
		// Not a parsable message: search its raw bytes.
		raw, _ := io.ReadAll(io.MultiReader(bytes.NewReader(hdrRaw.Bytes()), br))
		low := strings.ToLower(string(raw))
		ev.content = &content{hdrLow: low, body: low}
		return ev.content, nil
	}
	// The tee buffered read-ahead beyond the header: re-read from the
	// start instead of guessing.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	br = bufio.NewReader(io.LimitReader(f, MaxText))
	if _, err := textproto.ReadHeader(br); err != nil {
		return nil, err
	}
	var body strings.Builder
	collectText(gomessage.Header{Header: h}, br, &body, 0)
	ev.content = &content{header: h, hdrLow: strings.ToLower(headerText(h)), body: strings.ToLower(body.String())}
	return ev.content, nil
}

// headerText renders the header with encoded words decoded.
func headerText(h textproto.Header) string {
	var b strings.Builder
	for f := h.Fields(); f.Next(); {
		v := f.Value()
		if dec, err := wordDecoder.DecodeHeader(v); err == nil {
			v = dec
		}
		b.WriteString(f.Key())
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\n")
	}
	return b.String()
}

// collectText appends the decoded text of text/* and message/* parts (and
// raw bytes of parts it cannot decode) to out, bounded by MaxText.
func collectText(h gomessage.Header, r io.Reader, out *strings.Builder, depth int) {
	if out.Len() >= MaxText || depth > indexrow.MaxCacheDepth {
		return
	}
	mt, params, _ := h.ContentType()
	if strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		mr := textproto.NewMultipartReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				return
			}
			collectText(gomessage.Header{Header: p.Header}, p, out, depth+1)
		}
	}
	if mt == "message/rfc822" || mt == "message/global" {
		br := bufio.NewReader(r)
		ih, err := textproto.ReadHeader(br)
		if err != nil {
			return
		}
		out.WriteString(headerText(ih))
		collectText(gomessage.Header{Header: ih}, br, out, depth+1)
		return
	}
	if mt != "" && !strings.HasPrefix(mt, "text/") {
		return // attachments are not text
	}
	ent, err := gomessage.New(h, r)
	var body io.Reader = r
	if err == nil || gomessage.IsUnknownCharset(err) || gomessage.IsUnknownEncoding(err) {
		if ent != nil {
			body = ent.Body
		}
	}
	io.Copy(out, io.LimitReader(body, int64(MaxText-out.Len())))
}
