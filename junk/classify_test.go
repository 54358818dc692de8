package junk

import (
	"context"
	"math"
	"strings"
	"testing"
)

func TestTokenizeFeatures(t *testing.T) {
	html := "<html><head><style>.hidden { secretstyleword: 1 }</style></head><body>" +
		"<p>Dear&nbsp;customer, claim your PRIZE</p><a href=\"https://Click.Tracker.Example.net/x?y=1\">here</a>" +
		"<img src='cid:logo'></body></html>"
	msg := "From: \"Prize Desk\" <desk@Win.Example>\r\n" +
		"To: a@example.org, b@example.org\r\n" +
		"Reply-To: other@elsewhere.example\r\n" +
		"Subject: =?UTF-8?Q?Caf=C3=A9_offer?=\r\n" +
		"Message-ID: <1@mailer.win.example>\r\n" +
		"X-Posthouse-Junk: no; score=0.010; threshold=0.900\r\n" +
		"Authentication-Results: mx.example.org; spf=fail smtp.mailfrom=win.example\r\n" +
		"Authentication-Results: forged.example; dkim=pass header.d=win.example\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=zz\r\n\r\n" +
		"--zz\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"soft=\r\nbreak na=EFve visit www.shop.example/buy now " + strings.Repeat("x", 300) + "\r\n" +
		"--zz\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		wrap76(b64(html)) + "\r\n" +
		"--zz\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.PDF.exe\"\r\n\r\nAAAA\r\n" +
		"--zz--\r\n"
	tok := &Tokenizer{Hostname: "mx.example.org"}
	f := tokenize(t, tok, []byte(msg))
	defer f.release()
	want := []struct{ prefix, word string }{
		{"s:", "café"}, {"s:", "offer"},
		{"from:", "desk@win.example"}, {"fromdom:", "win.example"}, {"fromname:", "prize"},
		{"rcpts:", "2-5"}, {"replyto:", "elsewhere.example"}, {"replyto:", "<other domain>"},
		{"mid:", "mailer.win.example"}, {"ct:", "multipart/mixed"},
		{"ar:", "spf=fail"},
		{"", "softbreak"}, {"", "naïve"}, {"url:", "www.shop.example"}, {"url:", "shop.example"},
		{"long:", "a9"},
		{"", "customer"}, {"", "prize"}, {"tag:", "a"}, {"tag:", "img"},
		{"url:", "click.tracker.example.net"}, {"url:", "example.net"}, {"url:", "<cid>"},
		{"ext:", "exe"}, {"ct:", "application/octet-stream"},
		{"hdr:", "reply-to"},
	}
	for _, w := range want {
		if !has(f, w.prefix, w.word) {
			t.Errorf("feature %q%q missing", w.prefix, w.word)
		}
	}
	unwanted := []struct{ prefix, word string }{
		{"", "secretstyleword"}, // style contents are skipped
		{"hdr:", "x-posthouse-junk"},
		{"hdr:", "authentication-results"},
		{"ar:", "dkim=pass"}, // not our authserv-id
		{"", "nbsp"},
		{"", "dear customer"},
	}
	for _, w := range unwanted {
		if has(f, w.prefix, w.word) {
			t.Errorf("feature %q%q should not be there", w.prefix, w.word)
		}
	}
}

func b64(s string) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b strings.Builder
	for i := 0; i < len(s); i += 3 {
		var n uint32
		k := min(3, len(s)-i)
		for j := range 3 {
			n <<= 8
			if j < k {
				n |= uint32(s[i+j])
			}
		}
		for j := range 4 {
			if j <= k {
				b.WriteByte(enc[(n>>(18-6*j))&63])
			} else {
				b.WriteByte('=')
			}
		}
	}
	return b.String()
}

func TestTokenizeBounded(t *testing.T) {
	// Many distinct words: at most MaxTokens features.
	var b strings.Builder
	b.WriteString("Subject: many\r\n\r\n")
	for i := range 20000 {
		b.WriteString("w")
		for n := i; n > 0; n /= 26 {
			b.WriteByte(byte('a' + n%26))
		}
		b.WriteString("x ")
	}
	f := tokenize(t, &Tokenizer{}, []byte(b.String()))
	defer f.release()
	if f.Len() != MaxTokens {
		t.Errorf("%d features, want the bound %d", f.Len(), MaxTokens)
	}
}

func TestTokenizeDeterministic(t *testing.T) {
	spam, _ := corpus(1, 5)
	tok := &Tokenizer{}
	for _, m := range spam {
		a, b := tokenize(t, tok, m), tokenize(t, tok, m)
		if strings.Join(strs(a.Hashes()), ",") != strings.Join(strs(b.Hashes()), ",") {
			t.Fatal("two tokenizations differ")
		}
		a.release()
		b.release()
	}
}

func strs(h []uint64) []string {
	out := make([]string, len(h))
	for i, v := range h {
		out[i] = string(rune(v % 1e6))
	}
	return out
}

