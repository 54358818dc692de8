package junk

import (
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// Bounds of the tokenizer. Whatever a message holds, one tokenization
// reads at most maxScanBytes of it, decodes at most maxTextBytes of text
// and keeps at most MaxTokens features, so its cost is bounded.
const (
	// MaxTokens is the most distinct features one message yields; the
	// first ones found are kept (header fields, then the text in order).
	MaxTokens = 2000
	// maxTokenLen is the longest word kept as itself, in bytes; a longer
	// one becomes a "long word" feature (its first character class and
	// length bucket), as base64 blobs and tracking ids are noise.
	maxTokenLen = 40
	// minTokenLen: shorter words carry no signal ("a", "of").
	minTokenLen = 3
	// maxScanBytes is how much of a message is parsed for its structure:
	// spam shows itself at the start, and parts starting later are ignored.
	maxScanBytes = 1 << 20
	// maxTextBytes is how much decoded text, over all text parts, is
	// split into words.
	maxTextBytes = 128 << 10
	// maxTextParts is how many text parts are read.
	maxTextParts = 20
	// maxHeaderValue is how much of one header value is looked at.
	maxHeaderValue = 2000
	// maxHeaderFields is how many field names are features.
	maxHeaderFields = 100
	// maxWordBuf is how much of one word is kept: enough for the host of
	// a link; the rest is only counted.
	maxWordBuf = 128
	// maxAttrLen bounds a collected HTML attribute value (a link).
	maxAttrLen = 300
)

// omittedFields are added to a message on its way into the store (by
// smtpd, the delivery pipeline or this filter), so a stored copy has them
// and the message being classified may not: they are not features, or a
// learned copy would teach the classifier about our own verdicts.
var omittedFields = map[string]bool{
	"Return-Path":                true,
	"Received":                   true,
	HeaderName:                   true,
	"Authentication-Results":     true, // ours are read separately, below
	"Dkim-Signature":             true,
	"Arc-Seal":                   true,
	"Arc-Message-Signature":      true,
	"Arc-Authentication-Results": true,
}

// Features is the set of hashed features of one message.
type Features struct {
	list []uint64
	set  hashSet
	word []byte // scratch: the word being built
}

// hashSet is an open-addressing set of non-zero hashes, at most half
// full (MaxTokens of setSlots): cheaper than a map for this one use.
type hashSet struct{ slots [setSlots]uint64 }

const setSlots = 4096

func (s *hashSet) insert(h uint64) bool {
	for i := h & (setSlots - 1); ; i = (i + 1) & (setSlots - 1) {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			return true
		case h:
			return false
		}
	}
}

func (s *hashSet) contains(h uint64) bool {
	for i := h & (setSlots - 1); ; i = (i + 1) & (setSlots - 1) {
		switch s.slots[i] {
		case 0:
			return false
		case h:
			return true
		}
	}
}

var featurePool = sync.Pool{New: func() any {
	return &Features{list: make([]uint64, 0, 256), word: make([]byte, 0, 64)}
}}

func newFeatures() *Features { return featurePool.Get().(*Features) }

// release returns f to the pool; f must not be used afterwards.
func (f *Features) release() {
	if cap(f.list) > 4*MaxTokens {
		return
	}
	f.list = f.list[:0]
	clear(f.set.slots[:])
	f.word = f.word[:0]
	featurePool.Put(f)
}

// Hashes returns the features' hashes, in the order found.
func (f *Features) Hashes() []uint64 { return f.list }

// Len is the number of features.
func (f *Features) Len() int { return len(f.list) }

func (f *Features) full() bool { return len(f.list) >= MaxTokens }

// FNV-1a, 64 bits: stable across processes and versions (the database
// keeps hashes, not words), cheap, and good enough for features.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// add records the feature prefix+word.
func (f *Features) add(prefix string, word []byte) {
	if f.full() {
		return
	}
	h := uint64(fnvOffset)
	for i := 0; i < len(prefix); i++ {
		h ^= uint64(prefix[i])
		h *= fnvPrime
	}
	for _, c := range word {
		h ^= uint64(c)
		h *= fnvPrime
	}
	if h == 0 {
		h = 1 // 0 is never a feature (the lookup pads with it)
	}
	if f.set.insert(h) {
		f.list = append(f.list, h)
	}
}

func (f *Features) addString(prefix, word string) {
	f.word = append(f.word[:0], word...)
	f.add(prefix, f.word)
	f.word = f.word[:0] // the word scanner builds its words here
}

