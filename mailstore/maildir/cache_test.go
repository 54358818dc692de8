package maildir

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/sqlitedb"
)

const multipartMessage = "From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n" +
	"To: a@example.org, \"B\" <b@example.net>\r\n" +
	"Cc: c@example.com\r\n" +
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
	"Content-Language: en, fr\r\n" +
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
	"Content-ID: <blob@x>\r\n" +
	"Content-Description: a blob\r\n" +
	"Content-Location: http://example.org/blob\r\n" +
	"\r\n" +
	"AAECAw==\r\n" +
	"--outer--\r\n"

func TestCacheRoundTrip(t *testing.T) {
	for _, msg := range []string{multipartMessage, testMessage("plain", "x"), "no header at all", ""} {
		bs := imapserver.ExtractBodyStructure(strings.NewReader(msg))
		b, err := encodeBodyStructure(bs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeBodyStructure(b)
		if err != nil {
			t.Fatal(err)
		}
		normalizeDates(bs)
		normalizeDates(got)
		if !reflect.DeepEqual(got, bs) {
			t.Errorf("body structure round trip differs:\n got %#v\nwant %#v", got, bs)
		}
	}
	p, err := parseMessage(strings.NewReader(multipartMessage))
	if err != nil {
		t.Fatal(err)
	}
	env, err := decodeEnvelope(p.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if env.Subject != "=?UTF-8?B?w6l0w6k=?= report" || len(env.From) != 1 || env.From[0].Name != "=?ISO-8859-1?Q?Andr=E9?=" || len(env.To) != 2 ||
		env.MessageID != "abc@example.org" || len(env.InReplyTo) != 1 || p.MessageID != "abc@example.org" {
		t.Errorf("envelope = %+v", env)
	}
	want := time.Date(2006, 1, 2, 15, 4, 5, 0, time.FixedZone("", -7*3600))
	if !env.Date.Equal(want) {
		t.Errorf("date = %v", env.Date)
	}
	if _, off := env.Date.Zone(); off != -7*3600 {
		t.Errorf("date zone offset = %d", off)
	}
	if p.SentDate != 20060102 {
		t.Errorf("sent date = %d", p.SentDate)
	}
	full := &imap.Envelope{
		Date: want, Subject: "s", From: []imap.Address{{Name: "n", Mailbox: "m", Host: "h"}},
		Sender: []imap.Address{}, ReplyTo: nil, To: []imap.Address{{Mailbox: "grp"}, {}},
		InReplyTo: []string{"a", "b"}, MessageID: "id",
	}
	b, _ := encodeEnvelope(full)
	got, err := decodeEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Date.Equal(full.Date) {
		t.Errorf("date %v", got.Date)
	}
	got.Date, full.Date = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, full) {
		t.Errorf("envelope round trip:\n got %#v\nwant %#v", got, full)
	}
	for _, bad := range [][]byte{nil, []byte("2{}"), []byte("1{"), []byte(`1{"mp":true,"c":[null]}`)} {
		if _, err := decodeBodyStructure(bad); err == nil {
			t.Errorf("decodeBodyStructure(%q) accepted", bad)
		}
	}
}

// normalizeDates replaces envelope dates inside message/rfc822 parts by
// their UTC instant: JSON keeps the offset but not the zone's name.
func normalizeDates(bs imap.BodyStructure) {
	bs.Walk(func(path []int, part imap.BodyStructure) bool {
		if sp, ok := part.(*imap.BodyStructureSinglePart); ok && sp.MessageRFC822 != nil {
			if e := sp.MessageRFC822.Envelope; e != nil {
				e.Date = e.Date.UTC()
			}
			normalizeDates(sp.MessageRFC822.BodyStructure)
		}
		return true
	})
}

// FuzzParseMessage feeds arbitrary messages through delivery's parser and
// the cache encoding: no panic, and whatever is cached decodes.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(multipartMessage))
	f.Add([]byte(testMessage("s", "b")))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: message/rfc822\r\n\r\n--a--"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		p, err := parseMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeEnvelope(p.Envelope); err != nil {
			t.Fatalf("envelope: %v", err)
		}
		if bs, err := decodeBodyStructure(p.BodyStructure); err != nil || bs == nil {
			t.Fatalf("body structure: %v, %v", bs, err)
		}
	})
}

