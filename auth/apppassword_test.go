package auth

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestAppPasswords(t *testing.T) { forEachBackend(t, testAppPasswords) }

func testAppPasswords(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com", "eve@example.com"}, nil)

	phone, secret, err := db.CreateAppPassword(ctx, "Bob@Example.com", "  Bob's phone ")
	must(t, err)
	if !regexp.MustCompile(`^[a-z]{4}(-[a-z]{4}){4}$`).MatchString(secret) {
		t.Fatalf("secret %q is not five dash-separated groups of four lowercase letters", secret)
	}
	if phone.Name != "Bob's phone" || phone.ID == 0 || !phone.LastUsed.IsZero() {
		t.Fatalf("CreateAppPassword = %+v", phone)
	}
	laptop, secret2, err := db.CreateAppPassword(ctx, "bob@example.com", "laptop")
	must(t, err)
	if secret2 == secret {
		t.Fatal("two app passwords with one secret")
	}

	tests := []struct {
		name, user, password string
		want                 error
	}{
		{"app password", "bob@example.com", secret, nil},
		{"without dashes", "bob@example.com", strings.ReplaceAll(secret, "-", ""), nil},
		{"upper case, spaces", "bob@example.com", strings.ToUpper(strings.ReplaceAll(secret, "-", " ")), nil},
		{"second app password", "bob@example.com", secret2, nil},
		{"account password still works", "bob@example.com", "pw-bob", nil},
		{"another user's app password", "eve@example.com", secret, ErrBadCredentials},
		{"one letter off", "bob@example.com", secret[:len(secret)-1] + string(rune('a'+(secret[len(secret)-1]-'a'+1)%26)), ErrBadCredentials},
		{"truncated", "bob@example.com", secret[:len(secret)-2], ErrBadCredentials},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := db.Authenticate(ctx, tc.user, tc.password, ipA)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Authenticate = %v, want %v", err, tc.want)
			}
			if err == nil && u.Address != tc.user {
				t.Fatalf("Authenticate returned %+v", u)
			}
		})
	}
	// The web console takes the account password only.
	if _, err := db.AuthenticateWeb(ctx, "bob@example.com", secret, ipA); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("AuthenticateWeb with an app password = %v, want ErrBadCredentials", err)
	}
	if _, err := db.AuthenticateWeb(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
		t.Fatalf("AuthenticateWeb with the account password: %v", err)
	}

	list, err := db.AppPasswords(ctx, "bob@example.com")
	must(t, err)
	if len(list) != 2 || list[0].ID != phone.ID || list[1].ID != laptop.ID {
		t.Fatalf("AppPasswords = %+v", list)
	}
	if !list[0].LastUsed.Equal(env.clock.Now().Truncate(time.Second)) || list[0].LastRemote != ipA.String() {
		t.Fatalf("last use of the phone's password = %v from %q, want now from %s", list[0].LastUsed, list[0].LastRemote, ipA)
	}

	// Revoking one: it fails at once (after a success just now), the other
	// still works; another user cannot revoke it.
	if err := db.RevokeAppPassword(ctx, "eve@example.com", phone.ID); !errors.Is(err, ErrNoSuchAppPassword) {
		t.Fatalf("revoking another user's app password = %v, want ErrNoSuchAppPassword", err)
	}
	must(t, db.RevokeAppPassword(ctx, "bob@example.com", phone.ID))
	if _, err := db.Authenticate(ctx, "bob@example.com", secret, ipA); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("revoked app password = %v, want ErrBadCredentials", err)
	}
	if _, err := db.Authenticate(ctx, "bob@example.com", secret2, ipA); err != nil {
		t.Fatalf("the other app password after a revoke: %v", err)
	}
	if err := db.RevokeAppPassword(ctx, "bob@example.com", phone.ID); !errors.Is(err, ErrNoSuchAppPassword) {
		t.Fatalf("revoking twice = %v", err)
	}

	// Disabling the user stops app passwords too.
	must(t, db.SetDisabled(ctx, "bob@example.com", true))
	if _, err := db.Authenticate(ctx, "bob@example.com", secret2, ipA); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("app password of a disabled user = %v", err)
	}
	for _, s := range []string{secret, secret2, strings.ReplaceAll(secret, "-", "")} {
		if strings.Contains(env.logs.String(), s) {
			t.Fatal("a secret is in the log")
		}
	}
}