// HashFeature is the hash of one feature as the tokenizer makes it; tests
// and tools use it to look a feature up.
func HashFeature(prefix, word string) uint64 {
	f := &Features{}
	f.addString(prefix, word)
	return f.list[0]
}

// A Tokenizer turns a message into features. The zero value is usable;
// Hostname, when set, is our authserv-id: only Authentication-Results
// fields that carry it are read (smtpd removes incoming ones that claim it).
type Tokenizer struct {
	Hostname string
}

// Tokenize reads the message of size bytes in r (header and body) and
// returns its features; h is its parsed header. Call release on the result
// when done. Read errors end the body early: the features found so far
// are returned with the error.
func (t *Tokenizer) Tokenize(h textproto.Header, r io.ReaderAt, size int64) (*Features, error) {
	f := newFeatures()
	t.header(f, h)
	err := t.body(f, r, size)
	return f, err
}

var wordDecoder = mime.WordDecoder{CharsetReader: gomessage.CharsetReader}

// header adds the features of the fields that matter: who sent it, to how
// many, what it is about, what sent it, what our checks said.
func (t *Tokenizer) header(f *Features, h textproto.Header) {
	mh := mail.Header{Header: gomessage.Header{Header: h}}

	if subj := headerValue(h, "Subject"); subj != "" {
		if dec, err := wordDecoder.DecodeHeader(subj); err == nil {
			subj = dec
		}
		t.text(f, "s:", subj)
		if isShouting(subj) {
			f.addString("s:", "<caps>")
		}
	} else {
		f.addString("s:", "<none>")
	}

	fromDomain := ""
	if from, err := mh.AddressList("From"); err == nil && len(from) > 0 {
		addr := strings.ToLower(from[0].Address)
		f.addString("from:", addr)
		if _, d, ok := strings.Cut(addr, "@"); ok {
			fromDomain = d
			f.addString("fromdom:", d)
		}
		t.text(f, "fromname:", from[0].Name)
	} else {
		f.addString("from:", "<bad>")
	}

	n := 0
	for _, k := range []string{"To", "Cc"} {
		if l, err := mh.AddressList(k); err == nil {
			n += len(l)
		}
	}
	f.addString("rcpts:", bucket(n))

	if rt, err := mh.AddressList("Reply-To"); err == nil && len(rt) > 0 {
		_, d, _ := strings.Cut(strings.ToLower(rt[0].Address), "@")
		f.addString("replyto:", d)
		if d != fromDomain {
			f.addString("replyto:", "<other domain>")
		}
	}

	if id := headerValue(h, "Message-Id"); id != "" {
		_, d, _ := strings.Cut(strings.Trim(strings.TrimSpace(id), "<>"), "@")
		f.addString("mid:", strings.ToLower(d))
	} else {
		f.addString("mid:", "<none>")
	}

	for _, k := range []string{"X-Mailer", "User-Agent"} {
		if v := headerValue(h, k); v != "" {
			w, _, _ := strings.Cut(strings.TrimSpace(v), " ")
			f.addString("ua:", strings.ToLower(limitString(w, maxTokenLen)))
		}
	}
	if v := headerValue(h, "Precedence"); v != "" {
		f.addString("prec:", strings.ToLower(limitString(strings.TrimSpace(v), maxTokenLen)))
	}
	if ct, _, err := mime.ParseMediaType(headerValue(h, "Content-Type")); err == nil {
		f.addString("ct:", ct)
	}

	// Field names (which are there, not how often).
	fields := h.Fields()
	for i := 0; fields.Next() && i < maxHeaderFields; i++ {
		k := fields.Key()
		if omittedFields[k] || len(k) > maxTokenLen {
			continue
		}
		f.addString("hdr:", strings.ToLower(k))
	}

	// Our own checks, when they are in the header.
	if t.Hostname != "" {
		ar := h.FieldsByKey("Authentication-Results")
		for ar.Next() {
			id, results, err := authres.Parse(limitString(ar.Value(), 4*maxHeaderValue))
			if err != nil || !strings.EqualFold(id, t.Hostname) {
				continue
			}
			for _, r := range results {
				if m, v := resultMethod(r); m != "" {
					f.addString("ar:", m+"="+string(v))
				}
			}
		}
	}
}

