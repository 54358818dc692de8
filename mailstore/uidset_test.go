package mailstore

import (
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
