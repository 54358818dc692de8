package imap

// SortKey is a SORT criterion's key (RFC 5256 §3, RFC 5957).
type SortKey string

// Sort keys (Posthouse patch: server side of SORT).
const (
	SortKeyArrival     SortKey = "ARRIVAL"
	SortKeyCc          SortKey = "CC"
	SortKeyDate        SortKey = "DATE"
	SortKeyFrom        SortKey = "FROM"
	SortKeySize        SortKey = "SIZE"
	SortKeySubject     SortKey = "SUBJECT"
	SortKeyTo          SortKey = "TO"
	SortKeyDisplayFrom SortKey = "DISPLAYFROM" // RFC 5957
	SortKeyDisplayTo   SortKey = "DISPLAYTO"   // RFC 5957
)

// SortCriterion is one SORT key, optionally preceded by REVERSE.
type SortCriterion struct {
	Key     SortKey
	Reverse bool
}

// SortOptions are the RETURN options of an extended SORT (RFC 5267 ESORT,
// RFC 9394 PARTIAL). Return is false for a plain SORT, answered with a SORT
// response.
type SortOptions struct {
	Return      bool
	ReturnMin   bool
	ReturnMax   bool
	ReturnAll   bool
	ReturnCount bool
	// ReturnPartial is the PARTIAL range, nil when not asked for.
	ReturnPartial *PartialRange
	// Posthouse patch: RFC 5267 §4 CONTEXT=SORT. ReturnUpdate asks the
	// server to keep the result up to date (SessionSortContext);
	// ReturnContext is a hint servers may ignore.
	ReturnUpdate  bool
	ReturnContext bool
}

// PartialRange is a RFC 9394 partial-range: 1-based positions in the
// result, First and Last both positive (from the start) or both negative
// (from the end), normalized so that |First| <= |Last|.
type PartialRange struct {
	First, Last int32
}
