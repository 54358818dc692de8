package srs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// clock is a movable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTest(t testing.TB, domain string, key []byte) (*Rewriter, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	r, err := New(Options{Domain: domain, Secret: key, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func TestRoundTrip(t *testing.T) {
	r, _ := newTest(t, "mx.a.test", testKey)
	for _, tc := range []struct{ name, sender string }{
		{"plain", "sender@c.test"},
		{"tag", "sender+news@c.test"},
		{"equals in local part", "a=b=c@c.test"},
		{"upper case", "Sender@C.Test"},
		{"quoted at", `"a@b"@c.test`},
		{"utf-8", "bø@bø.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fwd, err := r.Forward(tc.sender)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(fwd, "SRS0=") || !strings.HasSuffix(fwd, "@mx.a.test") || !IsSRS(fwd) {
				t.Fatalf("Forward(%q) = %q", tc.sender, fwd)
			}
			back, err := r.Reverse(fwd)
			if err != nil || back != tc.sender {
				t.Fatalf("Reverse(%q) = %q, %v; want %q", fwd, back, err, tc.sender)
			}
		})
	}
}

func TestForwardShape(t *testing.T) {
	r, _ := newTest(t, "mx.a.test", testKey)
	got, err := r.Forward("sender@c.test")
	if err != nil {
		t.Fatal(err)
	}
	// SRS0=HHHHHH=TT=c.test=sender@mx.a.test
	f := strings.Split(strings.TrimSuffix(got, "@mx.a.test"), "=")
	if len(f) != 5 || f[0] != "SRS0" || len(f[1]) != DefaultHashLen || len(f[2]) != 2 || f[3] != "c.test" || f[4] != "sender" {
		t.Fatalf("Forward = %q", got)
	}
	for _, s := range []string{"", "x@MX.A.TEST", "SRS0=abc=AB=c.test=x@mx.a.test"} {
		if got, err := r.Forward(s); err != nil || got != s {
			t.Errorf("Forward(%q) = %q, %v; want it unchanged", s, got, err)
		}
	}
	for _, s := range []string{"nodomain", "@c.test", "x@", "x@c.test\r\nRCPT TO:<y@z>", "x@a=b"} {
		if _, err := r.Forward(s); !errors.Is(err, ErrBadSender) {
			t.Errorf("Forward(%q): err %v, want ErrBadSender", s, err)
		}
	}
	long := strings.Repeat("l", 50) + "@" + strings.Repeat("d", 20) + ".test"
	if _, err := r.Forward(long); !errors.Is(err, ErrTooLong) {
		t.Errorf("Forward(long): %v, want ErrTooLong", err)
	}
}

// A host on the way back may change the case of the whole address.
func TestCaseFolding(t *testing.T) {
	r, _ := newTest(t, "mx.a.test", testKey)
	fwd, _ := r.Forward("Sender@C.test")
	for _, v := range []string{strings.ToLower(fwd), strings.ToUpper(fwd)} {
		back, err := r.Reverse(v)
		if err != nil || !strings.EqualFold(back, "sender@c.test") {
			t.Errorf("Reverse(%q) = %q, %v", v, back, err)
		}
	}
}

