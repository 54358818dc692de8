package indexrow

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

var codecMessages = []string{
	"From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n" +
		"To: a@example.org, \"B\" <b@example.net>\r\nCc: c@example.com\r\n" +
		"Subject: =?UTF-8?B?w6l0w6k=?= report\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\n" +
		"Message-ID: <abc@example.org>\r\nIn-Reply-To: <parent@example.org>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
		"--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n" +
		"--inner\r\nContent-Type: text/html; charset=utf-8\r\nContent-Language: en, fr\r\n\r\n<p>hi</p>\r\n--inner--\r\n" +
		"--outer\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"fwd.eml\"\r\n\r\n" +
		"From: x@example.org\r\nSubject: inner\r\nDate: Tue, 3 Jan 2006 01:02:03 +0000\r\n\r\ninner body\r\n" +
		"--outer\r\nContent-Type: application/octet-stream; name=blob.bin\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-ID: <blob@x>\r\nContent-Description: a blob\r\nContent-Location: http://example.org/blob\r\n\r\nAAECAw==\r\n--outer--\r\n",
	"From: Bench Sender <sender@bench.example>\r\nTo: <smtp1@bench.test>\r\nSubject: bench message 1\r\n" +
		"Date: Thu, 01 Jan 2026 00:01:00 +0000\r\nMessage-ID: <smtp1.1@bench.example>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + strings.Repeat("some words here\r\n", 500),
	"no header at all",
	"",
	"From: a@b\r\nDate: Sat, 21 Nov 2026 10:00:00.5 +0130\r\nReply-To: undisclosed-recipients:;\r\n\r\nx\r\n",
}

// jsonEnvelope and jsonBodyStructure are the JSON form (CacheVersion) rows
// written before the binary form hold.
func jsonEnvelope(t *testing.T, e *imap.Envelope) []byte {
	b, err := json.Marshal(ToCachedEnvelope(e))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{CacheVersion}, b...)
}

func jsonBodyStructure(t *testing.T, bs imap.BodyStructure) []byte {
	p, err := ToCachedPart(bs, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{CacheVersion}, b...)
}

// TestBinaryCacheMatchesJSON: a value written in the binary form decodes to
// what its JSON form decodes to (rows of both kinds read alike), and the
// binary form is much smaller.
func TestBinaryCacheMatchesJSON(t *testing.T) {
	for i, msg := range codecMessages {
		root, err := mimeparse.Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		env := root.Envelope
		if env == nil {
			env = &imap.Envelope{}
		}
		for _, e := range []*imap.Envelope{env, nil} {
			bin, err := EncodeEnvelope(e)
			if err != nil || bin[0] != BinaryVersion {
				t.Fatalf("message %d: EncodeEnvelope: %v, version %q", i, err, bin[0])
			}
			got, err := DecodeEnvelope(bin)
			if err != nil {
				t.Fatalf("message %d: binary envelope: %v", i, err)
			}
			want, err := DecodeEnvelope(jsonEnvelope(t, e))
			if err != nil {
				t.Fatal(err)
			}
			if !sameEnvelope(got, want) {
				t.Errorf("message %d: envelope\n got %#v\nwant %#v", i, got, want)
			}
		}
		bs := root.BodyStructure()
		bin, err := EncodeBodyStructure(bs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeBodyStructure(bin)
		if err != nil {
			t.Fatalf("message %d: binary body structure: %v", i, err)
		}
		want, err := DecodeBodyStructure(jsonBodyStructure(t, bs))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("message %d: body structure\n got %#v\nwant %#v", i, got, want)
		}
		if i == 1 {
			envBin, _ := EncodeEnvelope(env)
			jsonLen := len(jsonEnvelope(t, env)) + len(jsonBodyStructure(t, bs))
			if binLen := len(envBin) + len(bin); binLen*2 > jsonLen {
				t.Errorf("plain message: binary cache %d bytes, JSON %d: want less than half", binLen, jsonLen)
			}
		}
	}
}

// sameEnvelope compares envelopes with dates by instant and offset (JSON
// gives an offset-less zone the local name when it matches time.Local).
func sameEnvelope(a, b *imap.Envelope) bool {
	if a == nil || b == nil {
		return a == b
	}
	_, oa := a.Date.Zone()
	_, ob := b.Date.Zone()
	if !a.Date.Equal(b.Date) || oa != ob {
		return false
	}
	x, y := *a, *b
	x.Date, y.Date = time.Time{}, time.Time{}
	return reflect.DeepEqual(x, y)
}

// TestBinaryCacheRejects: truncated, extended or corrupt values fail.
func TestBinaryCacheRejects(t *testing.T) {
	root, err := mimeparse.Parse(strings.NewReader(codecMessages[0]))
	if err != nil {
		t.Fatal(err)
	}
	env, _ := EncodeEnvelope(root.Envelope)
	bs, _ := EncodeBodyStructure(root.BodyStructure())
	for _, tc := range []struct {
		name string
		b    []byte
		bs   bool
	}{
		{"envelope truncated", env[:len(env)-1], false},
		{"envelope with a tail", append(append([]byte{}, env...), 0), false},
		{"envelope bad date tag", []byte{BinaryVersion, 1, 7}, false},
		{"envelope huge list", []byte{BinaryVersion, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, false},
		{"body truncated", bs[:len(bs)-1], true},
		{"body with a tail", append(append([]byte{}, bs...), 0), true},
		{"body bad kind", []byte{BinaryVersion, 9}, true},
		{"body deep", append([]byte{BinaryVersion}, []byte(strings.Repeat("\x02\x00\x01", 100))...), true},
	} {
		var err error
		if tc.bs {
			_, err = DecodeBodyStructure(tc.b)
		} else {
			_, err = DecodeEnvelope(tc.b)
		}
		if err == nil {
			t.Errorf("%s: decoded", tc.name)
		}
	}
}

// FuzzDecodeCache: any bytes decode to a value or an error, and a decoded
// value encodes again to bytes that decode.
func FuzzDecodeCache(f *testing.F) {
	for _, msg := range codecMessages {
		root, err := mimeparse.Parse(strings.NewReader(msg))
		if err != nil {
			f.Fatal(err)
		}
		env, _ := EncodeEnvelope(root.Envelope)
		bs, _ := EncodeBodyStructure(root.BodyStructure())
		f.Add(env)
		f.Add(bs)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := DecodeEnvelope(b); err == nil && len(b) > 0 && b[0] == BinaryVersion {
			again, err := EncodeEnvelope(e)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeEnvelope(again); err != nil {
				t.Fatalf("re-encoded envelope does not decode: %v", err)
			}
		}
		if bs, err := DecodeBodyStructure(b); err == nil && len(b) > 0 && b[0] == BinaryVersion {
			again, err := EncodeBodyStructure(bs)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeBodyStructure(again); err != nil {
				t.Fatalf("re-encoded body structure does not decode: %v", err)
			}
		}
	})
}
