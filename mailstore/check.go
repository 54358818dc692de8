package mailstore

import "context"

// Checker is implemented by a Store that can verify one account's storage
// against its index and repair it (posthouse admin check). It works beside
// a running server on the same storage.
type Checker interface {
	// CheckAccount verifies the account; with repair it also fixes what
	// it found and verifies again. An account without storage gets
	// ErrNoSuchAccount.
	CheckAccount(ctx context.Context, name string, repair bool) (CheckReport, error)
}

// CheckReport is what CheckAccount found and did.
type CheckReport struct {
	Account   string
	Mailboxes int
	Messages  int
	// Problems found, one sentence each; empty when all is well.
	Problems []string
	// Repaired says what a repair did; Remaining what it could not fix
	// (the problems found by the check after it).
	Repaired  []string
	Remaining []string
}