func TestTamper(t *testing.T) {
	r, _ := newTest(t, "mx.a.test", testKey)
	fwd, _ := r.Forward("sender@c.test")
	local := strings.TrimSuffix(fwd, "@mx.a.test")
	f := strings.Split(local, "=")
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	other, _ := newTest(t, "mx.a.test", []byte("another key, also long enough!!"))
	forged, _ := other.Forward("sender@c.test")
	for _, tc := range []struct {
		name, addr string
		err        error
	}{
		{"other domain", "sender@c.test", ErrNotSRS},
		{"our domain, no tag", "postmaster@mx.a.test", ErrNotSRS},
		{"someone else's SRS", local + "@mx.b.test", ErrNotSRS},
		{"hash changed", strings.Join([]string{f[0], flip(f[1]), f[2], f[3], f[4]}, "=") + "@mx.a.test", ErrBadHash},
		{"destination changed", strings.Join([]string{f[0], f[1], f[2], "evil.test", f[4]}, "=") + "@mx.a.test", ErrBadHash},
		{"local part changed", strings.Join([]string{f[0], f[1], f[2], f[3], "victim"}, "=") + "@mx.a.test", ErrBadHash},
		{"timestamp changed", strings.Join([]string{f[0], f[1], flip(f[2]), f[3], f[4]}, "=") + "@mx.a.test", ErrBadHash},
		{"fields shifted", strings.Join([]string{f[0], f[1], f[2], "c.tes", "t" + f[4]}, "=") + "@mx.a.test", ErrBadHash},
		{"other key", forged, ErrBadHash},
		{"short hash", strings.Join([]string{f[0], f[1][:4], f[2], f[3], f[4]}, "=") + "@mx.a.test", ErrBadHash},
		{"missing field", "SRS0=" + f[1] + "=" + f[2] + "=c.test@mx.a.test", ErrMalformed},
		{"empty local", "SRS0=" + f[1] + "=" + f[2] + "=c.test=@mx.a.test", ErrMalformed},
		{"bad timestamp length", "SRS0=" + f[1] + "=ABC=c.test=x@mx.a.test", ErrMalformed},
		{"SRS1 without hop", "SRS1=ABCDEF=@mx.a.test", ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Reverse(tc.addr)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Reverse(%q) = %q, %v; want %v", tc.addr, got, err, tc.err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	r, c := newTest(t, "mx.a.test", testKey)
	fwd, _ := r.Forward("sender@c.test")
	for _, tc := range []struct {
		name  string
		after time.Duration
		err   error
	}{
		{"same day", 0, nil},
		{"20 days", 20 * day, nil},
		{"21 days", 21 * day, nil},
		{"22 days", 22 * day, ErrExpired},
		{"a year", 365 * day, ErrExpired},
		{"from tomorrow", -day, ErrExpired},
		// The day number wraps every 1024 days; an address that old
		// looks new again, a known limit of two characters.
		{"1024 days", 1024 * day, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := c.t
			c.t = c.t.Add(tc.after)
			defer func() { c.t = saved }()
			if _, err := r.Reverse(fwd); !errors.Is(err, tc.err) {
				t.Fatalf("Reverse after %s: %v, want %v", tc.after, err, tc.err)
			}
		})
	}
}

// A message forwarded twice: A makes SRS0, B makes SRS1, a bounce goes
// back B → A → the original sender.
func TestSRS1(t *testing.T) {
	a, _ := newTest(t, "mx.a.test", testKey)
	b, _ := newTest(t, "mx.b.test", []byte("the key of b, another 32 bytes.."))
	c, _ := newTest(t, "mx.c.test", []byte("and the key of c, 32 bytes long."))
	atA, err := a.Forward("sender@d.test")
	if err != nil {
		t.Fatal(err)
	}
	atB, err := b.Forward(atA)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(atB, "SRS1=") || !strings.Contains(atB, "=mx.a.test==") || !strings.HasSuffix(atB, "@mx.b.test") {
		t.Fatalf("second hop: %q", atB)
	}
	// A third hop keeps the first hop and rehashes.
	atC, err := c.Forward(atB)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(atC, "SRS1=") || !strings.Contains(atC, "=mx.a.test==") || !strings.HasSuffix(atC, "@mx.c.test") {
		t.Fatalf("third hop: %q", atC)
	}
	viaC, err := c.Reverse(atC)
	if err != nil || !strings.EqualFold(viaC, atA) {
		t.Fatalf("c.Reverse = %q, %v; want %q", viaC, err, atA)
	}
	viaB, err := b.Reverse(strings.ToLower(atB))
	if err != nil || !strings.EqualFold(viaB, atA) {
		t.Fatalf("b.Reverse = %q, %v; want %q", viaB, err, atA)
	}
	orig, err := a.Reverse(viaB)
	if err != nil || orig != "sender@d.test" {
		t.Fatalf("a.Reverse = %q, %v", orig, err)
	}
	// B's hash guards the hop: changing it breaks the SRS1 address.
	if _, err := b.Reverse(strings.Replace(atB, "=mx.a.test==", "=evil.test==", 1)); !errors.Is(err, ErrBadHash) {
		t.Fatalf("changed hop: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, o := range []Options{
		{Domain: "", Secret: testKey},
		{Domain: "a@b", Secret: testKey},
		{Domain: "mx.a.test", Secret: []byte("short")},
		{Domain: "mx.a.test", Secret: testKey, HashLen: 3},
		{Domain: "mx.a.test", Secret: testKey, MaxAge: time.Hour},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "srs.key")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = LoadKey(path)
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || len(keys[i]) != keyLen || string(keys[i]) != string(keys[0]) {
			t.Fatalf("LoadKey #%d: %x, %v; want one shared 32-byte key", i, keys[i], errs[i])
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	again, err := LoadKey(path)
	if err != nil || string(again) != string(keys[0]) {
		t.Fatalf("reload: %x, %v", again, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	os.WriteFile(path, []byte("not hex\n"), 0o600)
	if _, err := LoadKey(path); err == nil {
		t.Error("a garbled key file was accepted")
	}
}

func BenchmarkForward(b *testing.B) {
	r, _ := newTest(b, "mx.a.test", testKey)
	b.ReportAllocs()
	for b.Loop() {
		r.Forward("sender@example.com")
	}
}

func BenchmarkReverse(b *testing.B) {
	r, _ := newTest(b, "mx.a.test", testKey)
	fwd, _ := r.Forward("sender@example.com")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Reverse(fwd); err != nil {
			b.Fatal(err)
		}
	}
}
