package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// maxSearchText bounds how much decoded text of one message a TEXT or BODY
// search looks at.
const maxSearchText = 16 << 20

// errSeqNumSearch: Search takes UIDs only; imapd translates sequence numbers.
var errSeqNumSearch = errors.New("postgres: search by sequence number: translate to UIDs first")

type searchRow struct {
	uid      imap.UID
	modseq   uint64
	flags    int64
	keywords string
	size     int64
	idate    int64 // YYYYMMDD of the internal date in its zone
	sent     int64
	body     int64
	emailID  int64
}

// search evaluates criteria against the index rows, reading a message's
// body only when a header, BODY or TEXT criterion needs it, and only after
// the cheap criteria of the same level passed.
func (a *account) search(ctx context.Context, mailboxID int64, c *imap.SearchCriteria) ([]imap.UID, error) {
	if c == nil {
		c = &imap.SearchCriteria{}
	}
	if hasSeqNums(c) {
		return nil, errSeqNumSearch
	}
	rows, err := a.s.pool.Query(ctx, `SELECT m.uid, m.modseq, m.flags, m.keywords, m.size, m.internaldate, m.internalzone,
			m.sentdate, m.body, m.emailid
		FROM mail_mailboxes b LEFT JOIN mail_messages m ON m.mailbox = b.id
		WHERE b.id = $1 AND b.account = $2 ORDER BY m.uid`, mailboxID, a.id)
	if err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: search: %w", err))
	}
	var list []searchRow
	found := false
	for rows.Next() {
		found = true
		var (
			r            searchRow
			uid, ms      *int64
			kw           *string
			flags, size  *int64
			idate, izone *int64
			sent, body   *int64
			eid          *int64
		)
		if err := rows.Scan(&uid, &ms, &flags, &kw, &size, &idate, &izone, &sent, &body, &eid); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: search: %w", err)
		}
		if uid == nil {
			continue // the mailbox is empty
		}
		r.uid, r.modseq, r.flags, r.size = imap.UID(*uid), uint64(*ms), *flags, *size
		if kw != nil {
			r.keywords = *kw
		}
		r.idate = dateNum(internalDate(*idate, *izone))
		r.sent, r.body, r.emailID = *sent, *body, *eid
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, a.wrapErr(fmt.Errorf("postgres: search: %w", err))
	}
	if !found {
		return nil, fmt.Errorf("%w: id %d", mailstore.ErrNoSuchMailbox, mailboxID)
	}
	var max imap.UID
	if len(list) > 0 {
		max = list[len(list)-1].uid
	}
	ev := &searchEval{ctx: ctx, a: a, max: max, uidSets: map[*imap.SearchCriteria][][]uidRange{}, list: list, window: 8}
	ev.resolveSets(c)
	var out []imap.UID
	for i := range list {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ev.content, ev.pos = nil, i
		ok, err := ev.match(c, &list[i])
		if err != nil {
			return nil, fmt.Errorf("postgres: search: %w", err)
		}
		if ok {
			out = append(out, list[i].uid)
		}
	}
	return out, nil
}

