package storetest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// testSearch covers Search over flags, dates, sizes, UIDs, modseqs,
// headers and text, with NOT and OR (RFC 9051 §6.4.4, RFC 7162 §3.1.5).
func testSearch(t *testing.T, b Backend) {
	_, acc := newAccount(t, b)
	day := func(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC) }
	msgs := []struct {
		raw   string
		date  time.Time
		flags []imap.Flag
	}{
		{message("apple pie", "the recipe"), day(2024, 1, 10), []imap.Flag{imap.FlagSeen}},                                   // 1
		{message("banana", strings.Repeat("long text ", 200)), day(2024, 2, 10), []imap.Flag{imap.FlagFlagged, "Work"}},      // 2
		{multipartMessage, day(2024, 3, 10), nil},                                                                            // 3
		{"Subject: no date\r\nX-Custom: Hello World\r\n\r\nplain Body\r\n", day(2024, 4, 10), []imap.Flag{imap.FlagDeleted}}, // 4
	}
	in := mailbox(t, acc, mailstore.Inbox)
	for _, m := range msgs {
		appendMsg(t, acc, mailstore.Inbox, m.raw, mailstore.AppendOptions{Flags: m.flags, InternalDate: m.date})
	}
	later := storeFlags(t, acc, in.ID, imap.UIDSetNum(2), mailstore.FlagsAdd, "Later").Updated[0].ModSeq
	tests := []struct {
		name string
		c    imap.SearchCriteria
		want []imap.UID
	}{
		{name: "all", c: imap.SearchCriteria{}, want: []imap.UID{1, 2, 3, 4}},
		{name: "seen", c: imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, want: []imap.UID{1}},
		{name: "unseen", c: imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, want: []imap.UID{2, 3, 4}},
		{name: "two flags", c: imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged, "Later"}}, want: []imap.UID{2}},
		{name: "keyword in another case", c: imap.SearchCriteria{Flag: []imap.Flag{"work"}}, want: []imap.UID{2}},
		{name: "recent never", c: imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}}, want: nil},
		{name: "since", c: imap.SearchCriteria{Since: day(2024, 2, 10)}, want: []imap.UID{2, 3, 4}},
		{name: "before", c: imap.SearchCriteria{Before: day(2024, 2, 10)}, want: []imap.UID{1}},
		{name: "sent before uses the Date header", c: imap.SearchCriteria{SentBefore: day(2010, 1, 1)}, want: []imap.UID{3}},
		{name: "sent since", c: imap.SearchCriteria{SentSince: day(2026, 11, 21)}, want: []imap.UID{1, 2}},
		{name: "larger", c: imap.SearchCriteria{Larger: 500}, want: []imap.UID{2, 3}},
		{name: "smaller", c: imap.SearchCriteria{Smaller: 300}, want: []imap.UID{1, 4}},
		{name: "uid set", c: imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 0}}}}, want: []imap.UID{2, 3, 4}},
		{name: "uid star", c: imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 0, Stop: 0}}}}, want: []imap.UID{4}},
		{name: "two uid sets", c: imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(1, 2, 3), imap.UIDSetNum(3, 4)}}, want: []imap.UID{3}},
		{name: "modseq", c: imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: later}}, want: []imap.UID{2}},
		{name: "modseq above all", c: imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: later + 1000}}, want: nil},
		{name: "subject header", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "subject", Value: "PIE"}}}, want: []imap.UID{1}},
		{name: "decoded header", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "été"}}}, want: []imap.UID{3}},
		{name: "header exists", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Custom", Value: ""}}}, want: []imap.UID{4}},
		{name: "body decoded", c: imap.SearchCriteria{Body: []string{"café"}}, want: []imap.UID{3}},
		{name: "body not in the header", c: imap.SearchCriteria{Body: []string{"banana"}}, want: nil},
		{name: "text in the header", c: imap.SearchCriteria{Text: []string{"banana"}}, want: []imap.UID{2}},
		{name: "text in the body", c: imap.SearchCriteria{Text: []string{"PLAIN body"}}, want: []imap.UID{4}},
		{name: "text in an attached message", c: imap.SearchCriteria{Text: []string{"inner body"}}, want: []imap.UID{3}},
		{name: "not", c: imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagDeleted}}}}, want: []imap.UID{1, 2, 3}},
		{name: "or", c: imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagSeen}}, {Body: []string{"needle"}}}}}, want: []imap.UID{1, 3}},
		{name: "and", c: imap.SearchCriteria{Since: day(2024, 2, 1), NotFlag: []imap.Flag{imap.FlagDeleted}, Text: []string{"report"}}, want: []imap.UID{3}},
		{name: "not of or", c: imap.SearchCriteria{Not: []imap.SearchCriteria{{Or: [][2]imap.SearchCriteria{{{Larger: 500}, {Flag: []imap.Flag{imap.FlagSeen}}}}}}}, want: []imap.UID{4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := acc.Search(t.Context(), in.ID, &tc.c)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 && len(tc.want) == 0 {
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("nil criteria", func(t *testing.T) {
		got, err := acc.Search(t.Context(), in.ID, nil)
		if err != nil || !slices.Equal(got, []imap.UID{1, 2, 3, 4}) {
			t.Errorf("Search(nil) = %v, %v; want every message", got, err)
		}
	})
	t.Run("sequence numbers refused", func(t *testing.T) {
		for _, c := range []imap.SearchCriteria{
			{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}},
			{Not: []imap.SearchCriteria{{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}}}},
			{Or: [][2]imap.SearchCriteria{{{}, {SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}}}}},
		} {
			if got, err := acc.Search(t.Context(), in.ID, &c); err == nil {
				t.Errorf("Search with sequence numbers %+v = %v, want an error", c, got)
			}
		}
	})
	t.Run("expunged", func(t *testing.T) {
		expunge(t, acc, in.ID, nil)
		got, err := acc.Search(t.Context(), in.ID, &imap.SearchCriteria{Text: []string{"plain"}})
		if err != nil || len(got) != 0 {
			t.Errorf("search finds an expunged message: %v, %v", got, err)
		}
	})
}
