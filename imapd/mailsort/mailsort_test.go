package mailsort

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		reply          bool
	}{
		{"plain", "Hello world", "HELLO WORLD", false},
		{"re", "Re: hello", "HELLO", true},
		{"re re fwd", "RE: Fwd: re:hello", "HELLO", true},
		{"fw", "FW: x", "X", true},
		{"re with blob", "Re[2]: x", "X", true},
		{"blob then re", "[list] Re: x", "X", true},
		{"blob alone", "[list] x", "X", false},
		{"blob is whole subject", "[list]", "[LIST]", false},
		{"fwd trailer", "x (fwd)", "X", true},
		{"fwd trailers and spaces", "x (fwd) (FWD)  ", "X", true},
		{"fwd wrapper", "[fwd: Re: x]", "X", true},
		{"nested wrapper", "[Fwd: [fwd: x]]", "X", true},
		{"spaces collapse", "a \t\r\n  b", "A B", false},
		{"re without colon", "Re x", "RE X", false},
		{"reply is a word", "Reply: x", "REPLY: X", false},
		{"empty", "", "", false},
		{"only re", "Re:", "", true},
		{"encoded word", "=?UTF-8?B?UmU6IGjDqWxsbw==?=", "HE\u0301LLO", true},
		{"latin1 word", "=?ISO-8859-1?Q?caf=E9?=", "CAFE\u0301", false},
		{"bad encoded word kept", "=?X-UNKNOWN?Q?a?=", "=?X-UNKNOWN?Q?A?=", false},
		{"invalid utf-8", "a\xffb", "A\uFFFDB", false},
		{"titlecase", "ǆ straße", "DZ\u030C STRAßE", false},
		{"compatibility decomposition", "ﬁle", "FILE", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reply := BaseSubject(tc.in)
			if got != tc.want || reply != tc.reply {
				t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", tc.in, got, reply, tc.want, tc.reply)
			}
		})
	}
}

func TestMsgIDs(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"one", "<a@b>", []string{"a@b"}},
		{"several", " <a@b>\r\n\t<c@d> <e@f>", []string{"a@b", "c@d", "e@f"}},
		{"comments and phrase", `"Joe" (x) <a@b> wrote (<no>)`, []string{"a@b"}},
		{"no at", "<ab> <c@d>", []string{"c@d"}},
		{"space inside", "<a b@c> <d@e>", []string{"d@e"}},
		{"unclosed", "<a@b", nil},
		{"nested open", "<x<a@b>", []string{"a@b"}},
		{"empty parts", "<@b> <a@>", nil},
		{"none", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MsgIDs(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("MsgIDs(%q) = %q, want %q", tc.in, got, tc.want)
			}
			first := ""
			if len(tc.want) > 0 {
				first = tc.want[0]
			}
			if got := FirstMsgID(tc.in); got != first {
				t.Errorf("FirstMsgID(%q) = %q, want %q", tc.in, got, first)
			}
		})
	}
	many := strings.Repeat("<x@y> ", maxMsgIDs) + "<last@y>"
	if got := MsgIDs(many); len(got) != maxMsgIDs || got[len(got)-1] != "last@y" {
		t.Errorf("over the limit: %d IDs, last %q", len(got), got[len(got)-1])
	}
}

