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

func TestSearch(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	ctx := context.Background()
	day := func(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC) }
	msgs := []struct {
		raw   string
		date  time.Time
		flags []imap.Flag
	}{
		{testMessage("apple pie", "the recipe"), day(2024, 1, 10), []imap.Flag{imap.FlagSeen}},                               // 1
		{testMessage("banana", strings.Repeat("long text ", 200)), day(2024, 2, 10), []imap.Flag{imap.FlagFlagged, "Work"}},  // 2
		{multipartMessage, day(2024, 3, 10), nil},                                                                            // 3
		{"Subject: no date\r\nX-Custom: Hello World\r\n\r\nplain Body\r\n", day(2024, 4, 10), []imap.Flag{imap.FlagDeleted}}, // 4
	}
	in := inboxID(t, acc)
	for _, m := range msgs {
		if _, err := acc.Append(ctx, "INBOX", strings.NewReader(m.raw), mailstore.AppendOptions{Flags: m.flags, InternalDate: m.date}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		c    imap.SearchCriteria
		want []imap.UID
	}{
		{name: "all", c: imap.SearchCriteria{}, want: []imap.UID{1, 2, 3, 4}},
		{name: "seen", c: imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}}, want: []imap.UID{1}},
		{name: "unseen", c: imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, want: []imap.UID{2, 3, 4}},
		{name: "keyword any case", c: imap.SearchCriteria{Flag: []imap.Flag{"work"}}, want: []imap.UID{2}},
		{name: "recent never", c: imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}}, want: nil},
		{name: "since", c: imap.SearchCriteria{Since: day(2024, 2, 10)}, want: []imap.UID{2, 3, 4}},
		{name: "before", c: imap.SearchCriteria{Before: day(2024, 2, 10)}, want: []imap.UID{1}},
		{name: "sent before uses Date header", c: imap.SearchCriteria{SentBefore: day(2010, 1, 1)}, want: []imap.UID{3}},
		{name: "sent since falls back to internal date", c: imap.SearchCriteria{SentSince: day(2024, 4, 1), SentBefore: day(2025, 1, 1)}, want: []imap.UID{4}},
		{name: "larger", c: imap.SearchCriteria{Larger: 500}, want: []imap.UID{2, 3}},
		{name: "smaller", c: imap.SearchCriteria{Smaller: 300}, want: []imap.UID{1, 4}},
		{name: "uid set", c: imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 0}}}}, want: []imap.UID{2, 3, 4}},
		{name: "uid star only", c: imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 0, Stop: 0}}}}, want: []imap.UID{4}},
		{name: "subject header", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "subject", Value: "PIE"}}}, want: []imap.UID{1}},
		{name: "decoded header", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "été"}}}, want: []imap.UID{3}},
		{name: "header exists", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X-Custom", Value: ""}}}, want: []imap.UID{4}},
		{name: "body decoded qp", c: imap.SearchCriteria{Body: []string{"café"}}, want: []imap.UID{3}},
		{name: "body not in header", c: imap.SearchCriteria{Body: []string{"banana"}}, want: nil},
		{name: "text header or body", c: imap.SearchCriteria{Text: []string{"banana"}}, want: []imap.UID{2}},
		{name: "text body", c: imap.SearchCriteria{Text: []string{"PLAIN body"}}, want: []imap.UID{4}},
		{name: "text in attached message", c: imap.SearchCriteria{Text: []string{"inner body"}}, want: []imap.UID{3}},
		{name: "not", c: imap.SearchCriteria{Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagDeleted}}}}, want: []imap.UID{1, 2, 3}},
		{name: "or", c: imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagSeen}}, {Body: []string{"needle"}}}}}, want: []imap.UID{1, 3}},
		{name: "and of two", c: imap.SearchCriteria{Since: day(2024, 2, 1), NotFlag: []imap.Flag{imap.FlagDeleted}, Text: []string{"report"}}, want: []imap.UID{3}},
		{name: "modseq", c: imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 1 << 40}}, want: nil},
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
	seq := imap.SearchCriteria{Not: []imap.SearchCriteria{{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}}}}
	if _, err := acc.Search(ctx, in, &seq); err == nil {
		t.Errorf("search with nested SeqNum accepted")
	}
}
