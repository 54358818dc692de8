package junk

import (
	"fmt"
	"strconv"
	"strings"
)

// HeaderName is the field the filter prepends to every copy it classifies.
// Its value starts with the verdict, then "; key=value" pairs:
//
//	X-Posthouse-Junk: yes; score=0.973; threshold=0.900
//	X-Posthouse-Junk: no; score=0.120; threshold=0.900
//	X-Posthouse-Junk: no; score=0.973; threshold=0.900; sender=trusted
//	X-Posthouse-Junk: untrained; spam=3; ham=12
//
// score is the classifier's probability that the message is junk, in
// [0, 1] with three decimals; threshold is the configured cut-off; "yes"
// means the copy was filed into Junk with the $Junk keyword. "untrained"
// means the account has learned too little to judge (the counts say how
// many messages of each kind it has learned). A trusted sender (someone
// the user wrote to) is never filed as junk; the score is still given.
//
// The field is prepended, so the topmost one is ours: a message may bring
// its own, forged, further down. Readers (Sieve's spamtest) take the first.
const HeaderName = "X-Posthouse-Junk"

// Verdict words in the header.
const (
	VerdictYes       = "yes"
	VerdictNo        = "no"
	VerdictUntrained = "untrained"
)

// Result is the classification of one message for one account.
type Result struct {
	Verdict   string  // VerdictYes, VerdictNo or VerdictUntrained
	Score     float64 // in [0, 1]; 0.5 with VerdictUntrained
	Threshold float64
	Trusted   bool // the sender is a correspondent of the account
	// Spam and Ham are the messages the account has learned.
	Spam, Ham int64
}

// Junk reports whether the copy is filed into Junk.
func (r Result) Junk() bool { return r.Verdict == VerdictYes }

// Header renders the field's value.
func (r Result) Header() string {
	if r.Verdict == VerdictUntrained {
		return fmt.Sprintf("%s; spam=%d; ham=%d", VerdictUntrained, r.Spam, r.Ham)
	}
	s := fmt.Sprintf("%s; score=%.3f; threshold=%.3f", r.Verdict, r.Score, r.Threshold)
	if r.Trusted {
		s += "; sender=trusted"
	}
	return s
}

// ParseHeader reads a field value written by Result.Header. ok is false
// for a value that is not one.
func ParseHeader(v string) (r Result, ok bool) {
	parts := strings.Split(v, ";")
	r.Verdict = strings.ToLower(strings.TrimSpace(parts[0]))
	switch r.Verdict {
	case VerdictYes, VerdictNo:
	case VerdictUntrained:
		r.Score = 0.5
	default:
		return Result{}, false
	}
	seenScore := false
	for _, p := range parts[1:] {
		k, val, found := strings.Cut(strings.TrimSpace(p), "=")
		if !found {
			return Result{}, false
		}
		var err error
		switch strings.ToLower(k) {
		case "score":
			r.Score, err = strconv.ParseFloat(val, 64)
			if err != nil || r.Score < 0 || r.Score > 1 {
				return Result{}, false
			}
			seenScore = true
		case "threshold":
			r.Threshold, err = strconv.ParseFloat(val, 64)
		case "sender":
			r.Trusted = val == "trusted"
		case "spam":
			r.Spam, err = strconv.ParseInt(val, 10, 64)
		case "ham":
			r.Ham, err = strconv.ParseInt(val, 10, 64)
		}
		if err != nil {
			return Result{}, false
		}
	}
	if r.Verdict != VerdictUntrained && !seenScore {
		return Result{}, false
	}
	return r, true
}
