package mailfile

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// MboxWriter writes messages as mboxrd (see the package doc).
type MboxWriter struct {
	w *bufio.Writer
}

// NewMboxWriter writes to w; Flush when done.
func NewMboxWriter(w io.Writer) *MboxWriter {
	return &MboxWriter{w: bufio.NewWriterSize(w, 64<<10)}
}

// fromLineLayout keeps the zone offset, which MboxReader reads back.
const fromLineLayout = "Mon Jan _2 15:04:05 -0700 2006"

// Write appends one message (CRLF or LF line endings) with its flags and
// internal date. Lines are written with LF endings; lines matching ">*From "
// get one more '>'.
func (mw *MboxWriter) Write(r io.Reader, flags []imap.Flag, date time.Time) error {
	if date.IsZero() {
		date = time.Now()
	}
	w := mw.w
	w.WriteString("From MAILER-DAEMON " + date.Format(fromLineLayout) + "\n")
	status, xstatus, keywords := "O", "", []string(nil)
	for _, f := range flags {
		switch strings.ToLower(string(f)) {
		case `\seen`:
			status = "RO"
		case `\answered`:
			xstatus += "A"
		case `\flagged`:
			xstatus += "F"
		case `\draft`:
			xstatus += "T"
		case `\deleted`:
			xstatus += "D"
		case `\recent`:
		default:
			if validKeyword(string(f)) {
				keywords = append(keywords, string(f))
			}
		}
	}
	br := bufio.NewReaderSize(r, maxChunk)
	// A message starting with white space (malformed: a continuation
	// line first) would become part of our last field: it gets none.
	if first, _ := br.Peek(1); len(first) == 0 || first[0] != ' ' && first[0] != '\t' {
		w.WriteString("Status: " + status + "\n")
		if xstatus != "" {
			w.WriteString("X-Status: " + xstatus + "\n")
		}
		if len(keywords) > 0 {
			w.WriteString("X-Keywords: " + strings.Join(keywords, " ") + "\n")
		}
	}
	atStart, ended := true, true
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if atStart {
				i := 0
				for i < len(chunk) && chunk[i] == '>' {
					i++
				}
				if bytes.HasPrefix(chunk[i:], []byte("From ")) {
					w.WriteByte('>')
				}
			}
			atStart = chunk[len(chunk)-1] == '\n'
			if bytes.HasSuffix(chunk, []byte("\r\n")) {
				w.Write(chunk[:len(chunk)-2])
				w.WriteByte('\n')
			} else {
				w.Write(chunk)
			}
			ended = atStart
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if !ended {
		w.WriteByte('\n')
	}
	_, err := w.WriteString("\n")
	return err
}

// Flush writes what is buffered.
func (mw *MboxWriter) Flush() error { return mw.w.Flush() }
