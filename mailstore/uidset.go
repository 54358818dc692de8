package mailstore

import (
	"cmp"
	"slices"

	"github.com/emersion/go-imap/v2"
)

// UIDSetOf packs UIDs, given in ascending order, into ranges of consecutive
// UIDs: 1 2 3 5 7 8 is 1:3,5,7:8. Protocols hand the store such compact
// sets, and a backend resolves a range with one query.
func UIDSetOf(uids []imap.UID) imap.UIDSet {
	return UIDSetBy(uids, func(u imap.UID) imap.UID { return u })
}

// UIDSetBy is UIDSetOf for items that carry a UID, in ascending UID order.
func UIDSetBy[T any](items []T, uid func(T) imap.UID) imap.UIDSet {
	var set imap.UIDSet
	for i := 0; i < len(items); {
		j := i
		for j+1 < len(items) && uid(items[j+1]) == uid(items[j])+1 {
			j++
		}
		set = append(set, imap.UIDRange{Start: uid(items[i]), Stop: uid(items[j])})
		i = j + 1
	}
	return set
}

// RangeBounds returns the ends of one range of a sequence or UID set in
// ascending order, with "*" (0) standing for last, the largest number in use
// (RFC 9051 §9 seq-range: "2:4" and "4:2" are the same range). With last 0
// (an empty mailbox), "*" gives 0, which names no message.
func RangeBounds[T ~uint32](start, stop, last T) (lo, hi T) {
	if start == 0 {
		start = last
	}
	if stop == 0 {
		stop = last
	}
	return min(start, stop), max(start, stop)
}

// UIDInterval is a closed interval of UIDs.
type UIDInterval struct{ Lo, Hi imap.UID }

// UIDIntervals turns a UID set into sorted, merged closed intervals. '*'
// (0) stands for last, the largest UID in use (RFC 9051 §9 seq-number);
// n:* with n above last is last:n, which includes last.
func UIDIntervals(set imap.UIDSet, last imap.UID) []UIDInterval {
	var out []UIDInterval
	for _, r := range set {
		lo, hi := RangeBounds(r.Start, r.Stop, last)
		if hi == 0 {
			continue
		}
		out = append(out, UIDInterval{max(lo, 1), hi})
	}
	slices.SortFunc(out, func(a, b UIDInterval) int { return cmp.Compare(a.Lo, b.Lo) })
	merged := out[:0]
	for _, r := range out {
		if n := len(merged); n > 0 && (r.Lo <= merged[n-1].Hi || r.Lo-1 == merged[n-1].Hi) {
			merged[n-1].Hi = max(merged[n-1].Hi, r.Hi)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// InIntervals reports whether uid is in intervals, as UIDIntervals returns
// them.
func InIntervals(intervals []UIDInterval, uid imap.UID) bool {
	i, _ := slices.BinarySearchFunc(intervals, uid, func(r UIDInterval, u imap.UID) int {
		if r.Hi < u {
			return -1
		}
		return 1
	})
	return i < len(intervals) && intervals[i].Lo <= uid
}
