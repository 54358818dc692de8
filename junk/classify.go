package junk

import (
	"math"
	"slices"
)

// The classifier combines per-feature probabilities as Gary Robinson
// proposed for spam filtering ("A Statistical Approach to the Spam
// Problem", 2003): each feature's probability is smoothed towards 0.5 by
// how often it was seen, and the most telling ones are combined with
// Fisher's method into two chi-square tests, one for "spam-like" and one
// for "ham-like"; the score is their balance, so a message with strong
// evidence both ways scores near 0.5 (unsure) rather than at an extreme.
const (
	// priorStrength (Robinson's s) and priorProb (x): a feature seen n
	// times weighs n against s of the neutral prior.
	priorStrength = 0.45
	priorProb     = 0.5
	// minDeviation: features with |f-0.5| below it say nothing and are
	// left out.
	minDeviation = 0.1
	// maxDiscriminators: the most telling features combined.
	maxDiscriminators = 150
)

// Count is how many learned spam and ham messages had a feature.
type Count struct {
	Spam, Ham int64
}

// Score returns the probability that a message with features of these
// counts is spam, given nspam and nham learned messages, and how many
// features it used. With nothing learned or nothing telling, 0.5.
func Score(counts []Count, nspam, nham int64) (float64, int) {
	if nspam <= 0 || nham <= 0 {
		return 0.5, 0
	}
	probs := make([]float64, 0, len(counts))
	for _, c := range counts {
		if c.Spam+c.Ham == 0 {
			continue
		}
		sr := min(float64(c.Spam)/float64(nspam), 1)
		hr := min(float64(c.Ham)/float64(nham), 1)
		p := sr / (sr + hr)
		n := float64(c.Spam + c.Ham)
		f := (priorStrength*priorProb + n*p) / (priorStrength + n)
		if math.Abs(f-0.5) >= minDeviation {
			probs = append(probs, f)
		}
	}
	if len(probs) == 0 {
		return 0.5, 0
	}
	if len(probs) > maxDiscriminators {
		// The most extreme first.
		slices.SortFunc(probs, func(a, b float64) int {
			da, db := math.Abs(a-0.5), math.Abs(b-0.5)
			switch {
			case da > db:
				return -1
			case da < db:
				return 1
			}
			return 0
		})
		probs = probs[:maxDiscriminators]
	}
	var lnSpam, lnHam float64 // Σ ln(1-f), Σ ln f
	for _, f := range probs {
		lnSpam += math.Log(1 - f)
		lnHam += math.Log(f)
	}
	df := 2 * len(probs)
	s := 1 - chi2Q(-2*lnSpam, df) // near 1: the features are spam-like
	h := 1 - chi2Q(-2*lnHam, df)  // near 1: ham-like
	return (1 + s - h) / 2, len(probs)
}

// chi2Q is the probability that a chi-square variable with df (even)
// degrees of freedom exceeds x2: the series e^-m Σ m^i/i!, m = x2/2.
func chi2Q(x2 float64, df int) float64 {
	m := x2 / 2
	term := math.Exp(-m)
	sum := term
	for i := 1; i < df/2; i++ {
		term *= m / float64(i)
		sum += term
	}
	return min(sum, 1)
}
