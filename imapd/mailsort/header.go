package mailsort

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// MaxHeaderBytes bounds how much of a message ReadThreadFields reads: the
// store's own header limit (mailstore/mimeparse.MaxHeaderBytes).
const MaxHeaderBytes = 1 << 20

// ThreadFields are the header fields REFERENCES threading reads, unfolded.
type ThreadFields struct {
	MessageID, InReplyTo, References string
}

// ReadThreadFields reads a message's header from r up to the empty line
// (or MaxHeaderBytes, or the end) and returns the first Message-ID,
// In-Reply-To and References fields, unfolded. It keeps no other field,
// so its cost is the header's length and its memory those three fields.
func ReadThreadFields(r *bufio.Reader) (ThreadFields, error) {
	var f ThreadFields
	var cur *string // the field being continued, nil for one we skip
	read := 0
	for read < MaxHeaderBytes {
		line, err := r.ReadSlice('\n')
		read += len(line)
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			if len(line) == 0 || err != nil {
				return f, err
			}
		}
		full := err == nil
		body := bytes.TrimRight(line, "\r\n")
		switch {
		case len(body) == 0:
			if full {
				return f, nil // end of header
			}
			cur = nil
		case body[0] == ' ' || body[0] == '\t':
			if cur != nil {
				*cur += string(body)
			}
		default:
			cur = nil
			name, value, ok := bytes.Cut(body, []byte(":"))
			if !ok {
				break
			}
			var dst *string
			switch {
			case bytes.EqualFold(name, []byte("Message-ID")):
				dst = &f.MessageID
			case bytes.EqualFold(name, []byte("In-Reply-To")):
				dst = &f.InReplyTo
			case bytes.EqualFold(name, []byte("References")):
				dst = &f.References
			}
			if dst != nil && *dst == "" {
				*dst = string(value)
				cur = dst
			}
		}
		// A line longer than the buffer continues as a continuation of
		// itself: skip the rest of it unless it belongs to a kept field.
		for !full {
			line, err = r.ReadSlice('\n')
			read += len(line)
			if cur != nil && read < MaxHeaderBytes {
				*cur += string(bytes.TrimRight(line, "\r\n"))
			}
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				if errors.Is(err, io.EOF) {
					return f, nil
				}
				return f, err
			}
		}
	}
	return f, nil
}