// resultMethod names an Authentication-Results result and its value.
func resultMethod(r authres.Result) (string, authres.ResultValue) {
	switch r := r.(type) {
	case *authres.SPFResult:
		return "spf", r.Value
	case *authres.DKIMResult:
		return "dkim", r.Value
	case *authres.DMARCResult:
		return "dmarc", r.Value
	case *authres.IPRevResult:
		return "iprev", r.Value
	}
	return "", ""
}

// headerValue is the first field's value, bounded.
func headerValue(h textproto.Header, k string) string {
	return limitString(h.Get(k), maxHeaderValue)
}

func limitString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// bucket groups a count into a few classes.
func bucket(n int) string {
	switch {
	case n == 0:
		return "0"
	case n == 1:
		return "1"
	case n <= 5:
		return "2-5"
	case n <= 20:
		return "6-20"
	}
	return "many"
}

// isShouting reports a subject mostly in capitals.
func isShouting(s string) bool {
	upper, letters := 0, 0
	for _, r := range s {
		if unicode.IsLetter(r) {
			letters++
			if unicode.IsUpper(r) {
				upper++
			}
		}
	}
	return letters >= 8 && upper*4 >= letters*3
}

// text adds the words of a short string (a header value).
func (t *Tokenizer) text(f *Features, prefix, s string) {
	sc := wordScanner{f: f, prefix: prefix}
	for _, r := range s {
		sc.rune(r)
	}
	sc.flush()
}

// body walks the message's structure, adds a feature per part type and
// attachment extension, and the words of its text parts.
func (t *Tokenizer) body(f *Features, r io.ReaderAt, size int64) error {
	root, err := mimeparse.Parse(io.NewSectionReader(r, 0, min(size, maxScanBytes)))
	if err != nil {
		return err
	}
	budget := maxTextBytes
	parts := 0
	var walk func(pt *mimeparse.Part, depth int) error
	walk = func(pt *mimeparse.Part, depth int) error {
		if f.full() {
			return nil
		}
		switch pt.Kind {
		case mimeparse.KindMultipart:
			f.addString("ct:", pt.MediaType)
			for _, c := range pt.Children {
				if err := walk(c, depth+1); err != nil {
					return err
				}
			}
			return nil
		case mimeparse.KindMessage:
			f.addString("ct:", pt.MediaType)
			return walk(pt.Message, depth+1)
		case mimeparse.KindOpaque:
			f.addString("ct:", "<opaque>")
			return nil
		}
		if depth > 0 {
			f.addString("ct:", pt.MediaType)
		}
		if name := attachmentName(pt); name != "" {
			if i := strings.LastIndexByte(name, '.'); i >= 0 && len(name)-i <= 10 {
				f.addString("ext:", strings.ToLower(name[i+1:]))
			}
			return nil
		}
		if !strings.HasPrefix(pt.MediaType, "text/") || budget <= 0 || parts >= maxTextParts {
			return nil
		}
		parts++
		n, err := t.part(f, pt, io.NewSectionReader(r, pt.BodyStart, pt.End-pt.BodyStart), budget)
		budget -= n
		return err
	}
	return walk(root, 0)
}

// attachmentName is the file name of a part that is an attachment.
func attachmentName(pt *mimeparse.Part) string {
	if pt.Disposition != nil {
		if n := pt.Disposition.Params["filename"]; n != "" {
			return n
		}
	}
	if n := pt.Params["name"]; n != "" {
		return n
	}
	if pt.Disposition != nil && strings.EqualFold(pt.Disposition.Value, "attachment") {
		return "."
	}
	return ""
}

