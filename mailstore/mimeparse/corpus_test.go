package mimeparse

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Ordinary messages for the differential tests: the shapes mail clients
// and list servers produce, with CRLF line ends.
var handMessages = []string{
	"",
	"no header at all",
	"Subject: only a header\r\n",
	"Subject: header and empty body\r\n\r\n",
	"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\nDate: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <x@y>\r\n\r\nline 1\r\nline 2\r\n",
	"From: a@example.org\r\n\r\nno final newline",
	"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n",
	"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\npreamble\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n\r\ntwo (default type)\r\n--b--\r\nepilogue\r\n",
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n--b\r\n\r\nsecond\r\n--b--",
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b  \r\n\r\npadded delimiter\r\n--b--  \r\n",
	"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nno close delimiter\r\n",
	"Content-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\nSubject: inner\r\n\r\ninner body\r\n",
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\nContent-Type: text/plain\r\n\r\nx\r\n--c\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--c--\r\n--b--\r\n",
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n--bx is not a delimiter\r\n--b-- \r\n",
	"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=\"a.txt\"\r\nContent-Language: en, fr\r\nContent-Location: http://example.org/a\r\nContent-ID: <id@x>\r\nContent-Description: desc\r\n\r\nbody\r\n",
	"Subject: =?UTF-8?B?w6l0w6k=?=\r\nFrom: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\nTo: group: a@example.org, b@example.org;\r\nCc: \"Last, First\" <lf@example.org>\r\nIn-Reply-To: <p1@x> <p2@x>\r\n\r\nx\r\n",
	"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbare LF part\n--b--\n",
	"X-Folded: one\r\n two\r\n\tthree\r\nSubject: s\r\n\r\nbody\r\n",
}

// genMessage makes a random well-formed MIME message.
func genMessage(r *rand.Rand) []byte {
	var b bytes.Buffer
	n := 0
	genEntity(r, &b, 0, &n, true)
	return b.Bytes()
}

var words = []string{"hello", "world", "caf\xc3\xa9", "=?UTF-8?Q?caf=C3=A9?=", "meeting", "report", "x", "Re:", "--", "-"}

func genText(r *rand.Rand, lines int) string {
	var s strings.Builder
	for i := 0; i < lines; i++ {
		for j := r.IntN(12); j > 0; j-- {
			s.WriteString(words[r.IntN(len(words))])
			s.WriteByte(' ')
		}
		s.WriteString("\r\n")
	}
	if r.IntN(4) == 0 && s.Len() > 2 {
		return strings.TrimSuffix(s.String(), "\r\n")
	}
	return s.String()
}

func genMessageHeader(r *rand.Rand, b *bytes.Buffer) {
	name := words[r.IntN(len(words))]
	if strings.Contains(name, ":") {
		name = `"` + name + `"` // a special: quoted, as a mail client writes it
	}
	fmt.Fprintf(b, "From: %s <user%d@example.org>\r\n", name, r.IntN(100))
	fmt.Fprintf(b, "To: a@example.org, \"B %d\" <b@example.net>\r\n", r.IntN(10))
	if r.IntN(2) == 0 {
		b.WriteString("Cc: c@example.com\r\n")
	}
	fmt.Fprintf(b, "Subject: %s %s\r\n", words[r.IntN(len(words))], words[r.IntN(len(words))])
	fmt.Fprintf(b, "Date: Mon, %02d Jan 2006 15:04:05 -0700\r\n", 1+r.IntN(28))
	fmt.Fprintf(b, "Message-ID: <%d@example.org>\r\n", r.Int())
	b.WriteString("MIME-Version: 1.0\r\n")
}

func genEntity(r *rand.Rand, b *bytes.Buffer, depth int, n *int, message bool) {
	*n++
	if message {
		genMessageHeader(r, b)
	}
	kind := r.IntN(10)
	if depth >= 4 || *n > 30 {
		kind = 9
	}
	switch {
	case kind < 3:
		sub := []string{"mixed", "alternative", "related"}[r.IntN(3)]
		bd := fmt.Sprintf("=_b%d_%d", depth, r.IntN(1000))
		fmt.Fprintf(b, "Content-Type: multipart/%s; boundary=\"%s\"\r\n\r\n", sub, bd)
		if r.IntN(2) == 0 {
			b.WriteString("This is a multi-part message in MIME format.\r\n")
		}
		for i := 1 + r.IntN(3); i > 0; i-- {
			fmt.Fprintf(b, "--%s\r\n", bd)
			genEntity(r, b, depth+1, n, false)
			b.WriteString("\r\n")
		}
		fmt.Fprintf(b, "--%s--\r\n", bd)
		if r.IntN(3) == 0 {
			b.WriteString("epilogue\r\n")
		}
	case kind == 3:
		b.WriteString("Content-Type: message/rfc822\r\n")
		if r.IntN(2) == 0 {
			b.WriteString("Content-Disposition: attachment; filename=\"fwd.eml\"\r\n")
		}
		b.WriteString("\r\n")
		genEntity(r, b, depth+1, n, true)
	case kind == 4:
		b.WriteString("Content-Type: application/pdf; name=\"doc.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"doc.pdf\"\r\n\r\n")
		raw := make([]byte, r.IntN(300))
		for i := range raw {
			raw[i] = byte(r.IntN(256))
		}
		enc := base64.StdEncoding.EncodeToString(raw)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc)
	case kind == 5:
		b.WriteString("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Language: en\r\n\r\n")
		b.WriteString("<p>caf=C3=A9</p>=\r\n<p>" + genText(r, r.IntN(5)))
	default:
		if r.IntN(3) > 0 {
			b.WriteString("Content-Type: text/plain; charset=\"utf-8\"; format=flowed\r\n")
		}
		if r.IntN(3) == 0 {
			b.WriteString("Content-Transfer-Encoding: 8bit\r\n")
		}
		b.WriteString("\r\n")
		b.WriteString(genText(r, r.IntN(8)))
	}
}

// corpus is the hand-written messages and n generated ones.
func corpus(n int) [][]byte {
	var out [][]byte
	for _, m := range handMessages {
		out = append(out, []byte(m))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		out = append(out, genMessage(r))
	}
	return out
}