func TestScore(t *testing.T) {
	tests := []struct {
		name        string
		counts      []Count
		nspam, nham int64
		lo, hi      float64
	}{
		{name: "nothing learned", counts: []Count{{5, 0}}, lo: 0.5, hi: 0.5},
		{name: "unknown features", counts: []Count{{0, 0}, {0, 0}}, nspam: 10, nham: 10, lo: 0.5, hi: 0.5},
		{name: "spammy", counts: []Count{{9, 0}, {8, 1}, {10, 0}}, nspam: 10, nham: 10, lo: 0.9, hi: 1},
		{name: "hammy", counts: []Count{{0, 9}, {1, 8}, {0, 10}}, nspam: 10, nham: 10, lo: 0, hi: 0.1},
		{name: "mixed evidence is unsure", counts: []Count{{10, 0}, {10, 0}, {0, 10}, {0, 10}}, nspam: 10, nham: 10, lo: 0.4, hi: 0.6},
		{name: "neutral features", counts: []Count{{5, 5}, {3, 3}}, nspam: 10, nham: 10, lo: 0.5, hi: 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := Score(tc.counts, tc.nspam, tc.nham)
			if s < tc.lo || s > tc.hi || math.IsNaN(s) {
				t.Errorf("score %v, want in [%v, %v]", s, tc.lo, tc.hi)
			}
		})
	}
	// Many features: still in [0, 1], no NaN or underflow.
	many := make([]Count, 1000)
	for i := range many {
		many[i] = Count{Spam: 100}
	}
	if s, n := Score(many, 100, 100); s < 0.99 || s > 1 || n != maxDiscriminators {
		t.Errorf("1000 spam features: score %v from %d", s, n)
	}
}

// TestClassifierCorpus trains on a generated corpus and classifies
// another one from the same distribution.
func TestClassifierCorpus(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, "", DBOptions{})
	tok := &Tokenizer{}
	spam, ham := corpus(42, 60)
	for i, m := range spam {
		f := tokenize(t, tok, m)
		if _, err := db.Learn(ctx, "alice@example.org", key(i), Spam, f.Hashes()); err != nil {
			t.Fatal(err)
		}
		f.release()
	}
	for i, m := range ham {
		f := tokenize(t, tok, m)
		if _, err := db.Learn(ctx, "alice@example.org", key(1000+i), Ham, f.Hashes()); err != nil {
			t.Fatal(err)
		}
		f.release()
	}
	st, err := db.Stats(ctx, "alice@example.org")
	if err != nil || st.Spam != 60 || st.Ham != 60 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	testSpam, testHam := corpus(4242, 100)
	var fp, fn int
	var spamSum, hamSum float64
	for _, m := range testSpam {
		s := scoreOf(t, db, tok, "alice@example.org", m)
		spamSum += s
		if s < DefaultThreshold {
			fn++
		}
	}
	for _, m := range testHam {
		s := scoreOf(t, db, tok, "alice@example.org", m)
		hamSum += s
		if s >= DefaultThreshold {
			fp++
		}
	}
	t.Logf("false positives %d/100, false negatives %d/100, mean spam score %.3f, mean ham score %.3f", fp, fn, spamSum/100, hamSum/100)
	if fp > 0 {
		t.Errorf("%d ham messages judged junk", fp)
	}
	if fn > 5 {
		t.Errorf("%d spam messages missed", fn)
	}
	// Another account learned nothing: its score says so.
	if s := scoreOf(t, db, tok, "bob@example.org", testSpam[0]); s != 0.5 {
		t.Errorf("untrained account: score %v", s)
	}
}

func scoreOf(t testing.TB, db *DB, tok *Tokenizer, account string, m []byte) float64 {
	t.Helper()
	f := tokenize(t, tok, m)
	defer f.release()
	st, counts, err := db.Counts(context.Background(), account, f.Hashes())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := Score(counts, st.Spam, st.Ham)
	return s
}

func TestVerdictHeader(t *testing.T) {
	tests := []Result{
		{Verdict: VerdictYes, Score: 0.97312, Threshold: 0.9},
		{Verdict: VerdictNo, Score: 0.12, Threshold: 0.9},
		{Verdict: VerdictNo, Score: 0.99, Threshold: 0.9, Trusted: true},
		{Verdict: VerdictUntrained, Score: 0.5, Spam: 3, Ham: 12},
	}
	for _, r := range tests {
		v := r.Header()
		got, ok := ParseHeader(v)
		if !ok {
			t.Errorf("ParseHeader(%q) failed", v)
			continue
		}
		if got.Verdict != r.Verdict || math.Abs(got.Score-r.Score) > 0.0005 || got.Trusted != r.Trusted || got.Spam != r.Spam || got.Ham != r.Ham {
			t.Errorf("%q parsed as %+v, want %+v", v, got, r)
		}
	}
	for _, bad := range []string{"", "maybe; score=0.5", "yes", "yes; score=2", "no; score=x", "yes; score"} {
		if _, ok := ParseHeader(bad); ok {
			t.Errorf("ParseHeader(%q) accepted", bad)
		}
	}
}
