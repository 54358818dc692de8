package imapserver

import (
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

func (c *Conn) handleCapability(dec *imapwire.Decoder) error {
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("CAPABILITY")
	for _, c := range c.availableCaps() {
		enc.SP().Atom(string(c))
	}
	return enc.CRLF()
}

// availableCaps returns the capabilities supported by the server.
//
// They depend on the connection state.
//
// Some extensions (e.g. SASL-IR, ENABLE) don't require backend support and
// thus are always enabled.
func (c *Conn) availableCaps() []imap.Cap {
	available := c.server.options.caps()

	var caps []imap.Cap
	addAvailableCaps(&caps, available, []imap.Cap{
		imap.CapIMAP4rev2,
		imap.CapIMAP4rev1,
	})
	if len(caps) == 0 {
		panic("imapserver: must support at least IMAP4rev1 or IMAP4rev2")
	}

	if available.Has(imap.CapIMAP4rev1) {
		caps = append(caps, []imap.Cap{
			imap.CapSASLIR,
			imap.CapLiteralMinus,
		}...)
	}
	// Posthouse patch: ID (RFC 2971) works in every state.
	addAvailableCaps(&caps, available, []imap.Cap{imap.CapID})
	if c.canStartTLS() {
		caps = append(caps, imap.CapStartTLS)
	}
	if c.canAuth() {
		mechs := []string{"PLAIN"}
		if authSess, ok := c.session.(SessionSASL); ok {
			mechs = authSess.AuthenticateMechanisms()
		}
		for _, mech := range mechs {
			caps = append(caps, imap.Cap("AUTH="+mech))
		}
	} else if c.state == imap.ConnStateNotAuthenticated {
		caps = append(caps, imap.CapLoginDisabled)
	}
	if c.state == imap.ConnStateAuthenticated || c.state == imap.ConnStateSelected {
		if available.Has(imap.CapIMAP4rev1) {
			// IMAP4rev1-specific capabilities that don't require backend
			// support and are not applicable to IMAP4rev2
			caps = append(caps, []imap.Cap{
				imap.CapUnselect,
				imap.CapEnable,
				imap.CapIdle,
				imap.CapUTF8Accept,
			}...)

			// IMAP4rev1-specific capabilities which require backend support
			// and are not applicable to IMAP4rev2
			addAvailableCaps(&caps, available, []imap.Cap{
				imap.CapNamespace,
				imap.CapUIDPlus,
				imap.CapESearch,
				imap.CapSearchRes,
				imap.CapListExtended,
				imap.CapListStatus,
				imap.CapMove,
				imap.CapStatusSize,
				imap.CapBinary,
				imap.CapChildren,
			})
		}

		// Capabilities which require backend support and apply to both
		// IMAP4rev1 and IMAP4rev2
		addAvailableCaps(&caps, available, []imap.Cap{
			imap.CapSpecialUse,
			imap.CapCreateSpecialUse,
			imap.CapLiteralPlus,
			imap.CapUnauthenticate,
			imap.CapContextSearch,              // Posthouse patch
			imap.CapPartial,                    // Posthouse patch
			imap.CapCondStore, imap.CapQResync, // Posthouse patch: RFC 7162
			imap.CapSort, imap.CapSortDisplay, imap.CapESort, "CONTEXT=SORT", // Posthouse patch
			"THREAD=" + imap.Cap(imap.ThreadReferences), "THREAD=" + imap.Cap(imap.ThreadOrderedSubject), // Posthouse patch
			imap.CapMultiAppend, // Posthouse patch
			imap.CapCatenate,    // Posthouse patch
		})

		if appendLimitSession, ok := c.session.(SessionAppendLimit); ok {
			limit := appendLimitSession.AppendLimit()
			caps = append(caps, imap.Cap(fmt.Sprintf("APPENDLIMIT=%d", limit)))
		} else {
			addAvailableCaps(&caps, available, []imap.Cap{imap.CapAppendLimit})
		}

		// Posthouse patch: capabilities this package does not know are
		// the session's own (QUOTA, OBJECTID, …), listed after login.
		var extra []imap.Cap
		for cp := range available {
			if !slices.Contains(caps, cp) && !libraryCaps[cp] {
				extra = append(extra, cp)
			}
		}
		slices.Sort(extra)
		caps = append(caps, extra...)
	}
	return caps
}

// libraryCaps are the capabilities availableCaps decides on itself
// (Posthouse patch).
var libraryCaps = map[imap.Cap]bool{
	imap.CapIMAP4rev1: true, imap.CapIMAP4rev2: true, imap.CapSASLIR: true,
	imap.CapLiteralMinus: true, imap.CapStartTLS: true, imap.CapLoginDisabled: true,
	imap.CapUnselect: true, imap.CapEnable: true, imap.CapIdle: true,
	imap.CapUTF8Accept: true, imap.CapAppendLimit: true,
}

func addAvailableCaps(caps *[]imap.Cap, available imap.CapSet, l []imap.Cap) {
	for _, c := range l {
		if available.Has(c) {
			*caps = append(*caps, c)
		}
	}
}
