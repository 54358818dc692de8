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
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

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
// When c needs the messages' text and there are many rows, they are
// evaluated by up to maxWorkers goroutines (never more than GOMAXPROCS).
// newOpener is called once for each of them: a goroutine takes ChunkRows
// consecutive rows at a time (the chunk of row i starts at
// i/ChunkRows*ChunkRows) and asks its Opener for them in ascending order,
// so an Opener may read ahead the rest of a row's chunk.
func Run(ctx context.Context, rows []Row, c *imap.SearchCriteria, newOpener func() Opener) ([]imap.UID, error) {
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
	sets := map[*imap.SearchCriteria][][]mailstore.UIDInterval{}
	resolveSets(sets, c, last)
	workers := 1
	if len(rows) >= 2*ChunkRows && needsText(c) {
		workers = min(runtime.GOMAXPROCS(0), maxWorkers, len(rows)/ChunkRows)
	}
	matched := make([]bool, len(rows))
	large := make(chan struct{}, 1)
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	evaluate := func() {
		ev := &evaluator{ctx: ctx, open: newOpener(), uidSets: sets, large: large}
		for {
			start := int(next.Add(ChunkRows)) - ChunkRows
			if start >= len(rows) {
				return
			}
			for i := start; i < min(start+ChunkRows, len(rows)); i++ {
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				ev.index, ev.size, ev.content, ev.loaded = i, rows[i].Size, nil, false
				ok, err := ev.match(c, &rows[i])
				ev.done()
				if err != nil {
					fail(err)
					next.Store(int64(len(rows))) // the others stop too
					return
				}
				matched[i] = ok
			}
		}
	}
	for range workers - 1 {
		wg.Go(evaluate)
	}
	evaluate()
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	var out []imap.UID
	for i, ok := range matched {
		if ok {
			out = append(out, rows[i].UID)
		}
	}
	return out, nil
}

// Rows are handed to workers ChunkRows at a time; maxWorkers bounds one
// search's goroutines. Only one of them at a time reads a message of over
// largeText bytes, and none keeps buffers that large between rows, so a
// search's memory stays that of one large message plus small ones.
const (
	ChunkRows  = 64
	maxWorkers = 4
	largeText  = 1 << 20
)

// done ends a row: the large-message turn goes back, and buffers grown
// past largeText are let go.
func (ev *evaluator) done() {
	if ev.holding {
		<-ev.large
		ev.holding = false
	}
	if ev.raw.Cap() > largeText {
		ev.raw = bytes.Buffer{}
	}
	if ev.text.Cap() > largeText {
		ev.text = bytes.Buffer{}
	}
	if cap(ev.hdr) > largeText {
		ev.hdr = nil
	}
	ev.content, ev.cur = nil, content{}
}

