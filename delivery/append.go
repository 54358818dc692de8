package delivery

import (
	"bufio"
	"io"
	"strings"

	"github.com/posthouse/posthouse/internal/readerat"
)

// renderFields writes fields as header lines.
func renderFields(fields []Field) string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(f.Name)
		b.WriteString(": ")
		b.WriteString(f.Value)
		b.WriteString("\r\n")
	}
	return b.String()
}

// appendFields returns msg with fields after its last header field
// (Verdict.Append). ok is false when the header does not end within
// MaxHeaderBytes: msg is returned as it is.
func appendFields(msg *io.SectionReader, fields []Field) (*io.SectionReader, bool) {
	end, ok := headerEnd(msg)
	if !ok {
		return msg, false
	}
	return readerat.Concat(io.NewSectionReader(msg, 0, end), readerat.String(renderFields(fields)),
		io.NewSectionReader(msg, end, msg.Size()-end)), true
}

// headerEnd returns the offset just after the header's last field line:
// where the empty line that ends the header starts, or the end of a
// message that is all header and ends with a line break. It reads at most
// MaxHeaderBytes.
func headerEnd(r *io.SectionReader) (int64, bool) {
	window := min(r.Size(), MaxHeaderBytes)
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, window), 4096)
	var off int64
	for {
		line, err := br.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			off += int64(len(line))
			line, err = br.ReadSlice('\n')
		}
		if err != nil {
			// No empty line within the window: only a whole message that
			// ends with a line break has its end as the header's.
			return off, window == r.Size() && len(line) == 0 && off > 0
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			return off, true
		}
		off += int64(len(line))
	}
}
