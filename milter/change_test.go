package milter

import (
	"strings"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/posthouse/posthouse/delivery"
)

// forgedMsg carries a sender's own spam verdicts, one folded.
const forgedMsg = "From: Sender <sender@remote.test>\r\n" +
	"X-Spam-Status: No, forged\r\n" +
	"Subject: hi\r\n" +
	"x-spam-status: No,\r\n\tforged twice\r\n" +
	"X-Spamd-Result: default: False [-9.00 / 15.00]\r\n" +
	"\r\n" +
	"X-Spam-Status: a body line\r\n"

const storedTrace = "Received: from client.remote.test ([192.0.2.10])\r\n\tby mx.a.test; Thu, 3 Dec 2026 20:00:00 +0000\r\n"

// TestChangeHeader: SMFIR_CHGHEADER removes the field it names and, with
// a value, adds the new one on top; the index counts over the header the
// milter was sent, the fields an earlier filter added first.
func TestChangeHeader(t *testing.T) {
	ar := addField{"X-Spam-Status", "Yes, added by an earlier filter"}
	tests := []struct {
		name    string
		earlier bool // an earlier filter adds ar
		change  func(m *gomilter.Modifier)
		top     string // fields above Received, after Return-Path
		rest    string // forgedMsg as stored
	}{
		{name: "delete the first", change: func(m *gomilter.Modifier) { m.ChangeHeader(1, "X-Spam-Status", "") },
			rest: strings.Replace(forgedMsg, "X-Spam-Status: No, forged\r\n", "", 1)},
		{name: "delete the second, folded, any case", change: func(m *gomilter.Modifier) { m.ChangeHeader(2, "X-SPAM-Status", "") },
			rest: strings.Replace(forgedMsg, "x-spam-status: No,\r\n\tforged twice\r\n", "", 1)},
		{name: "index 0 is the first", change: func(m *gomilter.Modifier) { m.ChangeHeader(0, "X-Spam-Status", "") },
			rest: strings.Replace(forgedMsg, "X-Spam-Status: No, forged\r\n", "", 1)},
		{name: "change: removed, the new value on top", change: func(m *gomilter.Modifier) {
			m.ChangeHeader(1, "X-Spamd-Result", "default: True [12.00 / 15.00];\n\tGTUBE(12.00)")
		},
			top:  "X-Spamd-Result: default: True [12.00 / 15.00];\r\n\tGTUBE(12.00)\r\n",
			rest: strings.Replace(forgedMsg, "X-Spamd-Result: default: False [-9.00 / 15.00]\r\n", "", 1)},
		{name: "index beyond the count", change: func(m *gomilter.Modifier) {
			m.ChangeHeader(3, "X-Spam-Status", "")
			m.ChangeHeader(1, "X-Nothing", "")
		}, rest: forgedMsg},
		{name: "change beyond the count adds", change: func(m *gomilter.Modifier) { m.ChangeHeader(5, "X-Spam-Status", "Yes") },
			top: "X-Spam-Status: Yes\r\n", rest: forgedMsg},
		{name: "malformed name ignored", change: func(m *gomilter.Modifier) { m.ChangeHeader(1, "X Spam", "") },
			rest: forgedMsg},
		{name: "index on an earlier filter's field removes it", earlier: true,
			change: func(m *gomilter.Modifier) { m.ChangeHeader(1, "X-Spam-Status", "") },
			rest:   forgedMsg},
		{name: "then the message's own", earlier: true,
			change: func(m *gomilter.Modifier) { m.ChangeHeader(2, "X-Spam-Status", "") },
			top:    "X-Spam-Status: Yes, added by an earlier filter\r\n",
			rest:   strings.Replace(forgedMsg, "X-Spam-Status: No, forged\r\n", "", 1)},
		{name: "every forged one, by index, last first", change: func(m *gomilter.Modifier) {
			m.ChangeHeader(2, "X-Spam-Status", "")
			m.ChangeHeader(1, "X-Spam-Status", "")
			m.ChangeHeader(1, "X-Spamd-Result", "")
		}, rest: "From: Sender <sender@remote.test>\r\nSubject: hi\r\n\r\nX-Spam-Status: a body line\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fm := &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
				tc.change(m)
				return gomilter.RespAccept, nil
			}}
			filters := []delivery.Filter{e.filter(Options{Address: fm.start(t, allActions, 0)})}
			if tc.earlier {
				filters = append([]delivery.Filter{ar}, filters...)
			}
			if err := resultErr(t, e.deliver(filters, inbound(), forgedMsg, alice), alice); err != nil {
				t.Fatal(err)
			}
			want := "Return-Path: <sender@remote.test>\r\n" + tc.top + storedTrace + tc.rest
			if got := e.mail(alice); len(got) != 1 || got[0].Body != want {
				t.Fatalf("stored %+v\nwant %q", got, want)
			}
		})
	}
}

// TestChangeHeaderMany: a runaway milter's changes stop at
// maxChangeFields; delivery goes on.
func TestChangeHeaderMany(t *testing.T) {
	e := newEnv(t)
	fm := &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
		for i := range 200 {
			m.ChangeHeader(i+1, "X-Spam-Status", "")
		}
		return gomilter.RespAccept, nil
	}}
	out := e.deliver([]delivery.Filter{e.filter(Options{Address: fm.start(t, allActions, 0)})}, inbound(), forgedMsg, alice)
	if err := resultErr(t, out, alice); err != nil {
		t.Fatal(err)
	}
	if got := e.mail(alice); len(got) != 1 || strings.Count(got[0].Body, "forged") != 0 {
		t.Errorf("stored %+v", got)
	}
	if !strings.Contains(e.logs.String(), "changed too many header fields") {
		t.Error("not logged")
	}
}
