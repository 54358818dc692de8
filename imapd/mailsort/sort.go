package mailsort

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/emersion/go-imap/v2"
)

// Key holds one message's sort keys, each already in comparison form.
// Only the fields the criteria use need be filled.
type Key struct {
	Num     uint32 // what the response names: sequence number or UID
	Seq     uint32 // sequence number or UID (same order), the final tie-breaker (RFC 5256 §3)
	Arrival int64  // internal date, Unix seconds
	Date    int64  // sent date (SentDate), Unix seconds
	Size    int64
	// Subject is BaseSubject's result; the address keys are AddrKey's
	// and DisplayKey's results for the first address of each field.
	Subject, From, To, Cc, DisplayFrom, DisplayTo string
}

// Compare orders a and b by criteria, each REVERSE inverting its own key,
// then by sequence number (ascending whatever the criteria: RFC 5256
// leaves ties to the server, and sequence order is what other servers
// give).
func Compare(a, b *Key, criteria []imap.SortCriterion) int {
	for _, c := range criteria {
		var r int
		switch c.Key {
		case imap.SortKeyArrival:
			r = cmp.Compare(a.Arrival, b.Arrival)
		case imap.SortKeyDate:
			r = cmp.Compare(a.Date, b.Date)
		case imap.SortKeySize:
			r = cmp.Compare(a.Size, b.Size)
		case imap.SortKeySubject:
			r = cmp.Compare(a.Subject, b.Subject)
		case imap.SortKeyFrom:
			r = cmp.Compare(a.From, b.From)
		case imap.SortKeyTo:
			r = cmp.Compare(a.To, b.To)
		case imap.SortKeyCc:
			r = cmp.Compare(a.Cc, b.Cc)
		case imap.SortKeyDisplayFrom:
			r = cmp.Compare(a.DisplayFrom, b.DisplayFrom)
		case imap.SortKeyDisplayTo:
			r = cmp.Compare(a.DisplayTo, b.DisplayTo)
		}
		if c.Reverse {
			r = -r
		}
		if r != 0 {
			return r
		}
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// Sort orders keys by criteria and returns their Nums in that order.
func Sort(keys []Key, criteria []imap.SortCriterion) []uint32 {
	slices.SortFunc(keys, func(a, b Key) int { return Compare(&a, &b, criteria) })
	nums := make([]uint32, len(keys))
	for i := range keys {
		nums[i] = keys[i].Num
	}
	return nums
}

// Encode returns k in a form whose byte order is Compare's under the same
// criteria: strings.Compare(Encode(a, c), Encode(b, c)) == Compare(a, b, c).
// It holds only the keys the criteria use, then Seq (4 bytes, big-endian:
// the last four bytes of every encoding). A live SORT result keeps one
// such string per message: compact, and ordered without the criteria.
func Encode(k *Key, criteria []imap.SortCriterion) string {
	b := make([]byte, 0, 32)
	for _, c := range criteria {
		start := len(b)
		switch c.Key {
		case imap.SortKeyArrival:
			b = appendInt(b, k.Arrival)
		case imap.SortKeyDate:
			b = appendInt(b, k.Date)
		case imap.SortKeySize:
			b = appendInt(b, k.Size)
		case imap.SortKeySubject:
			b = appendString(b, k.Subject)
		case imap.SortKeyFrom:
			b = appendString(b, k.From)
		case imap.SortKeyTo:
			b = appendString(b, k.To)
		case imap.SortKeyCc:
			b = appendString(b, k.Cc)
		case imap.SortKeyDisplayFrom:
			b = appendString(b, k.DisplayFrom)
		case imap.SortKeyDisplayTo:
			b = appendString(b, k.DisplayTo)
		}
		if c.Reverse {
			// Each field's encoding is prefix-free (fixed length, or
			// terminated), so inverting its bytes inverts its order and
			// decides the comparison within the field.
			for i := start; i < len(b); i++ {
				b[i] = ^b[i]
			}
		}
	}
	return string(binary.BigEndian.AppendUint32(b, k.Seq))
}

// EncodedSeq is the Seq an Encode result ends with.
func EncodedSeq(enc string) uint32 {
	if len(enc) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32([]byte(enc[len(enc)-4:]))
}

// appendInt appends v so that signed order is byte order.
func appendInt(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
}

// appendString appends s terminated by 00 01, each NUL in it escaped as
// 00 FF: byte order is string order, and no encoding is a prefix of
// another.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		b = append(b, s[i])
		if s[i] == 0 {
			b = append(b, 0xFF)
		}
	}
	return append(b, 0, 1)
}

// Needs reports which cached parts the criteria read: the envelope (any
// address, subject or date key).
func NeedsEnvelope(criteria []imap.SortCriterion) bool {
	for _, c := range criteria {
		switch c.Key {
		case imap.SortKeyArrival, imap.SortKeySize:
		default:
			return true
		}
	}
	return false
}

// AddrKey is the FROM, TO and CC key of an address list (RFC 5256 §3):
// the first address's mailbox (local part), casemapped; "" when there is
// none.
func AddrKey(addrs []imap.Address) string {
	if len(addrs) == 0 {
		return ""
	}
	return Casemap(DecodeHeader(addrs[0].Mailbox))
}

// DisplayKey is the DISPLAYFROM and DISPLAYTO key (RFC 5957 §2): the first
// address's display name, decoded, or when it has none its addr-spec
// (mailbox@host), casemapped.
func DisplayKey(addrs []imap.Address) string {
	if len(addrs) == 0 {
		return ""
	}
	a := addrs[0]
	if name := DecodeHeader(a.Name); name != "" {
		return Casemap(name)
	}
	if a.Host == "" {
		return Casemap(a.Mailbox)
	}
	return Casemap(a.Mailbox + "@" + a.Host)
}
