package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// BodyStore keeps message bodies, the bytes exactly as delivered, apart
// from the index rows: the first implementation (PGBodies) keeps them in
// PostgreSQL; one keeping them in object storage can replace it. A body
// is named by a reference the store hands out; copies of a message share
// their body, and the index deletes a body only when no message row
// refers to it any more.
//
// Create and Delete run inside the index transaction that adds or removes
// the rows referring to the body, so a body and its rows commit or roll
// back together: a store outside the database records what it did in the
// transaction, so that what a rollback or a crash leaves behind can be
// found and removed.
type BodyStore interface {
	// Create starts a body in tx. The bytes written to the returned
	// writer are its content; Close returns its reference.
	Create(ctx context.Context, tx pgx.Tx) (BodyWriter, error)
	// Open returns the body's bytes; size is its length, as the index
	// row records it. A body that is gone gives an error wrapping
	// errNoBody.
	Open(ctx context.Context, ref, size int64) (io.ReadSeekCloser, error)
	// Delete removes the bodies among refs that no row of mail_messages
	// refers to any more, in tx (after the rows' deletion).
	Delete(ctx context.Context, tx pgx.Tx, refs []int64) error
}

// BodyWriter receives a body's bytes.
type BodyWriter interface {
	io.Writer
	// Close stores what remains and returns the body's reference.
	Close() (ref int64, err error)
}

// errNoBody: a body is not (or no longer) stored.
var errNoBody = errors.New("postgres: message body not found")

// bodyChunk is the most bytes of a body in one row: memory per delivery
// or reader is bounded by it, whatever the message's size, and a message
// below it (nearly all) is one row, written and read in one statement.
const bodyChunk = 256 << 10

// PGBodies keeps bodies in mail_body_chunks, in chunks of bodyChunk bytes.
type PGBodies struct {
	pool *pgxpool.Pool
}

// NewPGBodies returns the BodyStore over the pool's database.
func NewPGBodies(pool *pgxpool.Pool) *PGBodies { return &PGBodies{pool: pool} }

type pgBodyWriter struct {
	ctx context.Context
	tx  pgx.Tx
	buf []byte
	ref int64 // 0 until the first chunk is written
	seq int32
	err error
}

// Create implements BodyStore.
func (b *PGBodies) Create(ctx context.Context, tx pgx.Tx) (BodyWriter, error) {
	return &pgBodyWriter{ctx: ctx, tx: tx}, nil
}

func (w *pgBodyWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, min(bodyChunk, max(len(p), 4096)))
		}
		take := min(len(p), bodyChunk-len(w.buf))
		w.buf = append(w.buf, p[:take]...)
		p = p[take:]
		if len(w.buf) == bodyChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush writes the buffered chunk.
func (w *pgBodyWriter) flush() error {
	var err error
	if w.ref == 0 {
		err = w.tx.QueryRow(w.ctx, `INSERT INTO mail_body_chunks (body, seq, data) VALUES (nextval('mail_body_ids'), 0, $1) RETURNING body`, w.buf).Scan(&w.ref)
	} else {
		_, err = w.tx.Exec(w.ctx, `INSERT INTO mail_body_chunks (body, seq, data) VALUES ($1, $2, $3)`, w.ref, w.seq, w.buf)
	}
	if err != nil {
		w.err = fmt.Errorf("postgres: store body: %w", err)
		return w.err
	}
	w.seq++
	w.buf = w.buf[:0]
	return nil
}

func (w *pgBodyWriter) Close() (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(w.buf) > 0 || w.ref == 0 {
		if w.buf == nil {
			w.buf = []byte{} // an empty body is one empty chunk, not NULL
		}
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	w.buf = nil
	return w.ref, nil
}

// Open implements BodyStore. The first chunk is read at once, so a
// message of one chunk (nearly all) is read in this one statement and
// stays readable if it is expunged while the caller reads it; later
// chunks are read as the reader reaches them.
func (b *PGBodies) Open(ctx context.Context, ref, size int64) (io.ReadSeekCloser, error) {
	r := &pgBodyReader{ctx: context.WithoutCancel(ctx), pool: b.pool, ref: ref, size: size, seq: -1}
	if err := r.load(0); err != nil {
		return nil, err
	}
	return r, nil
}

// opened is Open for a body whose first chunk the caller has read (in the
// statement that found the message).
func (b *PGBodies) opened(ctx context.Context, ref, size int64, first []byte) io.ReadSeekCloser {
	if first == nil {
		first = []byte{}
	}
	return &pgBodyReader{ctx: context.WithoutCancel(ctx), pool: b.pool, ref: ref, size: size, seq: 0, cur: first}
}

type pgBodyReader struct {
	ctx  context.Context
	pool *pgxpool.Pool
	ref  int64
	size int64
	off  int64
	seq  int32 // chunk in cur; -1: none
	cur  []byte
}

func (r *pgBodyReader) load(seq int32) error {
	var data []byte
	err := r.pool.QueryRow(r.ctx, `SELECT data FROM mail_body_chunks WHERE body = $1 AND seq = $2`, r.ref, seq).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: body %d chunk %d", errNoBody, r.ref, seq)
	}
	if err != nil {
		return fmt.Errorf("postgres: read body: %w", err)
	}
	r.seq, r.cur = seq, data
	return nil
}

func (r *pgBodyReader) Read(p []byte) (int, error) {
	if r.cur == nil && r.seq == -2 {
		return 0, errors.New("postgres: read of a closed body")
	}
	if r.off >= r.size {
		return 0, io.EOF
	}
	seq := int32(r.off / bodyChunk)
	if seq != r.seq {
		if err := r.load(seq); err != nil {
			return 0, err
		}
	}
	in := r.off - int64(seq)*bodyChunk
	if in >= int64(len(r.cur)) {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, r.cur[in:])
	r.off += int64(n)
	return n, nil
}

func (r *pgBodyReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("postgres: seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("postgres: seek before the start")
	}
	r.off = offset
	return offset, nil
}

func (r *pgBodyReader) Close() error {
	r.cur, r.seq = nil, -2
	return nil
}

// Delete implements BodyStore.
func (b *PGBodies) Delete(ctx context.Context, tx pgx.Tx, refs []int64) error {
	if len(refs) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `DELETE FROM mail_body_chunks c WHERE c.body = ANY($1)
		AND NOT EXISTS (SELECT 1 FROM mail_messages m WHERE m.body = c.body)`, refs)
	if err != nil {
		return fmt.Errorf("postgres: delete bodies: %w", err)
	}
	return nil
}
