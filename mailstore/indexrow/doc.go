// Package indexrow is the encoding of a message's index row that the
// mailstore backends share, so that a row means the same in each and mail
// moves between them unchanged: the system flags as bits with keywords
// beside them (parsing, applying a STORE, listing), and the cached
// envelope and body structure as compact JSON.
package indexrow
