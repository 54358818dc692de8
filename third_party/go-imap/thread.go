package imap

// ThreadAlgorithm is a threading algorithm.
type ThreadAlgorithm string

const (
	ThreadOrderedSubject ThreadAlgorithm = "ORDEREDSUBJECT"
	ThreadReferences     ThreadAlgorithm = "REFERENCES"
)

// ThreadData is one thread of a THREAD response (RFC 5256 §4): a chain of
// messages, each the parent of the next, then the last one's children as
// sub-threads. A thread whose root is a dummy (a missing parent) has an
// empty Chain (Posthouse patch).
type ThreadData struct {
	Chain      []uint32
	SubThreads []ThreadData
}
