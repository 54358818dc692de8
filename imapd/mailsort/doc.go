// Package mailsort holds the pure algorithms behind IMAP SORT and THREAD
// (RFC 5256, RFC 5957): base subject extraction (§2.1), the comparison
// form of strings (i;unicode-casemap), sort keys and their order, Message-ID
// list parsing, and the REFERENCES and ORDEREDSUBJECT threading
// algorithms (§3). It knows no store or session: imapd gathers one Message
// or Key per message and calls it.
//
// Every input is a header value already bounded by the store's header
// limit; the parsers are linear in their input and fuzzed (FuzzBaseSubject,
// FuzzMsgIDs, FuzzThread).
package mailsort
