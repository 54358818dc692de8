package imapserver

import (
	"bufio"
	"bytes"
	"compress/flate"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
	"github.com/emersion/go-imap/v2/internal/inflate"
)

// Posthouse patch: COMPRESS=DEFLATE (RFC 4978).
//
// Both directions carry raw deflate (RFC 1951, no zlib header) from the
// tagged OK on. Every write that leaves the connection's buffered writer
// (a response batch when the encoder flushes it, or a full buffer) is
// compressed and sync-flushed at once, so the client never waits for bytes
// the server holds back.
//
// Memory: a flate.Writer holds about 1 MB whatever its level, too much to
// keep per idle connection. Each write instead borrows a writer from a
// pool, compresses at BestSpeed (whose Reset is cheap), flushes and gives
// it back; a stream of independently compressed, sync-flushed segments is
// still one valid deflate stream, it only forgoes matches across writes.
// What stays with the connection is the decompressor (its 32 KiB window
// is needed: the client's compressor refers back into it) and a 4 KiB read
// buffer. The decompressor is internal/inflate, which hands out each
// block's data when the block ends: clients that flush with zlib's
// Z_PARTIAL_FLUSH (mbsync) would stall compress/flate's.

// CapCompressDeflate is the capability that enables COMPRESS DEFLATE.
const CapCompressDeflate imap.Cap = "COMPRESS=DEFLATE"

// deflateLevel: BestSpeed compresses IMAP text about as well as the
// default level, costs least CPU, and its writer resets without clearing
// a 512 KiB hash table.
const deflateLevel = flate.BestSpeed

// deflater is a pooled compressor with the buffer it writes into.
type deflater struct {
	zw *flate.Writer
	bw *bufio.Writer
}

var deflaters = sync.Pool{New: func() any {
	zw, _ := flate.NewWriter(nil, deflateLevel) // the level is valid
	return &deflater{zw: zw, bw: bufio.NewWriterSize(nil, 4096)}
}}

// deflateWriter compresses each Write into one sync-flushed segment.
type deflateWriter struct {
	dst io.Writer
}

func (w deflateWriter) Write(p []byte) (int, error) {
	d := deflaters.Get().(*deflater)
	d.bw.Reset(w.dst)
	d.zw.Reset(d.bw)
	n, err := d.zw.Write(p)
	if err == nil {
		err = d.zw.Flush()
	}
	if err == nil {
		err = d.bw.Flush()
	}
	d.zw.Reset(nil)
	d.bw.Reset(nil)
	deflaters.Put(d)
	return n, err
}

func (c *Conn) handleCompress(tag string, dec *imapwire.Decoder) error {
	var mech string
	if !dec.ExpectSP() || !dec.ExpectAtom(&mech) || !dec.ExpectCRLF() {
		return dec.Err()
	}
	if err := c.checkState(imap.ConnStateAuthenticated); err != nil {
		return err
	}
	if !strings.EqualFold(mech, "DEFLATE") {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Unknown compression mechanism"}
	}
	if c.compressed {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "COMPRESSIONACTIVE", Text: "DEFLATE is already active"}
	}

	// Nothing else may be written before the switch: keep encMutex.
	enc := newResponseEncoder(c)
	defer enc.end()
	err := writeStatusResp(enc.Encoder, tag, &imap.StatusResponse{
		Type: imap.StatusResponseTypeOK,
		Text: "DEFLATE active",
	})
	if err != nil {
		return err
	}
	// Bytes the client sent after the command are already compressed.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, c.br, int64(c.br.Buffered())); err != nil {
		panic(err) // unreachable
	}
	c.mutex.Lock()
	conn := c.conn
	c.compressed = true
	c.mutex.Unlock()
	var src io.Reader = conn
	if buf.Len() > 0 {
		src = io.MultiReader(&buf, conn)
	}
	rw := c.server.options.wrapReadWriter(struct {
		io.Reader
		io.Writer
	}{inflate.NewReader(src), deflateWriter{dst: conn}})
	c.br.Reset(rw)
	c.bw.Reset(rw)
	c.w = rw
	return nil
}
