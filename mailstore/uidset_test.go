package mailstore

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestUIDSetOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		uids []imap.UID
		want string
	}{
		{name: "empty", uids: nil, want: ""},
		{name: "one", uids: []imap.UID{7}, want: "7"},
		{name: "runs", uids: []imap.UID{1, 2, 3, 5, 7, 8}, want: "1:3,5,7:8"},
		{name: "largest UID", uids: []imap.UID{4294967294, 4294967295}, want: "4294967294:4294967295"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UIDSetOf(tc.uids).String(); got != tc.want {
				t.Fatalf("UIDSetOf(%v) = %q, want %q", tc.uids, got, tc.want)
			}
		})
	}
	type item struct{ uid imap.UID }
	if got := UIDSetBy([]item{{2}, {3}, {9}}, func(i item) imap.UID { return i.uid }).String(); got != "2:3,9" {
		t.Fatalf("UIDSetBy = %q", got)
	}
}

func TestRangeBounds(t *testing.T) {
	for _, tc := range []struct {
		name              string
		start, stop, last uint32
		wantLo, wantHi    uint32
	}{
		{name: "plain", start: 2, stop: 4, last: 9, wantLo: 2, wantHi: 4},
		{name: "reversed", start: 4, stop: 2, last: 9, wantLo: 2, wantHi: 4},
		{name: "n:*", start: 3, stop: 0, last: 9, wantLo: 3, wantHi: 9},
		{name: "n:* above last", start: 12, stop: 0, last: 9, wantLo: 9, wantHi: 12},
		{name: "*", start: 0, stop: 0, last: 9, wantLo: 9, wantHi: 9},
		{name: "* when empty", start: 0, stop: 0, last: 0, wantLo: 0, wantHi: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := RangeBounds(tc.start, tc.stop, tc.last)
			if lo != tc.wantLo || hi != tc.wantHi {
				t.Fatalf("RangeBounds(%d, %d, %d) = %d, %d; want %d, %d", tc.start, tc.stop, tc.last, lo, hi, tc.wantLo, tc.wantHi)
			}
		})
	}
}

func TestUIDIntervals(t *testing.T) {
	tests := []struct {
		name string
		set  imap.UIDSet
		last imap.UID
		want []UIDInterval
	}{
		{name: "single", set: imap.UIDSetNum(5), last: 9, want: []UIDInterval{{5, 5}}},
		{name: "merge adjacent and overlapping", set: imap.UIDSet{{Start: 1, Stop: 3}, {Start: 4, Stop: 4}, {Start: 2, Stop: 6}, {Start: 9, Stop: 10}}, last: 20, want: []UIDInterval{{1, 6}, {9, 10}}},
		{name: "star", set: imap.UIDSet{{Start: 0, Stop: 0}}, last: 7, want: []UIDInterval{{7, 7}}},
		{name: "n:star", set: imap.UIDSet{{Start: 3, Stop: 0}}, last: 7, want: []UIDInterval{{3, 7}}},
		{name: "n:star above last includes last", set: imap.UIDSet{{Start: 12, Stop: 0}}, last: 7, want: []UIDInterval{{7, 12}}},
		{name: "reversed", set: imap.UIDSet{{Start: 9, Stop: 4}}, last: 20, want: []UIDInterval{{4, 9}}},
		{name: "star on empty mailbox", set: imap.UIDSet{{Start: 0, Stop: 0}}, last: 0, want: nil},
		{name: "largest UID, no overflow", set: imap.UIDSet{{Start: 1, Stop: ^imap.UID(0)}, {Start: 5, Stop: 6}}, last: 3, want: []UIDInterval{{1, ^imap.UID(0)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := UIDIntervals(tc.set, tc.last)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			// InIntervals agrees with a walk of the set for UIDs around
			// each interval's ends.
			for _, r := range got {
				for _, u := range []imap.UID{r.Lo - 1, r.Lo, r.Hi, r.Hi + 1} {
					if u == 0 {
						continue
					}
					in := false
					for _, x := range got {
						in = in || (x.Lo <= u && u <= x.Hi)
					}
					if InIntervals(got, u) != in {
						t.Fatalf("InIntervals(%v, %d) = %v", got, u, !in)
					}
				}
			}
		})
	}
}