// part adds the words of one text part, decoded (transfer encoding, then
// charset to UTF-8), HTML tags stripped; it reads at most budget bytes of
// decoded text and returns how many it read.
func (t *Tokenizer) part(f *Features, pt *mimeparse.Part, src io.Reader, budget int) (int, error) {
	rec := &readRecorder{r: src}
	var dec io.Reader = rec
	switch strings.ToLower(strings.TrimSpace(pt.Encoding)) {
	case "base64":
		dec = base64.NewDecoder(base64.StdEncoding, &base64Filter{r: rec})
	case "quoted-printable":
		dec = quotedprintable.NewReader(rec)
	}
	if cs := strings.ToLower(pt.Params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		if cr, err := charset.Reader(cs, dec); err == nil {
			dec = cr
		}
	}
	lr := &io.LimitedReader{R: dec, N: int64(budget)}
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := *bp

	sc := wordScanner{f: f}
	html := pt.MediaType == "text/html"
	var hs htmlScanner
	carry := 0 // bytes of an incomplete UTF-8 sequence kept from the last read
	for !f.full() {
		n, err := lr.Read(buf[carry:])
		n += carry
		carry = 0
		for i := 0; i < n; {
			c := buf[i]
			r, size := rune(c), 1
			if c >= utf8.RuneSelf {
				if !utf8.FullRune(buf[i:n]) && err == nil {
					carry = copy(buf, buf[i:n])
					break
				}
				r, size = utf8.DecodeRune(buf[i:n])
			}
			i += size
			if html {
				hs.rune(f, &sc, r)
			} else {
				sc.rune(r)
			}
		}
		if err != nil {
			// The end of the part, or of the budget; or a decoding
			// error (bad base64 or quoted-printable), which ends the
			// part, not the message.
			break
		}
	}
	sc.flush()
	return budget - int(lr.N), rec.err
}

var chunks = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// readRecorder keeps the first error of the message's reader other than
// EOF: an I/O failure, unlike a decoding error, is the caller's to see.
type readRecorder struct {
	r   io.Reader
	err error
}

func (rr *readRecorder) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}

// base64Filter drops what the base64 decoder would choke on (spaces,
// tabs; CR and LF it skips itself), as mail readers do.
type base64Filter struct{ r io.Reader }

func (b *base64Filter) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	j := 0
	for i := 0; i < n; i++ {
		if c := p[i]; c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	return j, err
}

// wordScanner splits text into words: runs of letters, digits and the
// few marks that belong inside words and links; everything is lower-cased.
// A run that looks like a link adds its host instead.
type wordScanner struct {
	f      *Features
	prefix string
	long   int  // bytes of the current word beyond maxTokenLen
	first  rune // first rune of the current word
}

// wordBytes marks the ASCII bytes that belong in words; punct those of
// them trimmed from a word's ends.
var wordBytes, punct = func() (w, p [utf8.RuneSelf]bool) {
	for c := range utf8.RuneSelf {
		w[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("$%'-._/:@?=&!+", byte(c)) >= 0
		p[c] = strings.IndexByte(".-_/:@?=&!+'", byte(c)) >= 0
	}
	return
}()

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return wordBytes[r]
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Sc, r)
}

func (s *wordScanner) rune(r rune) {
	if !isWordRune(r) {
		s.flush()
		return
	}
	w := &s.f.word
	if len(*w) == 0 && s.long == 0 {
		s.first = r
	}
	if len(*w) >= maxWordBuf {
		s.long += utf8.RuneLen(r)
		return
	}
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		*w = append(*w, byte(r))
		return
	}
	*w = utf8.AppendRune(*w, unicode.ToLower(r))
}

// flush ends the current word.
func (s *wordScanner) flush() {
	w := s.f.word
	s.f.word = s.f.word[:0]
	long := s.long
	s.long = 0
	if len(w) == 0 {
		return
	}
	if w[0] == 'h' || w[0] == 'w' {
		if url := linkHost(w); url != nil {
			s.f.add("url:", url)
			if d := registered(url); len(d) < len(url) {
				s.f.add("url:", d)
			}
			return
		}
	}
	w = trimPunct(w)
	n := len(w) + long
	switch {
	case n < minTokenLen:
	case n > maxTokenLen:
		lw := [2]byte{runeClass(s.first), byte('0' + min(n/10, 9))}
		s.f.add("long:", lw[:])
	default:
		s.f.add(s.prefix, w)
	}
}

// trimPunct removes the marks that end a sentence or wrap a word.
func trimPunct(w []byte) []byte {
	for len(w) > 0 && w[len(w)-1] < utf8.RuneSelf && punct[w[len(w)-1]] {
		w = w[:len(w)-1]
	}
	for len(w) > 0 && w[0] < utf8.RuneSelf && punct[w[0]] {
		w = w[1:]
	}
	return w
}

// runeClass classifies a long word by its first character.
func runeClass(r rune) byte {
	switch {
	case r < utf8.RuneSelf && (unicode.IsDigit(r)):
		return 'd'
	case r < utf8.RuneSelf:
		return 'a'
	case unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r):
		return 'c'
	}
	return 'u'
}