// TestAppPasswordRevokedByOtherProcess: posthouse admin revokes while
// serve runs; serve's next login with it fails.
func TestAppPasswordRevokedByOtherProcess(t *testing.T) {
	forEachBackend(t, testAppPasswordRevokedByOtherProcess)
}

func testAppPasswordRevokedByOtherProcess(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	ap, secret, err := env.db.CreateAppPassword(ctx, "bob@example.com", "phone")
	must(t, err)
	if _, err := env.db.Authenticate(ctx, "bob@example.com", secret, ipA); err != nil {
		t.Fatal(err)
	}
	admin := env.open(t, Options{})
	must(t, admin.RevokeAppPassword(ctx, "bob@example.com", ap.ID))
	if _, err := env.db.Authenticate(ctx, "bob@example.com", secret, ipA); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("after a revoke by another process = %v, want ErrBadCredentials", err)
	}
}

func TestAppPasswordLastUseWrittenOncePerInterval(t *testing.T) {
	forEachBackend(t, testAppPasswordLastUseWrittenOncePerInterval)
}

func testAppPasswordLastUseWrittenOncePerInterval(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	_, secret, err := db.CreateAppPassword(ctx, "bob@example.com", "phone")
	must(t, err)
	first := env.clock.Now().Truncate(time.Second)
	last := func() AppPassword {
		t.Helper()
		l, err := db.AppPasswords(ctx, "bob@example.com")
		must(t, err)
		return l[0]
	}
	if _, err := db.Authenticate(ctx, "bob@example.com", secret, ipA); err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(30 * time.Second)
	if _, err := db.Authenticate(ctx, "bob@example.com", secret, ipB); err != nil {
		t.Fatal(err)
	}
	if ap := last(); !ap.LastUsed.Equal(first) || ap.LastRemote != ipA.String() {
		t.Fatalf("within the interval: %v from %s, want the first login kept (%v from %s)", ap.LastUsed, ap.LastRemote, first, ipA)
	}
	env.clock.Advance(lastUseInterval)
	if _, err := db.Authenticate(ctx, "bob@example.com", secret, ipB); err != nil {
		t.Fatal(err)
	}
	if ap := last(); !ap.LastUsed.Equal(env.clock.Now().Truncate(time.Second)) || ap.LastRemote != ipB.String() {
		t.Fatalf("after the interval: %v from %s, want now from %s", ap.LastUsed, ap.LastRemote, ipB)
	}
}

func TestCreateAppPasswordErrors(t *testing.T) { forEachBackend(t, testCreateAppPasswordErrors) }

