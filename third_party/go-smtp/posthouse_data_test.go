package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// refRead is upstream's dataReader.Read, one byte at a time: the bulk copy
// (Posthouse patch) must read exactly what it reads.
func refRead(r *dataReader, b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return
}

// readAll reads input through a dataReader with reads of step bytes and a
// bufio.Reader of bufSize, as read does, and returns what it read, the
// first error and what was left unread on the connection.
func readAll(input []byte, step, bufSize int, limit int64, read func(*dataReader, []byte) (int, error)) (out []byte, err error, rest []byte) {
	br := bufio.NewReaderSize(bytes.NewReader(input), bufSize)
	r := &dataReader{r: br, limited: limit > 0, n: limit}
	buf := make([]byte, step)
	for i := 0; i < len(input)+2; i++ {
		var n int
		n, err = read(r, buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	rest, _ = io.ReadAll(br)
	return out, err, rest
}

func checkSame(t *testing.T, input []byte, step, bufSize int, limit int64) {
	t.Helper()
	wantOut, wantErr, wantRest := readAll(input, step, bufSize, limit, refRead)
	out, err, rest := readAll(input, step, bufSize, limit, (*dataReader).Read)
	if !bytes.Equal(out, wantOut) || !errors.Is(err, wantErr) || !bytes.Equal(rest, wantRest) {
		t.Fatalf("input %q, reads of %d, buffer %d, limit %d:\nbulk     %q, %v, rest %q\nupstream %q, %v, rest %q",
			input, step, bufSize, limit, out, err, rest, wantOut, wantErr, wantRest)
	}
}

// TestDataReaderBulk: the bulk copy reads what upstream's byte-at-a-time
// state machine reads (dot-unstuffing, the end line, bare CR and LF, the
// size limit, reads and buffers of every size), and leaves the connection
// at the same byte after the end line.
func TestDataReaderBulk(t *testing.T) {
	long := strings.Repeat("x", 5000)
	inputs := []string{
		"Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"..leading dot\r\n.\r\nNEXT",
		"a\rb\nc\r\r\n.\r\n",
		"line\r\n.\rX\r\n.\r\n",
		"line\r\n..\r\n.\r\n",
		"\r\n.\r\n",
		".\r\n",
		"no end" + long,
		long + "\r\n" + long + "\r\n.\r\nMAIL FROM:<a@b>\r\n",
		"x\r\n.x\r\n.\r\n",
		"cr at end\r",
	}
	for _, in := range inputs {
		for _, step := range []int{1, 2, 3, 7, 64, 4096, 65536} {
			for _, bufSize := range []int{16, 4096} {
				for _, limit := range []int64{0, 1, 5, 100, 6000} {
					checkSame(t, []byte(in), step, bufSize, limit)
				}
			}
		}
	}
}

func FuzzDataReaderBulk(f *testing.F) {
	f.Add([]byte("a\r\n..b\r\n.\r\nrest"), uint16(3), uint8(0), uint16(0))
	f.Add([]byte("x\ry\nz\r\n.\rq\r\n.\r\n"), uint16(1), uint8(1), uint16(7))
	f.Fuzz(func(t *testing.T, input []byte, step uint16, bufSel uint8, limit uint16) {
		bufSize := []int{16, 64, 4096}[int(bufSel)%3]
		checkSame(t, input, int(step%8192)+1, bufSize, int64(limit))
	})
}
