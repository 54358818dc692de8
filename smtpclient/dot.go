package smtpclient

import (
	"bufio"
	"bytes"
)

// dotWriter writes a message as DATA's content (RFC 5321 §4.5.2): a dot
// that begins a line is doubled, a line feed without a carriage return
// before it becomes CRLF, and Close ends the content with CRLF "." CRLF.
// It copies whole runs between line feeds, where net/textproto's writer
// goes a byte at a time (a tenth of a relay's delivery CPU).
type dotWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	cr  bool // the last byte written was '\r'
}

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w, bol: true} }

func (d *dotWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if d.bol {
			if b[0] == '.' {
				if err := d.w.WriteByte('.'); err != nil {
					return n, err
				}
			}
			d.bol = false
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if _, err := d.w.Write(b); err != nil {
				return n, err
			}
			d.cr = b[len(b)-1] == '\r'
			return n + len(b), nil
		}
		if _, err := d.w.Write(b[:i]); err != nil {
			return n, err
		}
		if i > 0 {
			d.cr = b[i-1] == '\r'
		}
		if !d.cr {
			if err := d.w.WriteByte('\r'); err != nil {
				return n, err
			}
		}
		if err := d.w.WriteByte('\n'); err != nil {
			return n, err
		}
		d.bol, d.cr = true, false
		b = b[i+1:]
		n += i + 1
	}
	return n, nil
}

// Close ends an unterminated last line and the content, and flushes.
func (d *dotWriter) Close() error {
	if !d.bol {
		if !d.cr {
			d.w.WriteByte('\r')
		}
		d.w.WriteByte('\n')
	}
	d.w.WriteString(".\r\n")
	return d.w.Flush()
}
