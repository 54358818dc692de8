package mailsort

import (
	"bufio"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

func FuzzBaseSubject(f *testing.F) {
	f.Add("Re: [list] Fwd: hello (fwd)")
	f.Add("[fwd: =?UTF-8?B?UmU6IGjDqWxsbw==?=]")
	f.Fuzz(func(t *testing.T, s string) {
		base, _ := BaseSubject(s)
		if !utf8.ValidString(base) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		if again, _ := BaseSubject(base); again != base && !strings.Contains(s, "=?") {
			// A base subject has nothing left to strip, unless decoding
			// produced new encoded-word text.
			t.Fatalf("BaseSubject not idempotent: %q -> %q -> %q", s, base, again)
		}
	})
}

func FuzzMsgIDs(f *testing.F) {
	f.Add("<a@b> (c) <d@e>")
	f.Add("<<x@y>")
	f.Fuzz(func(t *testing.T, s string) {
		ids := MsgIDs(s)
		if len(ids) > maxMsgIDs {
			t.Fatalf("%d IDs", len(ids))
		}
		for _, id := range ids {
			if !validMsgID(id) || !strings.Contains(s, "<"+id+">") {
				t.Fatalf("bad ID %q from %q", id, s)
			}
		}
		if first := FirstMsgID(s); (len(ids) == 0) != (first == "") {
			t.Fatalf("FirstMsgID %q, MsgIDs %q", first, ids)
		}
	})
}

// FuzzThread builds messages from the input (one per line: "id refs...|
// subject") and checks that every message appears exactly once in the
// threads of both algorithms.
func FuzzThread(f *testing.F) {
	f.Add("a@x|s\nb@x a@x|Re: s\nc@x b@x a@x|s\nd@x z@x|t")
	f.Add("a@x c@x|\nc@x a@x|\nb@x b@x|x")
	f.Fuzz(func(t *testing.T, in string) {
		lines := strings.Split(in, "\n")
		if len(lines) > 200 {
			lines = lines[:200]
		}
		msgs := make([]Message, len(lines))
		for i, l := range lines {
			ids, subject, _ := strings.Cut(l, "|")
			fs := strings.Fields(ids)
			m := Message{Num: uint32(i + 1), Date: int64(len(l) % 7)}
			m.Subject, m.ReplyOrFwd = BaseSubject(subject)
			if len(fs) > 0 {
				m.MessageID, m.References = fs[0], fs[1:]
			}
			msgs[i] = m
		}
		for name, threads := range map[string][]imapThreads{
			"references": wrap(References(msgs)), "orderedsubject": wrap(OrderedSubject(msgs)),
		} {
			seen := make(map[uint32]int)
			for _, th := range threads {
				count(th, seen)
			}
			if len(seen) != len(msgs) {
				t.Fatalf("%s: %d of %d messages", name, len(seen), len(msgs))
			}
			for n, c := range seen {
				if c != 1 {
					t.Fatalf("%s: message %d appears %d times", name, n, c)
				}
			}
		}
	})
}

type imapThreads = imap.ThreadData

func wrap(ts []imap.ThreadData) []imapThreads { return ts }

func count(t imap.ThreadData, seen map[uint32]int) {
	for _, n := range t.Chain {
		seen[n]++
	}
	for _, s := range t.SubThreads {
		count(s, seen)
	}
}

func FuzzReadThreadFields(f *testing.F) {
	f.Add("Message-ID: <a@b>\r\nReferences: <c@d>\r\n <e@f>\r\nIn-Reply-To: <e@f>\r\n\r\nbody")
	f.Add("references:<x@y>\n\tmore\nX: y\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ReadThreadFields(bufio.NewReaderSize(strings.NewReader(s), 16))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(got.MessageID) + len(got.InReplyTo) + len(got.References); n > len(s) {
			t.Fatalf("%d bytes of fields from %d of input", n, len(s))
		}
	})
}

// FuzzEncodeKey: the byte order of encoded keys is Compare's, for two keys
// and criteria taken from the input, and the encoding ends with Seq.
func FuzzEncodeKey(f *testing.F) {
	f.Add("a\x00b", "a", int64(-1), int64(5), uint32(1), uint32(2), []byte{0, 3, 7})
	f.Add("", "\x00", int64(1)<<62, int64(-1)<<62, uint32(9), uint32(9), []byte{13, 4, 1})
	keys := []imap.SortKey{imap.SortKeyArrival, imap.SortKeyDate, imap.SortKeySize, imap.SortKeySubject,
		imap.SortKeyFrom, imap.SortKeyTo, imap.SortKeyCc, imap.SortKeyDisplayFrom, imap.SortKeyDisplayTo}
	f.Fuzz(func(t *testing.T, s1, s2 string, n1, n2 int64, seq1, seq2 uint32, crit []byte) {
		if len(crit) > 20 {
			crit = crit[:20]
		}
		var criteria []imap.SortCriterion
		for _, c := range crit {
			criteria = append(criteria, imap.SortCriterion{Key: keys[int(c>>1)%len(keys)], Reverse: c&1 == 1})
		}
		// Each field takes a string or number derived from the input, so
		// that equal and unequal fields both occur.
		mk := func(s string, n int64, seq uint32) Key {
			return Key{Seq: seq, Arrival: n, Date: n / 2, Size: -n, Subject: s, From: s + "x",
				To: strings.ToUpper(s), Cc: s[:len(s)/2], DisplayFrom: s, DisplayTo: ""}
		}
		a, b := mk(s1, n1, seq1), mk(s2, n2, seq2)
		ea, eb := Encode(&a, criteria), Encode(&b, criteria)
		if got, want := strings.Compare(ea, eb), Compare(&a, &b, criteria); got != want {
			t.Fatalf("criteria %v: encoded order %d, Compare %d (%q, %q)", criteria, got, want, ea, eb)
		}
		if EncodedSeq(ea) != seq1 || EncodedSeq(eb) != seq2 {
			t.Fatalf("EncodedSeq %d %d, want %d %d", EncodedSeq(ea), EncodedSeq(eb), seq1, seq2)
		}
	})
}
