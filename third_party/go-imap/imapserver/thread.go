package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionThread is an IMAP session which supports THREAD (RFC 5256 §4)
// (Posthouse patch).
type SessionThread interface {
	Session

	// Thread returns the threads of the messages matching criteria, with
	// message numbers as kind says. alg is one the server advertises.
	Thread(kind NumKind, alg imap.ThreadAlgorithm, criteria *imap.SearchCriteria) ([]imap.ThreadData, error)
}

func (c *Conn) handleThread(dec *imapwire.Decoder, numKind NumKind) error {
	var alg, charset string
	if !dec.ExpectSP() || !dec.ExpectAtom(&alg) || !dec.ExpectSP() || !dec.ExpectAString(&charset) || !dec.ExpectSP() {
		return dec.Err()
	}
	criteria, err := readSearchCriteria(dec)
	if err != nil {
		return err
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}
	algorithm := imap.ThreadAlgorithm(strings.ToUpper(alg))
	if !c.server.options.caps().Has(imap.Cap("THREAD=" + string(algorithm))) {
		return newClientBugError("unknown thread algorithm")
	}
	if err := checkSearchCharset(charset); err != nil {
		return err
	}
	if err := c.checkState(imap.ConnStateSelected); err != nil {
		return err
	}
	session, ok := c.session.(SessionThread)
	if !ok {
		return newClientBugError("THREAD is not supported")
	}
	threads, err := session.Thread(numKind, algorithm, criteria)
	if err != nil {
		return err
	}
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("THREAD")
	if len(threads) > 0 {
		enc.SP()
	}
	for i := range threads {
		writeThread(enc.Encoder, &threads[i])
	}
	return enc.CRLF()
}

// writeThread writes one thread-list: "(3 6 (4 23)(44 7 96))", and
// "((3)(5))" for a dummy root.
func writeThread(enc *imapwire.Encoder, t *imap.ThreadData) {
	enc.Special('(')
	for i, num := range t.Chain {
		if i > 0 {
			enc.SP()
		}
		enc.Number(num)
	}
	if len(t.Chain) > 0 && len(t.SubThreads) > 0 {
		enc.SP()
	}
	for i := range t.SubThreads {
		writeThread(enc, &t.SubThreads[i])
	}
	enc.Special(')')
}
