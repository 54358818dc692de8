package mailsort

import (
	"cmp"
	"slices"

	"github.com/emersion/go-imap/v2"
)

// Key holds one message's sort keys, each already in comparison form.
// Only the fields the criteria use need be filled.
type Key struct {
	Num     uint32 // what the response names: sequence number or UID
	Seq     uint32 // sequence number, the final tie-breaker (RFC 5256 §3)
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