func hasSeqNums(c *imap.SearchCriteria) bool {
	if len(c.SeqNum) > 0 {
		return true
	}
	for i := range c.Not {
		if hasSeqNums(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if hasSeqNums(&c.Or[i][0]) || hasSeqNums(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

type searchEval struct {
	ctx     context.Context
	a       *account
	max     imap.UID
	uidSets map[*imap.SearchCriteria][][]uidRange // each criteria's UID sets, resolved once
	content *msgContent                           // of the message being evaluated, loaded lazily

	// With PGBodies, bodies of one chunk are read ahead in batches:
	// list is the mailbox, pos the message being evaluated, ahead the
	// bodies read for the messages from pos on (by body reference), used
	// how many of them were read, and window how many the next batch
	// reads (doubling while a batch is read whole, halving while most of
	// it is skipped by cheaper criteria, between 1 and searchAheadMax).
	list   []searchRow
	pos    int
	ahead  map[int64][]byte
	used   int
	window int
}

// Bounds of a batch of bodies read ahead for text search.
const (
	searchAheadMax   = 64
	searchAheadBytes = 4 << 20
)

// open opens m's body for text search: with PGBodies, from the batch read
// ahead, reading the next batch (m's body and those of the messages after
// it, one statement) when m's is not in it. ok is false when the body is
// gone (expunged meanwhile).
func (ev *searchEval) open(m *searchRow) (_ io.ReadSeekCloser, ok bool, _ error) {
	pb, isPG := ev.a.s.bodies.(*PGBodies)
	if !isPG || m.size > bodyChunk {
		f, err := ev.a.s.bodies.Open(ev.ctx, m.body, m.size)
		if errors.Is(err, errNoBody) {
			return nil, false, nil
		}
		return f, err == nil, err
	}
	data, found := ev.ahead[m.body]
	if !found {
		if ev.ahead != nil {
			switch {
			case ev.used >= len(ev.ahead):
				ev.window = min(2*ev.window, searchAheadMax)
			case 2*ev.used < len(ev.ahead):
				ev.window = max(ev.window/2, 1)
			}
		}
		refs := []int64{m.body}
		total := m.size
		for _, r := range ev.list[ev.pos+1:] {
			if len(refs) >= ev.window || total+r.size > searchAheadBytes {
				break
			}
			if r.size <= bodyChunk {
				refs = append(refs, r.body)
				total += r.size
			}
		}
		rows, err := ev.a.s.pool.Query(ev.ctx, `SELECT body, data FROM mail_body_chunks WHERE body = ANY($1) AND seq = 0`, refs)
		if err != nil {
			return nil, false, fmt.Errorf("read bodies: %w", err)
		}
		ev.ahead, ev.used = make(map[int64][]byte, len(refs)), 0
		for rows.Next() {
			var ref int64
			var b []byte
			if err := rows.Scan(&ref, &b); err != nil {
				rows.Close()
				return nil, false, fmt.Errorf("read bodies: %w", err)
			}
			ev.ahead[ref] = b
		}
		if err := rows.Err(); err != nil {
			return nil, false, fmt.Errorf("read bodies: %w", err)
		}
		if data, found = ev.ahead[m.body]; !found {
			return nil, false, nil
		}
	}
	ev.used++
	return pb.opened(ev.ctx, m.body, m.size, data), true, nil
}

func (ev *searchEval) resolveSets(c *imap.SearchCriteria) {
	if len(c.UID) > 0 {
		sets := make([][]uidRange, len(c.UID))
		for i, set := range c.UID {
			sets[i] = resolveUIDs(set, ev.max)
		}
		ev.uidSets[c] = sets
	}
	for i := range c.Not {
		ev.resolveSets(&c.Not[i])
	}
	for i := range c.Or {
		ev.resolveSets(&c.Or[i][0])
		ev.resolveSets(&c.Or[i][1])
	}
}

// msgContent is a message prepared for text search, lower-cased.
type msgContent struct {
	header textproto.Header
	hdrLow string // the raw header, lower-cased
	body   string // decoded text of the body parts, lower-cased
}

func (ev *searchEval) match(c *imap.SearchCriteria, m *searchRow) (bool, error) {
	for _, set := range ev.uidSets[c] {
		if !uidIn(set, m.uid) {
			return false, nil
		}
	}
	if !c.Since.IsZero() && m.idate < dateNum(c.Since) {
		return false, nil
	}
	if !c.Before.IsZero() && m.idate >= dateNum(c.Before) {
		return false, nil
	}
	sent := m.sent
	if sent == 0 {
		sent = m.idate // RFC 9051 §6.4.4 leaves it open; the internal date is the best guess
	}
	if !c.SentSince.IsZero() && sent < dateNum(c.SentSince) {
		return false, nil
	}
	if !c.SentBefore.IsZero() && sent >= dateNum(c.SentBefore) {
		return false, nil
	}
	for _, f := range c.Flag {
		if !hasFlag(m.flags, m.keywords, f) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(m.flags, m.keywords, f) {
			return false, nil
		}
	}
	if c.Larger > 0 && m.size <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && m.size >= c.Smaller {
		return false, nil
	}
	if c.ModSeq != nil && m.modseq < c.ModSeq.ModSeq {
		return false, nil
	}
	for _, id := range c.EmailID {
		if n, ok := parseEmailID(id); !ok || n != m.emailID {
			return false, nil
		}
	}
	if len(c.ThreadID) > 0 { // no threads: no message has a THREADID
		return false, nil
	}
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 {
		mc, err := ev.load(m)
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

// uidIn reports whether uid is in the sorted ranges.
func uidIn(ranges []uidRange, uid imap.UID) bool {
	i := sort.Search(len(ranges), func(i int) bool { return ranges[i].hi >= uid })
	return i < len(ranges) && ranges[i].lo <= uid
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

// load reads the current message for text search, from the body store.
// A message whose body is gone (expunged meanwhile) matches nothing.
func (ev *searchEval) load(m *searchRow) (*msgContent, error) {
	if ev.content != nil {
		return ev.content, nil
	}
	f, ok, err := ev.open(m)
	if err != nil || !ok {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(io.LimitReader(f, maxSearchText))
	var hdrRaw bytes.Buffer
	h, err := textproto.ReadHeader(bufio.NewReader(io.TeeReader(io.LimitReader(br, maxHeaderBytes), &hdrRaw)))
	if err != nil {
		// Not a parsable message: search its raw bytes.
		raw, _ := io.ReadAll(io.MultiReader(bytes.NewReader(hdrRaw.Bytes()), br))
		low := strings.ToLower(string(raw))
		ev.content = &msgContent{hdrLow: low, body: low}
		return ev.content, nil
	}
	// The tee buffered read-ahead beyond the header: re-read from the
	// start instead of guessing.
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	br = bufio.NewReader(io.LimitReader(f, maxSearchText))
	if _, err := textproto.ReadHeader(br); err != nil {
		return nil, err
	}
	var body strings.Builder
	collectText(gomessage.Header{Header: h}, br, &body, 0)
	hdrText := headerText(h)
	ev.content = &msgContent{header: h, hdrLow: strings.ToLower(hdrText), body: strings.ToLower(body.String())}
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
// raw bytes of parts it cannot decode) to out, bounded by maxSearchText.
func collectText(h gomessage.Header, r io.Reader, out *strings.Builder, depth int) {
	if out.Len() >= maxSearchText || depth > maxCacheDepth {
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
	io.Copy(out, io.LimitReader(body, int64(maxSearchText-out.Len())))
}
