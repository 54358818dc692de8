package sieve

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/charset"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// Body transforms (RFC 5173 §5).
type bodyTransform uint8

const (
	bodyText    bodyTransform = iota // :text, the default
	bodyRaw                          // :raw
	bodyContent                      // :content <types>
)

type bodyTest struct {
	transform bodyTransform
	types     []*str
	keys      []*str
	m         *matchSpec
}

func (t *bodyTest) eval(r *run) (bool, error) {
	var types []string
	if t.transform == bodyContent {
		types = r.expandAll(t.types)
	}
	texts, err := r.bodyTexts(t.transform, types)
	if err != nil {
		return false, err
	}
	return r.matchKeys(t.m, texts, t.keys)
}

// bodyTexts returns the texts a body test matches, cached per run.
func (r *run) bodyTexts(tr bodyTransform, types []string) ([]string, error) {
	ck := string(rune('0'+tr)) + strings.ToLower(strings.Join(types, "\x00"))
	if v, ok := r.body[ck]; ok {
		return v, nil
	}
	c := r.env.Content
	if c == nil {
		return nil, nil
	}
	size := c.Size()
	if size > r.opts.MaxBodyBytes {
		size = r.opts.MaxBodyBytes
	}
	if err := r.step(1 + size/64); err != nil {
		return nil, err
	}
	root, err := mimeparse.Parse(io.NewSectionReader(c, 0, size))
	if err != nil {
		return nil, err
	}
	var out []string
	read := func(p *mimeparse.Part, from int64) ([]byte, error) {
		if p.End <= from {
			return nil, nil
		}
		b := make([]byte, p.End-from)
		_, err := c.ReadAt(b, from)
		if err == io.EOF {
			err = nil
		}
		return b, err
	}
	if tr == bodyRaw {
		b, err := read(root, root.BodyStart)
		if err != nil {
			return nil, err
		}
		out = []string{string(b)}
	} else {
		var walk func(p *mimeparse.Part) error
		walk = func(p *mimeparse.Part) error {
			switch p.Kind {
			case mimeparse.KindMultipart:
				for _, ch := range p.Children {
					if err := walk(ch); err != nil {
						return err
					}
				}
				return nil
			case mimeparse.KindMessage:
				if p.Message != nil && tr == bodyContent && !typeWanted(p.MediaType, types) {
					return walk(p.Message)
				}
				if p.Message != nil && tr == bodyText {
					return walk(p.Message)
				}
			}
			mt := strings.ToLower(p.MediaType)
			if tr == bodyText && !strings.HasPrefix(mt, "text/") {
				return nil
			}
			if tr == bodyContent && !typeWanted(mt, types) {
				return nil
			}
			raw, err := read(p, p.BodyStart)
			if err != nil {
				return err
			}
			text := decodePart(raw, p)
			if tr == bodyText && mt == "text/html" {
				text = stripTags(text)
			}
			out = append(out, text)
			return nil
		}
		if err := walk(root); err != nil {
			return nil, err
		}
	}
	if r.body == nil {
		r.body = map[string][]string{}
	}
	r.body[ck] = out
	return out, nil
}

// typeWanted matches :content's types (RFC 5173 §5.2): "" is every
// type, "text" every text/ subtype, "text/plain" that one.
func typeWanted(mt string, types []string) bool {
	mt = strings.ToLower(mt)
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == "":
			return true
		case strings.Contains(t, "/"):
			if mt == t {
				return true
			}
		case strings.HasPrefix(mt, t+"/"):
			return true
		}
	}
	return false
}

// decodePart undoes the transfer encoding and, for text, converts the
// charset to UTF-8 (RFC 5173 §5.2). What cannot be decoded stays as is.
func decodePart(raw []byte, p *mimeparse.Part) string {
	var rd io.Reader = bytes.NewReader(raw)
	switch strings.ToLower(p.Encoding) {
	case "base64":
		rd = base64.NewDecoder(base64.StdEncoding, &b64Filter{r: rd})
	case "quoted-printable":
		rd = quotedprintable.NewReader(rd)
	}
	if strings.HasPrefix(strings.ToLower(p.MediaType), "text/") {
		if cs := strings.ToLower(p.Params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
			if cr, err := charset.Reader(cs, rd); err == nil {
				rd = cr
			}
		}
	}
	b, err := io.ReadAll(rd)
	if err != nil && len(b) == 0 {
		return string(raw)
	}
	return string(b)
}

// b64Filter drops what base64 decoding cannot take (line ends, spaces).
type b64Filter struct{ r io.Reader }

func (f *b64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		j := 0
		for i := 0; i < n; i++ {
			c := p[i]
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil || n == 0 {
			return j, err
		}
	}
}

// stripTags turns HTML into its text, roughly: tags are dropped, the
// contents of script and style too.
func stripTags(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		j := strings.IndexByte(s, '>')
		if j < 0 {
			break
		}
		tag := strings.ToLower(s[1:j])
		s = s[j+1:]
		for _, skip := range []string{"script", "style"} {
			if strings.HasPrefix(tag, skip) {
				if k := strings.Index(strings.ToLower(s), "</"+skip); k >= 0 {
					s = s[k:]
				}
			}
		}
		b.WriteByte(' ')
	}
	return b.String()
}
