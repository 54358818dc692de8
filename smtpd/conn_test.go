package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

// chunkReader returns at most n bytes per Read, as a network would.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

// edgeReference is what the edge's reader must deliver for in: the same
// bytes, except that the dot of a line starting ".<CR>x" (x not LF) is a CR,
// and a last line too short to decide on is not delivered at EOF. It also
// returns the offsets where a read must end: just past each STARTTLS line
// and, outside a message (cmd), past every line.
func edgeReference(in []byte, cmd bool) (out []byte, stops []int) {
	out = bytes.Clone(in)
	for p := 0; p < len(in); {
		line := in[p:]
		if !decidable(line, cmd) {
			return out[:p], stops
		}
		if isDotCR(line) {
			out[p] = '\r'
		}
		end := len(in)
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			end = p + j + 1
			if cmd || isStartTLS(line) {
				stops = append(stops, end)
			}
		}
		p = end
	}
	return out, stops
}

func FuzzEdgeRead(f *testing.F) {
	f.Add([]byte("EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n"), uint8(3), uint8(7), false)
	f.Add([]byte("DATA\r\nSubject: a\r\n\r\n.\rX\r\n..\r\n.\r\n"), uint8(1), uint8(1), false)
	f.Add([]byte("Subject: a\r\n\r\n.\rX\r\n..\r\nSTARTTLS\r\n.\r\nQUIT\r\n"), uint8(5), uint8(9), true)
	f.Add([]byte("starttls now\nNOOP\r\nSTA\r\nSTARTTL"), uint8(16), uint8(200), false)
	f.Add([]byte("BDAT 3 LAST\r\nabcbdat 2\r\nBD"), uint8(4), uint8(30), false)
	f.Add([]byte(".\r"), uint8(2), uint8(2), false)
	f.Fuzz(func(t *testing.T, in []byte, chunk, bufLen uint8, body bool) {
		c := &conn{lineStart: true, body: body, br: bufio.NewReaderSize(&chunkReader{b: in, n: int(chunk)%17 + 1}, 4096)}
		want, stops := edgeReference(in, !body)
		buf := make([]byte, int(bufLen)%64+1)
		var out []byte
		for i := 0; ; i++ {
			if i > len(in)+10 {
				t.Fatal("reader does not progress")
			}
			n, err := c.fill(buf)
			start := len(out)
			out = append(out, buf[:n]...)
			for len(stops) > 0 && stops[0] <= start {
				stops = stops[1:]
			}
			if len(stops) > 0 && stops[0] < len(out) {
				t.Fatalf("a read spans the end of a line at %d: [%d, %d)", stops[0], start, len(out))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(out, want) {
			t.Fatalf("delivered %q, want %q", out, want)
		}
	})
}