func TestSortCompare(t *testing.T) {
	keys := []Key{
		{Num: 1, Seq: 1, Size: 30, Subject: "B", Arrival: 5},
		{Num: 2, Seq: 2, Size: 10, Subject: "A", Arrival: 5},
		{Num: 3, Seq: 3, Size: 30, Subject: "A", Arrival: 4},
		{Num: 4, Seq: 4, Size: 20, Subject: "B", Arrival: 5},
	}
	for _, tc := range []struct {
		name     string
		criteria []imap.SortCriterion
		want     []uint32
	}{
		{"size", []imap.SortCriterion{{Key: imap.SortKeySize}}, []uint32{2, 4, 1, 3}},
		{"reverse size ties by sequence", []imap.SortCriterion{{Key: imap.SortKeySize, Reverse: true}}, []uint32{1, 3, 4, 2}},
		{"subject then reverse size", []imap.SortCriterion{{Key: imap.SortKeySubject}, {Key: imap.SortKeySize, Reverse: true}}, []uint32{3, 2, 1, 4}},
		{"reverse arrival", []imap.SortCriterion{{Key: imap.SortKeyArrival, Reverse: true}}, []uint32{1, 2, 4, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Sort(slices.Clone(keys), tc.criteria); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAddressKeys(t *testing.T) {
	addrs := []imap.Address{{Name: "=?UTF-8?Q?Z=C3=A9ro?=", Mailbox: "zed", Host: "example.org"}, {Mailbox: "b", Host: "x"}}
	if got := AddrKey(addrs); got != "ZED" {
		t.Errorf("AddrKey = %q", got)
	}
	if got := DisplayKey(addrs); got != Casemap("Zéro") {
		t.Errorf("DisplayKey = %q", got)
	}
	if got := DisplayKey(addrs[1:]); got != "B@X" {
		t.Errorf("DisplayKey without name = %q", got)
	}
	if AddrKey(nil) != "" || DisplayKey(nil) != "" {
		t.Error("empty lists give keys")
	}
}

// threadString writes threads as THREAD does.
func threadString(ts []imap.ThreadData) string {
	var sb strings.Builder
	var write func(t imap.ThreadData)
	write = func(t imap.ThreadData) {
		sb.WriteByte('(')
		for i, n := range t.Chain {
			if i > 0 {
				sb.WriteByte(' ')
			}
			fmt.Fprint(&sb, n)
		}
		if len(t.Chain) > 0 && len(t.SubThreads) > 0 {
			sb.WriteByte(' ')
		}
		for _, s := range t.SubThreads {
			write(s)
		}
		sb.WriteByte(')')
	}
	for _, t := range ts {
		write(t)
	}
	return sb.String()
}

// msg builds a Message: num, date, subject, Message-ID, references.
func msg(num uint32, date int64, subject, id string, refs ...string) Message {
	base, reply := BaseSubject(subject)
	return Message{Num: num, Date: date, Subject: base, ReplyOrFwd: reply, MessageID: id, References: refs}
}

func TestReferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs []Message
		want string
	}{
		{"reply chain", []Message{
			msg(1, 10, "a", "1@x"), msg(2, 20, "Re: a", "2@x", "1@x"), msg(3, 30, "Re: a", "3@x", "1@x", "2@x"),
		}, "(1 2 3)"},
		{"siblings by date", []Message{
			msg(1, 10, "a", "1@x"), msg(2, 30, "re: a", "2@x", "1@x"), msg(3, 20, "re: a", "3@x", "1@x"),
		}, "(1 (3)(2))"},
		{"missing parent is a dummy", []Message{
			msg(1, 10, "x", "1@x", "0@x"), msg(2, 20, "y", "2@x", "0@x"),
		}, "((1)(2))"},
		{"dummy with one child is dropped", []Message{
			msg(1, 10, "x", "1@x", "0@x"), msg(2, 5, "y", "2@x"),
		}, "(2)(1)"},
		{"loop in references ignored", []Message{
			msg(1, 10, "", "a@b"), msg(2, 20, "", "b@b", "a@b", "c@b"), msg(3, 30, "", "c@b", "b@b"),
		}, "(1)(3 2)"},
		{"duplicate message-id is unique", []Message{
			msg(1, 10, "p", "1@x"), msg(2, 20, "q", "1@x"), msg(3, 30, "r", "3@x", "1@x"),
		}, "(1 3)(2)"},
		{"no message-id", []Message{msg(1, 10, "p", ""), msg(2, 20, "q", "")}, "(1)(2)"},
		{"same subject: reply goes under original", []Message{
			msg(1, 10, "Re: s", "1@x"), msg(2, 20, "s", "2@x"),
		}, "(2 1)"},
		{"same subject, both originals: dummy", []Message{
			msg(1, 10, "s", "1@x"), msg(2, 20, "s", "2@x"),
		}, "((1)(2))"},
		{"empty subject not grouped", []Message{msg(1, 10, "", "1@x"), msg(2, 20, "", "2@x")}, "(1)(2)"},
		{"self reference", []Message{msg(1, 10, "a", "1@x", "1@x")}, "(1)"},
		{"ties by sequence", []Message{msg(2, 10, "a", "1@x"), msg(1, 10, "b", "2@x")}, "(2)(1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := threadString(References(tc.msgs)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestOrderedSubject(t *testing.T) {
	msgs := []Message{
		msg(1, 50, "b", ""), msg(2, 10, "Re: a", ""), msg(3, 40, "a", ""),
		msg(4, 30, "c", ""), msg(5, 20, "a", ""), msg(6, 60, "c", ""),
	}
	if got, want := threadString(OrderedSubject(msgs)), "(2 (5)(3))(4 6)(1)"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestReadThreadFields(t *testing.T) {
	in := "Subject: x\r\nmessage-id: <a@b>\r\nReferences: <c@d>\r\n\t<e@f>\r\nX-Long: " + strings.Repeat("y", 100) +
		"\r\n <no@no>\r\nIn-Reply-To: <e@f>\r\nReferences: <second@field>\r\n\r\nReferences: <body@x>\r\n"
	for _, size := range []int{16, 4096} {
		got, err := ReadThreadFields(bufio.NewReaderSize(strings.NewReader(in), size))
		if err != nil {
			t.Fatal(err)
		}
		want := ThreadFields{MessageID: " <a@b>", InReplyTo: " <e@f>", References: " <c@d>\t<e@f>"}
		if got != want {
			t.Errorf("buffer %d: got %+v, want %+v", size, got, want)
		}
	}
}
