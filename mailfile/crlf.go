package mailfile

import (
	"bufio"
	"io"
)

// crlfReader turns bare "\n" line ends into "\r\n", reading lines in
// chunks of at most maxChunk bytes.
type crlfReader struct {
	br     *bufio.Reader
	out    []byte
	buf    []byte
	prevCR bool
	err    error
}

// NewCRLFReader returns a reader of r's bytes with every "\n" not after a
// '\r' preceded by one, as Posthouse stores messages.
func NewCRLFReader(r io.Reader) io.Reader {
	return &crlfReader{br: bufio.NewReaderSize(r, maxChunk), buf: make([]byte, 0, maxChunk+2)}
}

func (c *crlfReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		chunk, err := c.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			c.err = err
		}
		c.out = appendCRLF(c.buf[:0], chunk, !c.prevCR)
		c.prevCR = len(chunk) > 0 && chunk[len(chunk)-1] == '\r'
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}
