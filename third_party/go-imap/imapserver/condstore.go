package imapserver

import (
	"fmt"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionCondStore is an IMAP session which supports CONDSTORE (RFC 7162
// §3.1). (Posthouse patch.)
type SessionCondStore interface {
	Session

	// HighestModSeq returns the selected mailbox's HIGHESTMODSEQ. The
	// first CONDSTORE-enabling command in the selected state reports it
	// in an untagged OK (RFC 7162 §3.1).
	HighestModSeq() (uint64, error)
}

// enableCondStore records that the client used a CONDSTORE-enabling
// command (RFC 7162 §3.1: ENABLE CONDSTORE, SELECT/EXAMINE (CONDSTORE),
// STATUS HIGHESTMODSEQ, FETCH MODSEQ or CHANGEDSINCE, STORE UNCHANGEDSINCE,
// SEARCH MODSEQ). The first one in the selected state sends "* OK
// [HIGHESTMODSEQ n]". It does nothing unless the server advertises
// CONDSTORE. (Posthouse patch.)
func (c *Conn) enableCondStore() error {
	if !c.server.options.caps().Has(imap.CapCondStore) {
		return nil
	}
	c.mutex.Lock()
	was := c.enabled.Has(imap.CapCondStore)
	c.enabled[imap.CapCondStore] = struct{}{}
	c.mutex.Unlock()
	if was || c.state != imap.ConnStateSelected {
		return nil
	}
	session, ok := c.session.(SessionCondStore)
	if !ok {
		return nil
	}
	modSeq, err := session.HighestModSeq()
	if err != nil {
		return err
	}
	return c.writeHighestModSeq(modSeq)
}

// writeHighestModSeq writes "* OK [HIGHESTMODSEQ n]" (RFC 7162 §3.1.2.1).
func (c *Conn) writeHighestModSeq(modSeq uint64) error {
	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("OK").SP().Special('[').Atom("HIGHESTMODSEQ").SP().ModSeq(modSeq).Special(']')
	enc.SP().Text("Highest")
	return enc.CRLF()
}

// maxFetchModifiers bounds the FETCH modifier list (RFC 7162 defines two).
const maxFetchModifiers = 10

// readFetchModifiers reads FETCH's parenthesized modifiers: CHANGEDSINCE
// (RFC 7162 §3.1.4.1), which implies the MODSEQ item, and VANISHED
// (§3.2.6). (Posthouse patch.)
func readFetchModifiers(dec *imapwire.Decoder, options *imap.FetchOptions) error {
	n := 0
	return dec.ExpectList(func() error {
		if n++; n > maxFetchModifiers {
			return newClientBugError("Too many FETCH modifiers")
		}
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		switch strings.ToUpper(name) {
		case "CHANGEDSINCE":
			if !dec.ExpectSP() || !dec.ExpectModSeq(&options.ChangedSince) {
				return dec.Err()
			}
			if options.ChangedSince == 0 {
				// mod-sequence-value is positive (RFC 7162 §7).
				return newClientBugError("CHANGEDSINCE 0")
			}
			options.ModSeq = true
		case "VANISHED":
			options.Vanished = true
		default:
			return newClientBugError("Unknown FETCH modifier")
		}
		return nil
	})
}

// checkFetchCondStore refuses CONDSTORE and QRESYNC FETCH items and
// modifiers the client may not use, and records a CONDSTORE-enabling
// FETCH. (Posthouse patch.)
func (c *Conn) checkFetchCondStore(options *imap.FetchOptions, numKind NumKind) error {
	if !options.ModSeq && !options.Vanished {
		return nil
	}
	if !c.server.options.caps().Has(imap.CapCondStore) {
		return newClientBugError("MODSEQ and CHANGEDSINCE need CONDSTORE")
	}
	if options.Vanished {
		// RFC 7162 §3.2.6: UID FETCH only, with CHANGEDSINCE, after
		// ENABLE QRESYNC.
		switch {
		case numKind != NumKindUID:
			return newClientBugError("VANISHED is only allowed in UID FETCH")
		case options.ChangedSince == 0:
			return newClientBugError("VANISHED needs CHANGEDSINCE")
		case !c.EnabledCaps().Has(imap.CapQResync):
			return newClientBugError("VANISHED needs ENABLE QRESYNC")
		}
	}
	return c.enableCondStore()
}

// WriteModSeq writes the message's MODSEQ (RFC 7162 §3.1.4.1).
// (Posthouse patch.)
func (w *FetchResponseWriter) WriteModSeq(modSeq uint64) {
	w.writeItemSep()
	w.enc.Atom("MODSEQ").SP().Special('(').ModSeq(modSeq).Special(')')
}

// WriteVanished writes "* VANISHED (EARLIER) uids": the UIDs expunged
// since the client's modseq, for UID FETCH (CHANGEDSINCE n VANISHED) and
// SELECT (QRESYNC …) (RFC 7162 §3.2.10). It must come before the FETCH
// responses. An empty set writes nothing. (Posthouse patch.)
func (cmd *FetchWriter) WriteVanished(uids imap.UIDSet) error {
	if len(uids) == 0 {
		return nil
	}
	enc := newResponseEncoder(cmd.conn)
	defer enc.end()
	enc.NoFlush = enc.NoFlush || cmd.options.batch
	enc.Atom("*").SP().Atom("VANISHED").SP().Special('(').Atom("EARLIER").Special(')').SP().NumSet(uids)
	return enc.CRLF()
}

// readStoreModifiers reads STORE's optional modifier list, whose one
// modifier is UNCHANGEDSINCE (RFC 7162 §3.1.3). (Posthouse patch.)
func readStoreModifiers(dec *imapwire.Decoder, options *imap.StoreOptions) (bool, error) {
	n := 0
	return dec.List(func() error {
		if n++; n > maxFetchModifiers {
			return newClientBugError("Too many STORE modifiers")
		}
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		if !strings.EqualFold(name, "UNCHANGEDSINCE") {
			return newClientBugError("Unknown STORE modifier")
		}
		if !dec.ExpectSP() || !dec.ExpectModSeq(&options.UnchangedSince) {
			return dec.Err()
		}
		options.Conditional = true
		return nil
	})
}

// ModifiedError is the reply to a STORE (UNCHANGEDSINCE) that left the
// messages of set alone because they changed since: "OK [MODIFIED set]"
// (RFC 7162 §3.1.3). A session's Store returns it after writing the FETCH
// responses of the messages it did change. (Posthouse patch.)
func ModifiedError(set imap.NumSet) *imap.Error {
	return &imap.Error{
		Type: imap.StatusResponseTypeOK,
		Code: imap.ResponseCode("MODIFIED " + set.String()),
		Text: "Conditional STORE failed",
	}
}

// readSearchModSeq reads the MODSEQ search key after its name:
// [entry-name SP entry-type-req SP] mod-sequence-valzer (RFC 7162
// §3.1.5). Posthouse keeps one modseq per message, so the entry (a flag's
// metadata) only has to be well-formed. Two MODSEQ keys ANDed need the
// higher. (Posthouse patch.)
func readSearchModSeq(criteria *imap.SearchCriteria, dec *imapwire.Decoder) error {
	if !dec.ExpectSP() {
		return dec.Err()
	}
	var ms imap.SearchCriteriaModSeq
	if dec.Quoted(&ms.MetadataName) {
		var typ string
		if !dec.ExpectSP() || !dec.ExpectAtom(&typ) || !dec.ExpectSP() {
			return dec.Err()
		}
		ms.MetadataType = imap.SearchCriteriaMetadataType(strings.ToLower(typ))
		switch ms.MetadataType {
		case imap.SearchCriteriaMetadataAll, imap.SearchCriteriaMetadataPrivate, imap.SearchCriteriaMetadataShared:
		default:
			return newClientBugError("Unknown MODSEQ entry type")
		}
	}
	if !dec.ExpectModSeq(&ms.ModSeq) {
		return dec.Err()
	}
	if criteria.ModSeq == nil || ms.ModSeq > criteria.ModSeq.ModSeq {
		criteria.ModSeq = &ms
	}
	return nil
}

// searchHasModSeq reports whether criteria use MODSEQ at any depth.
func searchHasModSeq(criteria *imap.SearchCriteria) bool {
	if criteria.ModSeq != nil {
		return true
	}
	for i := range criteria.Not {
		if searchHasModSeq(&criteria.Not[i]) {
			return true
		}
	}
	for i := range criteria.Or {
		if searchHasModSeq(&criteria.Or[i][0]) || searchHasModSeq(&criteria.Or[i][1]) {
			return true
		}
	}
	return false
}

// SessionQResync is an IMAP session which supports QRESYNC (RFC 7162
// §3.2). (Posthouse patch.)
type SessionQResync interface {
	SessionCondStore

	// ResyncSelect runs after SELECT or EXAMINE (QRESYNC (…)) has
	// selected the mailbox and written its responses, before the tagged
	// OK. When options.UIDValidity is the mailbox's, it writes VANISHED
	// (EARLIER) for the known UIDs expunged since options.ModSeq
	// (FetchWriter.WriteVanished), then FETCH (UID FLAGS MODSEQ) for the
	// messages changed since; otherwise nothing (RFC 7162 §3.2.5.1). An
	// error fails the command and leaves no mailbox selected.
	ResyncSelect(w *FetchWriter, options *imap.SelectQResync) error
}

// readSelectParams reads SELECT and EXAMINE's parameter list: CONDSTORE
// (RFC 7162 §3.1.8) and QRESYNC (uidvalidity modseq [known-uids
// [(seq-match-data)]]) (§3.2.5). (Posthouse patch.)
func readSelectParams(dec *imapwire.Decoder, options *imap.SelectOptions) error {
	n := 0
	err := dec.ExpectList(func() error {
		if n++; n > maxFetchModifiers {
			return newClientBugError("Too many SELECT parameters")
		}
		var name string
		if !dec.ExpectAtom(&name) {
			return dec.Err()
		}
		switch strings.ToUpper(name) {
		case "CONDSTORE":
			options.CondStore = true
		case "QRESYNC":
			if !dec.ExpectSP() {
				return dec.Err()
			}
			q, err := readSelectQResync(dec)
			if err != nil {
				return err
			}
			options.QResync = q
		default:
			return newClientBugError("Unknown SELECT parameter")
		}
		return nil
	})
	if err == nil && n == 0 {
		return newClientBugError("Empty SELECT parameter list")
	}
	return err
}

func readSelectQResync(dec *imapwire.Decoder) (*imap.SelectQResync, error) {
	var q imap.SelectQResync
	if !dec.ExpectSpecial('(') || !dec.ExpectNumber(&q.UIDValidity) || !dec.ExpectSP() || !dec.ExpectModSeq(&q.ModSeq) {
		return nil, dec.Err()
	}
	if q.UIDValidity == 0 || q.ModSeq == 0 {
		return nil, newClientBugError("QRESYNC needs a UIDVALIDITY and a modseq above 0")
	}
	if dec.SP() {
		if dec.Special('(') {
			if err := readSeqMatch(dec, &q); err != nil {
				return nil, err
			}
		} else {
			if !dec.ExpectUIDSet(&q.KnownUIDs) {
				return nil, dec.Err()
			}
			if dec.SP() {
				if !dec.ExpectSpecial('(') {
					return nil, dec.Err()
				}
				if err := readSeqMatch(dec, &q); err != nil {
					return nil, err
				}
			}
		}
	}
	if !dec.ExpectSpecial(')') {
		return nil, dec.Err()
	}
	return &q, nil
}

// readSeqMatch reads seq-match-data after its "(".
func readSeqMatch(dec *imapwire.Decoder, q *imap.SelectQResync) error {
	var seqs imap.NumSet
	var uids imap.UIDSet
	if !dec.ExpectNumSet(imapwire.NumKindSeq, &seqs) || !dec.ExpectSP() || !dec.ExpectUIDSet(&uids) || !dec.ExpectSpecial(')') {
		return dec.Err()
	}
	q.SeqMatch = &imap.SelectSeqMatch{SeqNums: seqs.(imap.SeqSet), UIDs: uids}
	return nil
}

// checkSelectParams refuses SELECT parameters the client may not use
// (RFC 7162 §3.2.5: QRESYNC only after ENABLE QRESYNC). (Posthouse patch.)
func (c *Conn) checkSelectParams(options *imap.SelectOptions) error {
	if options.CondStore && !c.server.options.caps().Has(imap.CapCondStore) {
		return newClientBugError("CONDSTORE is not supported")
	}
	if options.QResync != nil && !c.EnabledCaps().Has(imap.CapQResync) {
		return newClientBugError("QRESYNC needs ENABLE QRESYNC")
	}
	return nil
}

// WriteMessageFlagsModSeq writes a FETCH response with FLAGS, and MODSEQ
// when modSeq is known and the client enabled CONDSTORE (RFC 7162
// §3.1.4.1: every unsolicited FETCH then carries it). (Posthouse patch.)
func (w *UpdateWriter) WriteMessageFlagsModSeq(seqNum uint32, uid imap.UID, flags []imap.Flag, modSeq uint64) error {
	fetchWriter := &FetchWriter{conn: w.conn}
	respWriter := fetchWriter.CreateMessage(seqNum)
	if uid != 0 {
		respWriter.WriteUID(uid)
	}
	respWriter.WriteFlags(flags)
	if modSeq != 0 && w.conn.EnabledCaps().Has(imap.CapCondStore) {
		respWriter.WriteModSeq(modSeq)
	}
	return respWriter.Close()
}

// WriteVanished writes "* VANISHED uids", which replaces EXPUNGE after
// ENABLE QRESYNC (RFC 7162 §3.2.10); it is allowed where EXPUNGE is.
// (Posthouse patch.)
func (w *UpdateWriter) WriteVanished(uids imap.UIDSet) error {
	if !w.allowExpunge {
		return fmt.Errorf("imapserver: VANISHED updates are not allowed in this context")
	}
	enc := newResponseEncoder(w.conn)
	defer enc.end()
	enc.Atom("*").SP().Atom("VANISHED").SP().NumSet(uids)
	return enc.CRLF()
}
