package junk

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/posthouse/posthouse/internal/readerat"
	"github.com/posthouse/posthouse/mailstore/mimeparse"
)

// The generated corpus: spam and ham share most of their words (as real
// mail does); each class has its own vocabulary, senders and habits.
var (
	sharedWords = strings.Fields(`the and for you with this that have from are your will our
		please about more time here what when which there their would could should only also
		just other into over after before first last new good great best today week month year
		people work make know take see come think look want give use find tell ask need feel`)
	spamWords = strings.Fields(`winner lottery prize claim free money cash offer casino bitcoin
		million credit discount pharmacy pills cheap guaranteed unsubscribe limited urgent
		congratulations investment profit loan viagra deal exclusive bonus wire beneficiary`)
	hamWords = strings.Fields(`meeting project report lunch tomorrow budget review schedule
		family weekend invoice agenda minutes draft deadline colleague conference slides
		thanks regards notes quarterly roadmap release kitchen garden birthday dinner`)
	spamDomains = []string{"promo-deals.example", "win-big.example", "cheap-meds.example", "crypto-rich.example"}
	hamDomains  = []string{"example.org", "partner.example", "university.example", "family.example"}
	hamNames    = []string{"Alice Martin", "Bob Dupont", "Carol Smith", "Dave Jones", "Eve Brown"}
)

// genMessage makes message i of a class, deterministically from r: CRLF,
// with the encodings and shapes real mail has.
func genMessage(r *rand.Rand, spam bool, i int) []byte {
	words, domains := hamWords, hamDomains
	if spam {
		words, domains = spamWords, spamDomains
	}
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	text := func(n int) string {
		var b strings.Builder
		for j := range n {
			if j > 0 {
				b.WriteByte(' ')
			}
			if r.IntN(10) < 3 {
				b.WriteString(pick(words))
			} else {
				b.WriteString(pick(sharedWords))
			}
			if j%12 == 11 {
				b.WriteString(".\r\n")
			}
		}
		return b.String()
	}
	var h bytes.Buffer
	dom := pick(domains)
	if spam {
		fmt.Fprintf(&h, "From: \"%s %s\" <%s%d@%s>\r\n", strings.ToUpper(pick(words)), pick(words), pick(words), r.IntN(1000), dom)
		fmt.Fprintf(&h, "Subject: %s %s %s!\r\n", strings.ToUpper(pick(words)), pick(words), pick(sharedWords))
		fmt.Fprintf(&h, "To: undisclosed-recipients:;\r\n")
		fmt.Fprintf(&h, "X-Mailer: MassMailer %d\r\n", r.IntN(9))
	} else {
		name := pick(hamNames)
		fmt.Fprintf(&h, "From: %s <%s@%s>\r\n", name, strings.ToLower(strings.Fields(name)[0]), dom)
		fmt.Fprintf(&h, "Subject: Re: %s %s\r\n", pick(words), pick(sharedWords))
		fmt.Fprintf(&h, "To: alice@example.org\r\n")
		fmt.Fprintf(&h, "User-Agent: Thunderbird %d\r\n", 100+r.IntN(30))
	}
	fmt.Fprintf(&h, "Message-ID: <%d.%d@%s>\r\n", i, r.IntN(1<<30), dom)
	fmt.Fprintf(&h, "Date: Mon, 2 Jan 2026 15:04:05 +0000\r\nMIME-Version: 1.0\r\n")
	body := text(40 + r.IntN(120))
	switch r.IntN(4) {
	case 0: // plain
		fmt.Fprintf(&h, "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", body)
	case 1: // quoted-printable, latin-1
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		w.Write([]byte(body + " caf\xe9"))
		w.Close()
		fmt.Fprintf(&h, "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", qp.String())
	case 2: // HTML in base64
		html := "<html><head><style>p { color: red }</style></head><body><p>" + body + "</p>"
		if spam {
			html += `<a href="http://click.` + dom + `/track?id=1">click here</a><img src="http://img.` + dom + `/x.png">`
		}
		html += "</body></html>"
		fmt.Fprintf(&h, "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n", wrap76(base64.StdEncoding.EncodeToString([]byte(html))))
	default: // multipart/alternative
		fmt.Fprintf(&h, "Content-Type: multipart/alternative; boundary=b%d\r\n\r\n", i)
		fmt.Fprintf(&h, "--b%d\r\nContent-Type: text/plain\r\n\r\n%s\r\n", i, body)
		fmt.Fprintf(&h, "--b%d\r\nContent-Type: text/html\r\n\r\n<p>%s</p>\r\n--b%d--\r\n", i, body, i)
	}
	return h.Bytes()
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteString("\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// corpus returns n messages of each class.
func corpus(seed uint64, n int) (spam, ham [][]byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		spam = append(spam, genMessage(r, true, i))
		ham = append(ham, genMessage(r, false, i))
	}
	return spam, ham
}

// tokenize runs the tokenizer over a whole message.
func tokenize(t testing.TB, tok *Tokenizer, msg []byte) *Features {
	t.Helper()
	h, _, err := mimeparse.ReadHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	f, err := tok.Tokenize(h, readerat.String(string(msg)), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func has(f *Features, prefix, word string) bool {
	return f.set.contains(HashFeature(prefix, word))
}

// clock is a movable clock.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func openTestDB(t testing.TB, path string, opts DBOptions) *DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "junk.sqlite")
	}
	db, err := OpenDB(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// key makes a message key for tests.
func key(i int) MessageKey {
	var k MessageKey
	copy(k[:], fmt.Sprintf("msg-%d", i))
	return k
}

// parseHeader reads a message's header as the pipeline does.
func parseHeader(t testing.TB, msg []byte) textproto.Header {
	t.Helper()
	h, _, err := mimeparse.ReadHeader(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return h
}
