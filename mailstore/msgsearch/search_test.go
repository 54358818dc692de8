package msgsearch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/indexrow"
)

type nopCloser struct{ *bytes.Reader }

// shared gives every goroutine of a search the same Opener.
func shared(o Opener) func() Opener { return func() Opener { return o } }

func (nopCloser) Close() error { return nil }

// fixture is three rows whose bodies the opener counts; row 1's message is
// gone.
func fixture() ([]Row, map[int]string) {
	day := func(y, m, d int) int64 {
		return indexrow.DateNum(time.Date(y, time.Month(m), d, 12, 0, 0, 0, time.UTC))
	}
	rows := []Row{
		{UID: 3, ModSeq: 10, Flags: 0, Size: 100, IDate: day(2026, 1, 10), EmailID: 7},
		{UID: 5, ModSeq: 20, Size: 2000, IDate: day(2026, 2, 10), Sent: day(2026, 2, 9), EmailID: 8},
		{UID: 9, ModSeq: 30, Keywords: "$Junk", Size: 300, IDate: day(2026, 3, 10), EmailID: 9},
	}
	bodies := map[int]string{
		0: "From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\r\nSubject: Quarterly report\r\n\r\nFigures inside.\r\n",
		2: "From: Ann <ann@example.net>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--b\r\nContent-Type: application/pdf\r\n\r\nsecretpdf\r\n--b--\r\n",
	}
	return rows, bodies
}

func run(t *testing.T, c *imap.SearchCriteria) ([]imap.UID, map[int]int) {
	t.Helper()
	rows, bodies := fixture()
	opened := map[int]int{}
	got, err := Run(context.Background(), rows, c, shared(func(i int) (io.ReadSeekCloser, error) {
		opened[i]++
		b, ok := bodies[i]
		if !ok {
			return nil, nil
		}
		return nopCloser{bytes.NewReader([]byte(b))}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return got, opened
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      imap.SearchCriteria
		want   []imap.UID
		opened int // messages read
	}{
		{name: "all", want: []imap.UID{3, 5, 9}},
		{name: "UID set with star", c: imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 4, Stop: 0}}}}, want: []imap.UID{5, 9}},
		{name: "keyword", c: imap.SearchCriteria{Flag: []imap.Flag{"$junk"}}, want: []imap.UID{9}},
		{name: "larger", c: imap.SearchCriteria{Larger: 200}, want: []imap.UID{5, 9}},
		{name: "since", c: imap.SearchCriteria{Since: time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)}, want: []imap.UID{5, 9}},
		{name: "sent before falls back to the internal date", c: imap.SearchCriteria{SentBefore: time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)}, want: []imap.UID{3, 5}},
		{name: "modseq", c: imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 20}}, want: []imap.UID{5, 9}},
		{name: "emailid", c: imap.SearchCriteria{EmailID: []string{"E8"}}, want: []imap.UID{5}},
		{name: "encoded-word in a header", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "jürgen"}}}, want: []imap.UID{3}, opened: 3},
		{name: "address", c: imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "ANN@example.net"}}}, want: []imap.UID{9}, opened: 3},
		{name: "decoded base64 body, not the attachment", c: imap.SearchCriteria{Body: []string{"HELLO"}}, want: []imap.UID{9}, opened: 3},
		{name: "attachment text is not searched", c: imap.SearchCriteria{Text: []string{"secretpdf"}}, want: nil, opened: 3},
		{name: "cheap criteria first: only the large one is read", c: imap.SearchCriteria{Larger: 1000, Text: []string{"x"}}, want: nil, opened: 1},
		{name: "not", c: imap.SearchCriteria{Not: []imap.SearchCriteria{{Text: []string{"report"}}}}, want: []imap.UID{5, 9}, opened: 3},
		{name: "or", c: imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Larger: 1000}, {Text: []string{"world"}}}}}, want: []imap.UID{5, 9}, opened: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, opened := run(t, &tc.c)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if len(opened) != tc.opened {
				t.Fatalf("read %d messages, want %d", len(opened), tc.opened)
			}
			for i, n := range opened {
				if n != 1 {
					t.Fatalf("message %d opened %d times", i, n)
				}
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	rows, _ := fixture()
	if _, err := Run(context.Background(), rows, &imap.SearchCriteria{Not: []imap.SearchCriteria{{SeqNum: []imap.SeqSet{imap.SeqSetNum(1)}}}}, shared(nil)); !errors.Is(err, ErrSeqNum) {
		t.Fatalf("sequence numbers: err = %v", err)
	}
	boom := errors.New("disk on fire")
	_, err := Run(context.Background(), rows, &imap.SearchCriteria{Body: []string{"x"}}, shared(func(int) (io.ReadSeekCloser, error) { return nil, boom }))
	if !errors.Is(err, boom) {
		t.Fatalf("open error: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, rows, nil, shared(nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

// FuzzLoad: any bytes as a message are searched without a panic, and what
// is found is found in text the message holds.
func FuzzLoad(f *testing.F) {
	_, bodies := fixture()
	for _, b := range bodies {
		f.Add([]byte(b), "report")
	}
	f.Add([]byte("no header at all"), "header")
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody"), "inner")
	f.Fuzz(func(t *testing.T, msg []byte, word string) {
		if len(msg) > 1<<16 {
			return
		}
		rows := []Row{{UID: 1}}
		opens := 0
		open := func(int) (io.ReadSeekCloser, error) {
			opens++
			return nopCloser{bytes.NewReader(msg)}, nil
		}
		c := &imap.SearchCriteria{Text: []string{word}, Body: []string{word}}
		got, err := Run(context.Background(), rows, c, shared(open))
		if opens > 1 {
			t.Fatalf("message read %d times", opens)
		}
		if err != nil {
			return // an unreadable message is an error, not a crash
		}
		if len(got) > 1 || (len(got) == 1 && got[0] != 1) {
			t.Fatalf("got %v from one row", got)
		}
		// The empty string is in every message that could be read.
		if got, err := Run(context.Background(), rows, &imap.SearchCriteria{Text: []string{""}}, shared(open)); err == nil && len(got) != 1 {
			t.Fatalf("TEXT \"\" found nothing in %q", msg)
		}
		// A word in plain ASCII in the Subject of a well-formed header is
		// always found.
		if w := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' {
				return r
			}
			return -1
		}, word); w != "" {
			plain := append([]byte("Subject: "+w+"\r\n\r\n"), msg...)
			open = func(int) (io.ReadSeekCloser, error) { return nopCloser{bytes.NewReader(plain)}, nil }
			if got, err := Run(context.Background(), rows, &imap.SearchCriteria{Text: []string{w}}, shared(open)); err != nil || len(got) != 1 {
				t.Fatalf("TEXT %q not found in %q: %v, %v", w, plain, got, err)
			}
		}
	})
}