// FuzzParseCache decodes arbitrary cache blobs: errors are fine, panics and
// unbounded nesting are not, and what decodes re-encodes.
func FuzzParseCache(f *testing.F) {
	p, _ := parseMessage(strings.NewReader(multipartMessage))
	f.Add(p.BodyStructure)
	f.Add(p.Envelope)
	f.Add([]byte(`1{"mp":true,"c":[{"t":"text","st":"plain","p":null}]}`))
	f.Add([]byte(`1{"t":"message","st":"rfc822","p":{},"msg":{"e":null,"b":{"mp":true},"n":3}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if bs, err := decodeBodyStructure(b); err == nil && bs != nil {
			if _, err := encodeBodyStructure(bs); err != nil {
				t.Fatalf("decoded body structure does not encode: %v", err)
			}
		}
		if env, err := decodeEnvelope(b); err == nil {
			if _, err := encodeEnvelope(env); err != nil {
				t.Fatalf("decoded envelope does not encode: %v", err)
			}
		}
	})
}

// FuzzParseSummaries parses arbitrary snapshot aggregates without panicking
// and keeps the result in UID order.
func FuzzParseSummaries(f *testing.F) {
	f.Add("1 2 3", "5 5 6", "0 1 9", "\n$Forwarded\n")
	f.Add("3 1", "1 1", "0 0", "\n")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, uids, modseqs, masks, keywords string) {
		out, err := parseSummaries(uids, modseqs, masks, keywords)
		if err != nil {
			return
		}
		for i := 1; i < len(out); i++ {
			if out[i].UID < out[i-1].UID {
				t.Fatalf("not sorted: %v", out)
			}
		}
	})
}

// TestSummariesCachedOnDemand: a new mailbox leaves the envelope and body
// structure out of the index until a client fetches them (schema step 8);
// that fetch answers from the file exactly what a cached row would, writes
// both into the row and marks the mailbox, and from then on delivery
// caches them. A file gone before its first fetch answers an empty
// envelope, not an error.
func TestSummariesCachedOnDemand(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t, Options{})
	acc := openAccount(t, s, testAccount)
	deliver(t, acc, multipartMessage)
	deliver(t, acc, testMessage("second", "x"))
	in, _ := acc.Mailbox(ctx, "INBOX")
	idx, err := sqlitedb.OpenFile(filepath.Join(dir, accountDirName(testAccount), indexFile), true)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	cached := func(uid int) (env, bs bool) {
		t.Helper()
		if err := idx.QueryRow(`SELECT envelope IS NOT NULL, bodystructure IS NOT NULL FROM messages WHERE uid = ?`, uid).Scan(&env, &bs); err != nil {
			t.Fatal(err)
		}
		return env, bs
	}
	marked := func() (m bool) {
		t.Helper()
		if err := idx.QueryRow(`SELECT cache_summaries FROM mailboxes WHERE id = ?`, in.ID).Scan(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if e, b := cached(1); e || b || marked() {
		t.Fatalf("before any fetch: envelope cached %v, body structure %v, mailbox marked %v", e, b, marked())
	}
	// A fetch of flags alone changes nothing.
	if _, err := acc.Fetch(ctx, in.ID, imap.UIDSetNum(1, 2), mailstore.FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	if e, _ := cached(1); e || marked() {
		t.Fatal("a fetch of flags filled the cache")
	}

	// The file of message 2 goes before anyone asked for its envelope.
	var file string
	if err := idx.QueryRow(`SELECT file FROM messages WHERE uid = 2`).Scan(&file); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, accountDirName(testAccount), maildirDir, strconv.FormatInt(in.ID, 10), filepath.FromSlash(file))); err != nil {
		t.Fatal(err)
	}
	got, err := acc.Fetch(ctx, in.ID, imap.UIDSetNum(1, 2), mailstore.FetchOptions{Envelope: true, BodyStructure: true})
	if err != nil || len(got) != 2 {
		t.Fatalf("fetch: %v %v", got, err)
	}
	p, err := parseMessage(strings.NewReader(multipartMessage))
	if err != nil {
		t.Fatal(err)
	}
	wantEnv, _ := decodeEnvelope(p.Envelope)
	wantBS, _ := decodeBodyStructure(p.BodyStructure)
	if !reflect.DeepEqual(got[0].Envelope, wantEnv) || !reflect.DeepEqual(got[0].BodyStructure, wantBS) {
		t.Errorf("first fetch, from the file:\n got %#v %#v\nwant %#v %#v", got[0].Envelope, got[0].BodyStructure, wantEnv, wantBS)
	}
	if got[1].Envelope == nil || got[1].Envelope.Subject != "" || got[1].BodyStructure == nil {
		t.Errorf("message without its file: %#v %#v", got[1].Envelope, got[1].BodyStructure)
	}
	if e, b := cached(1); !e || !b || !marked() {
		t.Fatalf("after the fetch: envelope cached %v, body structure %v, mailbox marked %v", e, b, marked())
	}
	if e, _ := cached(2); e {
		t.Error("the missing file's row got a cache entry")
	}
	again, err := acc.Fetch(ctx, in.ID, imap.UIDSetNum(1), mailstore.FetchOptions{Envelope: true, BodyStructure: true})
	if err != nil || len(again) != 1 || !reflect.DeepEqual(again[0].Envelope, got[0].Envelope) || !reflect.DeepEqual(again[0].BodyStructure, got[0].BodyStructure) {
		t.Errorf("second fetch, from the index: %#v (%v)", again, err)
	}
	deliver(t, acc, testMessage("third", "x"))
	if e, b := cached(3); !e || !b {
		t.Errorf("delivery to a marked mailbox: envelope cached %v, body structure %v", e, b)
	}
}