func testCreateAppPasswordErrors(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, Options{}).db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	tests := []struct {
		name, user, device string
		want               error
	}{
		{"no such user", "nobody@example.com", "phone", ErrNoSuchUser},
		{"empty name", "bob@example.com", "   ", ErrInvalidName},
		{"long name", "bob@example.com", strings.Repeat("x", maxAppPasswordName+1), ErrInvalidName},
		{"control character", "bob@example.com", "pho\nne", ErrInvalidName},
		{"invalid UTF-8", "bob@example.com", "ph\xffone", ErrInvalidName},
		{"bad address", "bob", "phone", ErrInvalidAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := db.CreateAppPassword(ctx, tc.user, tc.device); !errors.Is(err, tc.want) {
				t.Fatalf("CreateAppPassword = %v, want %v", err, tc.want)
			}
		})
	}
	for i := range maxAppPasswords {
		if _, _, err := db.CreateAppPassword(ctx, "bob@example.com", "device "+string(rune('a'+i%26))); err != nil {
			t.Fatalf("app password %d: %v", i, err)
		}
	}
	if _, _, err := db.CreateAppPassword(ctx, "bob@example.com", "one too many"); !errors.Is(err, ErrTooManyAppPasswords) {
		t.Fatalf("past the limit = %v, want ErrTooManyAppPasswords", err)
	}
	// Removing the user removes its app passwords.
	must(t, db.RemoveUser(ctx, "bob@example.com"))
	var n int
	must(t, db.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM app_passwords`).Scan(&n))
	if n != 0 {
		t.Fatalf("%d app passwords left after RemoveUser", n)
	}
}

func TestRoles(t *testing.T) { forEachBackend(t, testRoles) }

func testRoles(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t, Options{}).db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	u, err := db.User(ctx, "bob@example.com")
	must(t, err)
	if u.Admin {
		t.Fatal("new user is an admin")
	}
	must(t, db.SetAdmin(ctx, "BOB@example.com", true))
	if u, _ := db.User(ctx, "bob@example.com"); !u.Admin {
		t.Fatal("SetAdmin(true) did not make an admin")
	}
	if us, _ := db.Users(ctx, "example.com"); len(us) != 1 || !us[0].Admin {
		t.Fatalf("Users = %+v", us)
	}
	if u, err := db.AuthenticateWeb(ctx, "bob@example.com", "pw-bob", ipA); err != nil || !u.Admin {
		t.Fatalf("AuthenticateWeb = %+v, %v; want an admin", u, err)
	}
	must(t, db.SetAdmin(ctx, "bob@example.com", false))
	if u, _ := db.User(ctx, "bob@example.com"); u.Admin {
		t.Fatal("SetAdmin(false) left an admin")
	}
	if err := db.SetAdmin(ctx, "nobody@example.com", true); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("SetAdmin of nobody = %v", err)
	}
}

func TestSecretFormats(t *testing.T) {
	for _, f := range []secretFormat{appPasswordFormat, recoveryCodeFormat} {
		seen := map[string]bool{}
		counts := map[byte]int{}
		for range 200 {
			s := f.generate()
			canon, ok := f.parse(s)
			if !ok || len(canon) != f.length() || strings.ReplaceAll(s, "-", "") != canon {
				t.Fatalf("generate %q parses as %q, %v", s, canon, ok)
			}
			if seen[s] {
				t.Fatalf("%q generated twice", s)
			}
			seen[s] = true
			for i := range len(canon) {
				counts[canon[i]]++
			}
		}
		// Every character of the alphabet turns up in 200·16+ draws (the
		// chance of one missing is below 10⁻⁴⁰).
		if len(counts) != len(f.alphabet) {
			t.Fatalf("%d of %d characters used", len(counts), len(f.alphabet))
		}
	}
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"abcd-efgh-ijkl-mnop-qrst", "abcdefghijklmnopqrst", true},
		{"ABCD EFGH IJKL MNOP QRST", "abcdefghijklmnopqrst", true},
		{"abcdefghijklmnopqrst", "abcdefghijklmnopqrst", true},
		{"abcd-efgh-ijkl-mnop-qrs", "", false},
		{"abcd-efgh-ijkl-mnop-qrstu", "", false},
		{"abcd-efgh-ijkl-mnop-qrs1", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := appPasswordFormat.parse(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parse(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	h := secretHash("abcdefghijklmnopqrst")
	if !secretMatches(h, "abcdefghijklmnopqrst") || secretMatches(h, "abcdefghijklmnopqrsu") {
		t.Fatal("secretMatches disagrees with secretHash")
	}
	if h == secretHash("abcdefghijklmnopqrst") {
		t.Fatal("equal secrets hash alike: no salt")
	}
	for _, bad := range []string{"", "s1$", "s1$$", "x1$AAAA$AAAA", h[:len(h)-2]} {
		if secretMatches(bad, "abcdefghijklmnopqrst") {
			t.Fatalf("malformed hash %q matched", bad)
		}
	}
}
