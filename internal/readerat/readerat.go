package readerat

import (
	"errors"
	"io"
	"strings"
)

var errNegativeOffset = errors.New("readerat: negative offset")

// String returns a section over s.
func String(s string) *io.SectionReader {
	return io.NewSectionReader(strings.NewReader(s), 0, int64(len(s)))
}

// Concat returns one section over parts, in order. It reads the parts with
// ReadAt only, so it is safe for concurrent use when they are (os.File,
// strings.Reader and SectionReaders over them are), and every
// io.NewSectionReader over it starts a fresh, independent reader.
func Concat(parts ...*io.SectionReader) *io.SectionReader {
	c := &concat{}
	add := func(p *io.SectionReader) {
		c.parts = append(c.parts, p)
		c.ends = append(c.ends, c.size+p.Size())
		c.size += p.Size()
	}
	for _, p := range parts {
		if p.Size() == 0 {
			continue
		}
		// A whole Concat among the parts: its parts, not one more level
		// of indirection on every read.
		if inner, off, n := p.Outer(); off == 0 {
			if ic, ok := inner.(*concat); ok && n == ic.size {
				for _, q := range ic.parts {
					add(q)
				}
				continue
			}
		}
		add(p)
	}
	if len(c.parts) == 1 {
		return io.NewSectionReader(c.parts[0], 0, c.size)
	}
	return io.NewSectionReader(c, 0, c.size)
}

// concat is the io.ReaderAt behind Concat.
type concat struct {
	parts []*io.SectionReader
	ends  []int64 // ends[i]: offset just past parts[i]
	size  int64
}

func (c *concat) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errNegativeOffset
	}
	// Few parts (a prefix, a file, a few cut ranges; the pipeline's
	// removals allow about a thousand): a linear search beats a binary
	// one, and costs little next to the read at worst.
	i := 0
	for i < len(c.parts) && c.ends[i] <= off {
		i++
	}
	n := 0
	for ; i < len(c.parts) && n < len(b); i++ {
		start := c.ends[i] - c.parts[i].Size()
		end := min(int64(len(b)), c.ends[i]-off)
		m, err := c.parts[i].ReadAt(b[n:end], off+int64(n)-start)
		n += m
		if n < int(end) {
			if err == nil || err == io.EOF {
				// A part shorter than it said: the source changed.
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// Cut returns a section over r without the byte ranges in skip: each a
// [start, end) pair of offsets in r, in order, not overlapping (smtpd
// leaves out forged Authentication-Results fields, the delivery pipeline
// the fields filters remove). Ranges are clamped to r; one out of order
// or overlapping an earlier one is clamped past it. Like Concat, it reads
// with ReadAt only and holds nothing of r.
func Cut(r *io.SectionReader, skip [][2]int64) *io.SectionReader {
	if len(skip) == 0 {
		return r
	}
	var parts []*io.SectionReader
	var off int64
	for _, s := range skip {
		start, end := max(off, min(s[0], r.Size())), min(s[1], r.Size())
		if end <= start {
			continue
		}
		parts = append(parts, io.NewSectionReader(r, off, start-off))
		off = end
	}
	parts = append(parts, io.NewSectionReader(r, off, r.Size()-off))
	return Concat(parts...)
}
