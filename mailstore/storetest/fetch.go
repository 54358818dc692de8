package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// multipartMessage has an encoded subject, a quoted-printable text part,
// an HTML alternative, an attached message and a binary attachment.
const multipartMessage = "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n" +
	"To: a@example.org, \"B\" <b@example.net>\r\n" +
	"Subject: =?UTF-8?B?w6l0w6k=?= report\r\n" +
	"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\n" +
	"Message-ID: <abc@example.org>\r\n" +
	"In-Reply-To: <parent@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=inner\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"caf=C3=A9 needle\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"\r\n" +
	"<p>hi</p>\r\n" +
	"--inner--\r\n" +
	"--outer\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"Content-Disposition: attachment; filename=\"fwd.eml\"\r\n" +
	"\r\n" +
	"From: x@example.org\r\n" +
	"Subject: inner\r\n" +
	"\r\n" +
	"inner body\r\n" +
	"--outer\r\n" +
	"Content-Type: application/octet-stream; name=blob.bin\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"AAECAw==\r\n" +
	"--outer--\r\n"

// testFetch covers Fetch (UID sets, cached envelope and body structure)
// and OpenMessage.
func testFetch(t *testing.T, b Backend) {
	t.Run("UIDSets", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		if got := fetch(t, acc, in.ID, imap.UIDSet{{Start: 0, Stop: 0}}, mailstore.FetchOptions{}); len(got) != 0 {
			t.Errorf("Fetch * of an empty mailbox = %v", infoUIDs(got))
		}
		deliverN(t, acc, 5, message("m", "x"))
		storeFlags(t, acc, in.ID, imap.UIDSetNum(2, 4), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil) // UIDs 1 3 5 remain
		tests := []struct {
			name string
			set  imap.UIDSet
			want []imap.UID
		}{
			{name: "existing and not", set: imap.UIDSetNum(1, 2, 3, 99), want: []imap.UID{1, 3}},
			{name: "unordered", set: imap.UIDSetNum(5, 1), want: []imap.UID{1, 5}},
			{name: "range", set: imap.UIDSet{{Start: 1, Stop: 4}}, want: []imap.UID{1, 3}},
			{name: "reversed range", set: imap.UIDSet{{Start: 4, Stop: 1}}, want: []imap.UID{1, 3}},
			{name: "overlapping ranges", set: imap.UIDSet{{Start: 1, Stop: 3}, {Start: 3, Stop: 5}}, want: []imap.UID{1, 3, 5}},
			{name: "1:*", set: allUIDs, want: []imap.UID{1, 3, 5}},
			{name: "*", set: imap.UIDSet{{Start: 0, Stop: 0}}, want: []imap.UID{5}},
			// RFC 9051 §6.4.9: n:* with n above the largest UID
			// still includes the largest.
			{name: "n:* above the largest", set: imap.UIDSet{{Start: 9, Stop: 0}}, want: []imap.UID{5}},
			{name: "expunged only", set: imap.UIDSetNum(2, 4), want: []imap.UID{}},
			{name: "empty set", set: imap.UIDSet{}, want: []imap.UID{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if got := infoUIDs(fetch(t, acc, in.ID, tc.set, mailstore.FetchOptions{})); !slices.Equal(got, tc.want) {
					t.Errorf("Fetch(%v) = %v, want %v", tc.set, got, tc.want)
				}
			})
		}
	})

	t.Run("Caches", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliver(t, acc, message("hello there", "line one\r\nline two"))
		deliver(t, acc, multipartMessage)
		infos := fetch(t, acc, in.ID, allUIDs, mailstore.FetchOptions{Envelope: true, BodyStructure: true})
		if len(infos) != 2 {
			t.Fatalf("Fetch 1:* = %d rows", len(infos))
		}
		env := infos[0].Envelope
		if env == nil || env.Subject != "hello there" || env.MessageID != "hello-there@example.net" ||
			len(env.From) != 1 || env.From[0] != (imap.Address{Name: "Bob", Mailbox: "bob", Host: "example.net"}) ||
			len(env.To) != 1 || env.To[0].Addr() != "alice@example.org" ||
			!env.Date.Equal(time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("envelope = %+v", env)
		}
		sp, ok := infos[0].BodyStructure.(*imap.BodyStructureSinglePart)
		if !ok || sp.MediaType() != "text/plain" || sp.Text == nil || sp.Text.NumLines != 2 {
			t.Errorf("body structure = %#v, want text/plain of 2 lines", infos[0].BodyStructure)
		}
		env = infos[1].Envelope
		// The envelope keeps the header's own text: encoded words stay
		// encoded (RFC 3501 §7.4.2; the client decodes them).
		if env == nil || env.Subject != "=?UTF-8?B?w6l0w6k=?= report" || len(env.From) != 1 || env.From[0].Name != "=?ISO-8859-1?Q?Andr=E9?=" ||
			len(env.To) != 2 || !slices.Equal(env.InReplyTo, []string{"parent@example.org"}) {
			t.Errorf("multipart envelope = %+v", env)
		}
		mp, ok := infos[1].BodyStructure.(*imap.BodyStructureMultiPart)
		if !ok || mp.MediaType() != "multipart/mixed" || len(mp.Children) != 3 {
			t.Fatalf("multipart body structure = %#v", infos[1].BodyStructure)
		}
		var types []string
		mp.Walk(func(path []int, part imap.BodyStructure) bool {
			types = append(types, part.MediaType())
			return true
		})
		want := []string{"multipart/mixed", "multipart/alternative", "text/plain", "text/html", "message/rfc822", "application/octet-stream"}
		if !slices.Equal(types, want) {
			t.Errorf("parts = %v, want %v", types, want)
		}
		// Without options the caches are left out.
		for _, mi := range fetch(t, acc, in.ID, allUIDs, mailstore.FetchOptions{}) {
			if mi.Envelope != nil || mi.BodyStructure != nil {
				t.Errorf("UID %d: Fetch without options returned envelope %v, body structure %v", mi.UID, mi.Envelope, mi.BodyStructure)
			}
		}
		env2 := fetch(t, acc, in.ID, imap.UIDSetNum(2), mailstore.FetchOptions{Envelope: true})
		if len(env2) != 1 || env2[0].Envelope == nil || env2[0].BodyStructure != nil {
			t.Errorf("Fetch of the envelope alone = %+v", env2)
		}
	})

	t.Run("OpenMessage", func(t *testing.T) {
		_, acc, in := newInbox(t, b)
		deliver(t, acc, message("one", "x"))
		deliver(t, acc, message("two", "x"))
		if got := readMessage(t, acc, in.ID, 2); got != message("two", "x") {
			t.Errorf("UID 2 reads %q", got)
		}
		for _, uid := range []imap.UID{0, 3, 1 << 31} {
			_, _, err := acc.OpenMessage(t.Context(), in.ID, uid)
			wantErr(t, "OpenMessage of a missing UID", err, mailstore.ErrNoSuchMessage)
		}
		storeFlags(t, acc, in.ID, imap.UIDSetNum(1), mailstore.FlagsAdd, imap.FlagDeleted)
		expunge(t, acc, in.ID, nil)
		_, _, err := acc.OpenMessage(t.Context(), in.ID, 1)
		wantErr(t, "OpenMessage of an expunged message", err, mailstore.ErrNoSuchMessage)
	})
}
