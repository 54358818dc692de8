//go:build cgo

package sqlitedb

import "testing"

// TestQPSG: connections run with the query planner stability guarantee, so
// a statement bound again (INBOX's mailbox 1, a new LIMIT) is not prepared
// again each time (without it: 20 times in 20 runs).
func TestQPSG(t *testing.T) {
	if !qpsgOn {
		t.Fatal("sqlite3_auto_extension refused the QPSG hook")
	}
	if n := reprepares(); n != 0 {
		t.Fatalf("statement prepared again %d times in 20 runs", n)
	}
}
