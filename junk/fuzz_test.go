package junk

import (
	"bytes"
	"testing"

	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// FuzzTokenize: any message tokenizes within the bounds, the same way
// twice, without panicking.
func FuzzTokenize(f *testing.F) {
	spam, ham := corpus(9, 3)
	for _, m := range append(spam, ham...) {
		f.Add(m)
	}
	f.Add([]byte("Subject: =?x?Q?=ZZ?=\r\nContent-Type: text/html\r\n\r\n<a href=\"http://\"><style>x<y</style>&amp;&#x1F600;<"))
	f.Add([]byte("Content-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n////\r\n"))
	f.Add([]byte("From: <@>\r\nReply-To: ,,,\r\nAuthentication-Results: mx.example.org; dmarc=pass\r\n\r\nhttps://@/ www. http://a.b.c.d.e.f/"))
	tok := &Tokenizer{Hostname: "mx.example.org"}
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, _, err := mimeparse.ReadHeader(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		a, err := tok.Tokenize(h, readerat.String(string(msg)), int64(len(msg)))
		if err != nil {
			t.Fatal(err)
		}
		defer a.release()
		if a.Len() > MaxTokens {
			t.Fatalf("%d features", a.Len())
		}
		seen := map[uint64]bool{}
		for _, x := range a.Hashes() {
			if x == 0 || seen[x] || !a.set.contains(x) {
				t.Fatalf("feature %x: zero, repeated or not in the set", x)
			}
			seen[x] = true
		}
		b, _ := tok.Tokenize(h, readerat.String(string(msg)), int64(len(msg)))
		defer b.release()
		if b.Len() != a.Len() {
			t.Fatalf("second tokenization: %d features, first %d", b.Len(), a.Len())
		}
	})
}