// linkHost returns the host of a word that is a link (http://, https://,
// www.), or nil.
func linkHost(w []byte) []byte {
	var rest []byte
	switch {
	case hasPrefix(w, "http://"):
		rest = w[7:]
	case hasPrefix(w, "https://"):
		rest = w[8:]
	case hasPrefix(w, "www."):
		rest = w
	default:
		return nil
	}
	end := len(rest)
	for i, c := range rest {
		if c == '/' || c == '?' || c == ':' || c == '#' || c == '&' || c == '=' {
			end = i
			break
		}
	}
	host := rest[:end]
	if at := lastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	host = trimPunct(host)
	if len(host) == 0 {
		return nil
	}
	if len(host) > maxTokenLen {
		host = host[len(host)-maxTokenLen:]
	}
	return host
}

// registered is the last two labels of a host name (a rough registered
// domain: links vary their host names below it).
func registered(host []byte) []byte {
	dots := 0
	for i := len(host) - 1; i >= 0; i-- {
		if host[i] == '.' {
			dots++
			if dots == 2 {
				return host[i+1:]
			}
		}
	}
	return host
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

func lastIndexByte(b []byte, c byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// htmlScanner strips tags roughly: text outside tags goes to the word
// scanner; tag names become features; href and src values are read as
// links; the contents of style and script elements are skipped; entities
// separate words.
type htmlScanner struct {
	inTag    bool
	skip     bool // inside <style> or <script>
	name     [12]byte
	nameLen  int
	nameDone bool
	closing  bool
	// attribute value collection
	attr    [maxAttrLen]byte
	attrLen int
	inAttr  bool
	quote   rune
	prev    [5]byte // the last bytes of the tag, to spot href= and src=
	entity  bool
}

func (h *htmlScanner) rune(f *Features, sc *wordScanner, r rune) {
	if !h.inTag {
		switch {
		case r == '<':
			sc.flush()
			h.inTag, h.nameLen, h.nameDone, h.closing, h.inAttr, h.prev = true, 0, false, false, false, [5]byte{}
		case h.skip:
		case r == '&':
			sc.flush()
			h.entity = true
		case h.entity:
			if r == ';' || !isWordRune(r) || r == ' ' {
				h.entity = false
			}
		default:
			sc.rune(r)
		}
		return
	}
	if h.inAttr {
		if (h.quote != 0 && r == h.quote) || (h.quote == 0 && (r == ' ' || r == '>' || r == '\t' || r == '\n' || r == '\r')) {
			h.inAttr = false
			h.link(f)
			if r == '>' {
				h.endTag(f)
			}
			return
		}
		if h.attrLen == 0 && h.quote == 0 && (r == '"' || r == '\'') {
			h.quote = r
			return
		}
		if h.attrLen+utf8.UTFMax <= len(h.attr) {
			h.attrLen += utf8.EncodeRune(h.attr[h.attrLen:], unicode.ToLower(r))
		}
		return
	}
	switch {
	case r == '>':
		h.endTag(f)
		return
	case !h.nameDone && r == '/' && h.nameLen == 0:
		h.closing = true
		return
	case !h.nameDone && r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
		if h.nameLen < len(h.name) {
			h.name[h.nameLen] = byte(unicode.ToLower(r))
			h.nameLen++
		}
		return
	case !h.nameDone:
		h.nameDone = true
	}
	if r == '=' && (string(h.prev[1:]) == "href" || string(h.prev[2:]) == "src") {
		h.inAttr, h.attrLen, h.quote = true, 0, 0
		return
	}
	if r < utf8.RuneSelf && r != ' ' {
		copy(h.prev[:], h.prev[1:])
		h.prev[4] = byte(unicode.ToLower(r))
	} else {
		h.prev = [5]byte{}
	}
}

func (h *htmlScanner) endTag(f *Features) {
	h.inTag = false
	name := string(h.name[:h.nameLen])
	if h.nameLen > 0 && !h.closing {
		f.add("tag:", h.name[:h.nameLen])
	}
	if name == "style" || name == "script" {
		h.skip = !h.closing
	}
}

// link adds the host of a collected href or src value.
func (h *htmlScanner) link(f *Features) {
	v := h.attr[:h.attrLen]
	h.attrLen = 0
	if host := linkHost(v); host != nil {
		f.add("url:", host)
		if d := registered(host); len(d) < len(host) {
			f.add("url:", d)
		}
	} else if hasPrefix(v, "cid:") {
		f.addString("url:", "<cid>")
	} else if hasPrefix(v, "data:") {
		f.addString("url:", "<data>")
	}
}