// needsText reports whether c or a criterion under it reads messages.
func needsText(c *imap.SearchCriteria) bool {
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 {
		return true
	}
	for i := range c.Not {
		if needsText(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if needsText(&c.Or[i][0]) || needsText(&c.Or[i][1]) {
			return true
		}
	}
	return false
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
	ctx     context.Context
	open    Opener
	size    int64         // of the row being evaluated, from the index
	large   chan struct{} // held while a goroutine reads a message over largeText
	holding bool
	uidSets map[*imap.SearchCriteria][][]mailstore.UIDInterval // each criteria's UID sets, resolved once
	index   int                                                // of the row being evaluated
	loaded  bool                                               // content was read (nil: the message is gone)
	content *content

	// Buffers reused from row to row.
	cur       content
	raw, text bytes.Buffer
	hdr       []byte
	br        *bufio.Reader
}

// resolveSets resolves the UID sets of c and the criteria under it, once
// per search; the evaluators only read the map.
func resolveSets(sets map[*imap.SearchCriteria][][]mailstore.UIDInterval, c *imap.SearchCriteria, last imap.UID) {
	if len(c.UID) > 0 {
		resolved := make([][]mailstore.UIDInterval, len(c.UID))
		for i, set := range c.UID {
			resolved[i] = mailstore.UIDIntervals(set, last)
		}
		sets[c] = resolved
	}
	for i := range c.Not {
		resolveSets(sets, &c.Not[i], last)
	}
	for i := range c.Or {
		resolveSets(sets, &c.Or[i][0], last)
		resolveSets(sets, &c.Or[i][1], last)
	}
}

// content is a message prepared for text search, lower-cased. Its slices
// are the evaluator's buffers, valid until the next row's load.
type content struct {
	header textproto.Header
	hdrLow []byte // the header with encoded words decoded, lower-cased
	body   []byte // decoded text of the body parts, lower-cased
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
			if !bytes.Contains(mc.body, []byte(strings.ToLower(s))) {
				return false, nil
			}
		}
		for _, s := range c.Text {
			s = strings.ToLower(s)
			if !bytes.Contains(mc.hdrLow, []byte(s)) && !bytes.Contains(mc.body, []byte(s)) {
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

// load reads the current message for text search, once per row. The
// evaluator's buffers are reused from row to row: a message costs its read
// and a pass to lower-case it, and a plain-text one (no MIME structure, no
// transfer encoding, an ASCII-compatible charset) is searched as it is.
func (ev *evaluator) load() (*content, error) {
	if ev.loaded {
		return ev.content, nil
	}
	if ev.size > largeText && !ev.holding {
		select {
		case ev.large <- struct{}{}:
			ev.holding = true
		case <-ev.ctx.Done():
			return nil, ev.ctx.Err()
		}
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
	ev.raw.Reset()
	if _, err := ev.raw.ReadFrom(io.LimitReader(f, MaxText)); err != nil {
		return nil, err
	}
	raw := ev.raw.Bytes()
	c := &ev.cur
	*c = content{}
	end := headerEnd(raw)
	var h textproto.Header
	if end >= 0 && end <= indexrow.MaxHeaderBytes {
		if ev.br == nil {
			ev.br = bufio.NewReaderSize(nil, 4096)
		}
		ev.br.Reset(bytes.NewReader(raw[:end]))
		h, err = textproto.ReadHeader(ev.br)
	}
	if end < 0 || end > indexrow.MaxHeaderBytes || err != nil {
		// Not a parsable message: search its raw bytes.
		low := toLower(raw)
		c.hdrLow, c.body = low, low
		ev.content = c
		return c, nil
	}
	c.header = h
	ev.hdr = appendHeaderText(ev.hdr[:0], h)
	c.hdrLow = toLower(ev.hdr)
	body := raw[end:]
	if !plainText(h) {
		ev.text.Reset()
		collectText(gomessage.Header{Header: h}, bytes.NewReader(body), &ev.text, 0)
		body = ev.text.Bytes()
	}
	c.body = toLower(body)
	ev.content = c
	return c, nil
}

// headerEnd is the offset of the body: just past the empty line that ends
// the header, or -1 when there is none.
func headerEnd(raw []byte) int {
	if bytes.HasPrefix(raw, []byte("\r\n")) {
		return 2
	}
	if bytes.HasPrefix(raw, []byte("\n")) {
		return 1
	}
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case bytes.HasPrefix(raw[i:], []byte("\r\n")):
			return i + 2
		case bytes.HasPrefix(raw[i:], []byte("\n")):
			return i + 1
		}
	}
}

// plainText reports whether a message's body is its text as it stands:
// text/plain (or no Content-Type), no transfer encoding beyond 7bit, 8bit
// or binary, and a charset whose ASCII letters are ASCII (us-ascii, utf-8,
// none).
func plainText(h textproto.Header) bool {
	if ct := h.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "text/plain" {
			return false
		}
		switch strings.ToLower(params["charset"]) {
		case "", "us-ascii", "utf-8", "utf8":
		default:
			return false
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// toLower lower-cases b: ASCII in place, and text with other bytes
// through bytes.ToLower (Unicode case mapping, a copy).
func toLower(b []byte) []byte {
	for _, c := range b {
		if c >= 0x80 {
			return bytes.ToLower(b)
		}
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return b
}

// appendHeaderText appends the header with encoded words decoded, a field
// per line.
func appendHeaderText(dst []byte, h textproto.Header) []byte {
	for f := h.Fields(); f.Next(); {
		v := f.Value()
		if strings.Contains(v, "=?") {
			if dec, err := wordDecoder.DecodeHeader(v); err == nil {
				v = dec
			}
		}
		dst = append(dst, f.Key()...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		dst = append(dst, '\n')
	}
	return dst
}

// collectText appends the decoded text of text/* and message/* parts (and
// raw bytes of parts it cannot decode) to out, bounded by MaxText.
func collectText(h gomessage.Header, r io.Reader, out *bytes.Buffer, depth int) {
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
		out.Write(appendHeaderText(nil, ih))
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
