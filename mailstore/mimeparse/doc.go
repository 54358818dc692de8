// Package mimeparse is Posthouse's MIME parser for stored messages: the one
// place that reads a message's structure, for the store at delivery and
// APPEND (envelope and body structure for the index), for imapd's FETCH
// sections and BINARY, and for smtpd's header rule. It is a leaf of
// mailstore and knows no protocol session.
//
// # One pass, bounded
//
// Parse reads a message once, as a stream, through a fixed 32 KiB buffer:
// long lines are handled in chunks and never held whole. It keeps a stack
// of open entities (bounded by MaxDepth), at most MaxParts recorded parts,
// and one header's bytes at a time (at most MaxHeaderBytes). Time is linear
// in the message's size; memory does not grow with it. Measured on the
// shared 2-core development machine (go test -bench 'ParseBomb|DeliverBomb'
// ./mailstore/maildir; CPU seconds from getrusage, load average about 5):
//
//	                                   CPU       allocated
//	parse, 1 MiB message/rfc822 bomb   3.2 ms    116 KB
//	parse, 50 MiB of the same          74 ms     103 KB
//	parse, 50 MiB, 5 million parts     0.61 s    3.1 MB (2,000 parts kept)
//	delivery, 1 MiB bomb               5.4 ms    191 KB (file, fsync, index)
//	delivery, 50 MiB bomb              0.13 s    192 KB
//
// # Limits (what clients see)
//
//   - MaxDepth (32): multipart and message/* entities are looked into down
//     to depth 32; one deeper is an opaque leaf, shown as
//     application/octet-stream with its whole body.
//   - MaxParts (2,000 entities per message, every part and encapsulated
//     message counted): parts past it are folded, left out of the
//     structure while their bytes stay in the enclosing body (its TEXT).
//     A multipart or message/* part with no room left is an opaque leaf.
//   - MaxTotalHeaderBytes (1 MiB): header bytes parsed over all entities
//     of one message; parts starting after it is spent are folded too.
//   - MaxHeaderBytes (256 KiB): one header's fields are those that start in
//     its first 256 KiB; the rest of the header stays in the message and in
//     BODY[HEADER] but is not interpreted. smtpd reads headers by the same
//     rule (ReadHeader), so SMTP, delivery and APPEND see the same fields.
//   - MaxBoundaryLen (200): a multipart whose boundary is longer, empty or
//     missing has no parts.
//   - A multipart without parts (no boundary, no delimiter, or "--z--"
//     alone) shows one empty text/plain part: RFC 9051 §7.5.2 wants at
//     least one, and go-imap cannot write none.
//
// # Rules
//
// Delimiters follow RFC 2046 §5.1.1: "--" boundary at the start of a line,
// then "--" (close delimiter) or transport padding (spaces and tabs, at most
// 256 bytes) and the line end; the CRLF before a delimiter belongs to it. A
// delimiter of any open multipart ends everything inside it, so an inner
// part can never hide its parent's delimiter; the outermost match wins. A
// part of a multipart that is never closed ends before the message's last
// line end. In multipart/digest a part without Content-Type is
// message/rfc822 (RFC 2046 §5.1.5). Headers are read as go-message reads
// them: a blank line ends them, and so does a line that is not a field (it
// and its continuation lines are the header's last; the body starts after).
// Bare LF line ends are accepted.
//
// For ordinary mail the body structure and envelope are exactly what
// go-imap's imapserver.ExtractBodyStructure and ExtractEnvelope give
// (TestSameAsGoIMAP holds that over a generated corpus), so clients see no
// change; sections match imapserver.ExtractBodySection and
// ExtractBinarySection (TestSectionsSameAsGoIMAP), except that BINARY only
// removes the transfer encoding (RFC 3516), without converting charsets.
//
// # Sections
//
// Message locates FETCH sections: parts by path (RFC 9051 §6.4.5), HEADER,
// HEADER.FIELDS (.NOT), MIME, TEXT, partial ranges, BINARY and BINARY.SIZE.
// It parses only as much as a request needs (the header alone for
// BODY[HEADER] or BODY[TEXT]) and streams section bytes from the message
// file; a filtered header or a decoded body is produced twice as a stream,
// once to count its length for the literal, once to write it.
//
// Package hostile (mimeparse/hostile) generates the hostile messages the
// tests of this package, mailstore/maildir, imapd and integration use.
package mimeparse
