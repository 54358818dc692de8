package imapd

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// APPEND of a literal8 (RFC 3516 §4.4). A message may carry parts with
// Content-Transfer-Encoding: binary, whose bytes (NUL among them) no plain
// IMAP literal may hold, so BODY[n] of such a part could not be sent. Such
// parts are stored base64-encoded, their header saying so; BINARY[n] and
// BINARY.SIZE[n] decode them back to the bytes the client sent. The
// literal is spooled (append.go), located with mimeparse (bounded
// whatever it holds) and streamed to the store; nothing is held whole in
// memory.

// base64Line is the encoded line length (RFC 2045 §6.8: at most 76).
const base64Line = 76

// binaryLeaves lists the leaf parts whose transfer encoding is binary, in
// message order.
func binaryLeaves(p *mimeparse.Part, out []*mimeparse.Part) []*mimeparse.Part {
	switch p.Kind {
	case mimeparse.KindMultipart:
		for _, c := range p.Children {
			out = binaryLeaves(c, out)
		}
	case mimeparse.KindMessage:
		if p.Message != nil {
			out = binaryLeaves(p.Message, out)
		}
	case mimeparse.KindLeaf:
		if strings.EqualFold(p.Encoding, "binary") && !p.HeaderCut {
			out = append(out, p)
		}
	}
	return out
}

// binaryToBase64 returns the message in f (size bytes) with its binary
// parts base64-encoded, as a stream, or nil when it has none.
func binaryToBase64(f io.ReaderAt, size int64) (io.ReadCloser, error) {
	root, err := mimeparse.Parse(io.NewSectionReader(f, 0, size))
	if err != nil {
		return nil, err
	}
	parts := binaryLeaves(root, nil)
	if len(parts) == 0 {
		return nil, nil
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeConverted(pw, f, size, parts))
	}()
	return pr, nil
}

func writeConverted(w io.Writer, f io.ReaderAt, size int64, parts []*mimeparse.Part) error {
	var pos int64
	for _, p := range parts {
		if p.Start < pos || p.End > size {
			return fmt.Errorf("imapd: part bounds out of order")
		}
		if _, err := io.Copy(w, io.NewSectionReader(f, pos, p.Start-pos)); err != nil {
			return err
		}
		hdr := make([]byte, p.BodyStart-p.Start) // at most MaxHeaderBytes
		if _, err := f.ReadAt(hdr, p.Start); err != nil {
			return err
		}
		if _, err := w.Write(rewriteCTE(hdr)); err != nil {
			return err
		}
		lw := &lineWriter{w: w}
		enc := base64.NewEncoder(base64.StdEncoding, lw)
		if _, err := io.Copy(enc, io.NewSectionReader(f, p.BodyStart, p.End-p.BodyStart)); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
		if p.End == size {
			// The body ends the message: end its last line. Otherwise the
			// CRLF of the boundary delimiter follows.
			if _, err := w.Write([]byte("\r\n")); err != nil {
				return err
			}
		}
		pos = p.End
	}
	_, err := io.Copy(w, io.NewSectionReader(f, pos, size-pos))
	return err
}

// rewriteCTE replaces the Content-Transfer-Encoding field of a header
// (with its folded lines) by "base64".
func rewriteCTE(hdr []byte) []byte {
	var out bytes.Buffer
	skipping := false
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		line := hdr
		if i >= 0 {
			line = hdr[:i+1]
		}
		hdr = hdr[len(line):]
		folded := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
		if skipping && folded {
			continue
		}
		skipping = false
		if k, _, ok := bytes.Cut(line, []byte(":")); ok && strings.EqualFold(strings.TrimSpace(string(k)), "Content-Transfer-Encoding") {
			out.WriteString("Content-Transfer-Encoding: base64\r\n")
			skipping = true
			continue
		}
		out.Write(line)
	}
	return out.Bytes()
}

// lineWriter breaks base64 output into CRLF-separated lines.
type lineWriter struct {
	w   io.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if l.col == base64Line {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return n, err
			}
			l.col = 0
		}
		k := min(len(p), base64Line-l.col)
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		l.col += k
		n += k
		p = p[k:]
	}
	return n, nil
}