// TestRunManyRows: with enough rows the search runs on several goroutines;
// the hits come back in row order, each message is read once, and an open
// error stops it.
func TestRunManyRows(t *testing.T) {
	const n = 1000
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{UID: imap.UID(2*i + 1)}
	}
	body := func(i int) string {
		if i%7 == 3 {
			return "Subject: hit\r\n\r\nthe Needle is here\r\n"
		}
		return "Subject: miss\r\n\r\nnothing\r\n"
	}
	var mu sync.Mutex
	opened := map[int]int{}
	open := func(i int) (io.ReadSeekCloser, error) {
		mu.Lock()
		opened[i]++
		mu.Unlock()
		return nopCloser{bytes.NewReader([]byte(body(i)))}, nil
	}
	got, err := Run(context.Background(), rows, &imap.SearchCriteria{Text: []string{"NEEDLE"}}, shared(open))
	if err != nil {
		t.Fatal(err)
	}
	var want []imap.UID
	for i := range rows {
		if i%7 == 3 {
			want = append(want, rows[i].UID)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d hits %v…, want %d", len(got), got[:min(5, len(got))], len(want))
	}
	if len(opened) != n {
		t.Fatalf("%d messages read, want %d", len(opened), n)
	}
	for i, k := range opened {
		if k != 1 {
			t.Fatalf("message %d read %d times", i, k)
		}
	}

	boom := errors.New("disk on fire")
	_, err = Run(context.Background(), rows, &imap.SearchCriteria{Body: []string{"x"}}, shared(func(i int) (io.ReadSeekCloser, error) {
		if i == 500 {
			return nil, boom
		}
		return nopCloser{bytes.NewReader([]byte(body(i)))}, nil
	}))
	if !errors.Is(err, boom) {
		t.Fatalf("open error in a worker: err = %v", err)
	}
}

// countingCloser reports its Close.
type countingCloser struct {
	*bytes.Reader
	close func()
}

func (c countingCloser) Close() error { c.close(); return nil }

// TestRunOneLargeMessageAtATime: the goroutines of one search read at most
// one message over largeText at a time, whatever the mix.
func TestRunOneLargeMessageAtATime(t *testing.T) {
	const n = 160
	big := []byte("Subject: big\r\n\r\n" + strings.Repeat("filler line of text\r\n", largeText/20+10))
	small := []byte("Subject: small\r\n\r\nneedle\r\n")
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{UID: imap.UID(i + 1), Size: int64(len(small))}
		if i%3 == 0 {
			rows[i].Size = int64(len(big))
		}
	}
	var mu sync.Mutex
	open, most := 0, 0
	opener := func(i int) (io.ReadSeekCloser, error) {
		body := small
		if rows[i].Size > largeText {
			body = big
			mu.Lock()
			open++
			most = max(most, open)
			mu.Unlock()
			return countingCloser{bytes.NewReader(body), func() { mu.Lock(); open--; mu.Unlock() }}, nil
		}
		return nopCloser{bytes.NewReader(body)}, nil
	}
	got, err := Run(context.Background(), rows, &imap.SearchCriteria{Body: []string{"needle"}}, shared(opener))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n-(n+2)/3 {
		t.Fatalf("%d hits, want %d", len(got), n-(n+2)/3)
	}
	if most != 1 {
		t.Fatalf("%d large messages read at once, want 1", most)
	}
}
