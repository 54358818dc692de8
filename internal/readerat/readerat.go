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
	for _, p := range parts {
		if p.Size() == 0 {
			continue
		}
		c.parts = append(c.parts, p)
		c.ends = append(c.ends, c.size+p.Size())
		c.size += p.Size()
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
	// Few parts (a prefix, a file, rarely a few cut ranges): a linear
	// search beats a binary one.
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
