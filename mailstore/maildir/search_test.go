package maildir

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// TestSearchSentDateFallback covers the choice RFC 9051 §6.4.4 leaves
// open, which the conformance suite does not assert: a message without a
// usable Date header is searched by SENTBEFORE/SENTON/SENTSINCE on its
// internal date. (The rest of Search is covered by storetest.)
func TestSearchSentDateFallback(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	day := func(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC) }
	for _, m := range []struct {
		raw  string
		date time.Time
	}{
		{testMessage("dated", "x"), day(2024, 1, 10)},                                  // 1: Date header 2026-11-21
		{"Subject: no date\r\n\r\nbody\r\n", day(2024, 4, 10)},                         // 2
		{"Subject: bad date\r\nDate: yesterday-ish\r\n\r\nbody\r\n", day(2024, 5, 10)}, // 3
	} {
		if _, err := acc.Append(ctx, "INBOX", strings.NewReader(m.raw), mailstore.AppendOptions{InternalDate: m.date}); err != nil {
			t.Fatal(err)
		}
	}
	in := inboxID(t, acc)
	tests := []struct {
		name string
		c    imap.SearchCriteria
		want []imap.UID
	}{
		{name: "since falls back", c: imap.SearchCriteria{SentSince: day(2024, 4, 1), SentBefore: day(2025, 1, 1)}, want: []imap.UID{2, 3}},
		{name: "before falls back", c: imap.SearchCriteria{SentBefore: day(2024, 5, 1)}, want: []imap.UID{2}},
		{name: "header date wins", c: imap.SearchCriteria{SentSince: day(2026, 11, 21)}, want: []imap.UID{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := acc.Search(ctx, in, &tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
