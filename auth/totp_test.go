package auth

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestTOTPCodeRFC6238 checks the SHA-1 test vectors of RFC 6238 Appendix B
// (the last six of their eight digits).
func TestTOTPCodeRFC6238(t *testing.T) {
	secret := totpBase32.EncodeToString([]byte("12345678901234567890"))
	tests := []struct {
		name string
		unix int64
		want string
	}{
		{"59", 59, "287082"},
		{"1111111109", 1111111109, "081804"},
		{"1111111111", 1111111111, "050471"},
		{"1234567890", 1234567890, "005924"},
		{"2000000000", 2000000000, "279037"},
		{"20000000000", 20000000000, "353130"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TOTPCode(secret, time.Unix(tc.unix, 0))
			if err != nil || got != tc.want {
				t.Fatalf("TOTPCode = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// Lower case, spaces and padding are accepted as apps and people write them.
	if got, err := TOTPCode(strings.ToLower(secret[:8]+" "+secret[8:])+"====", time.Unix(59, 0)); err != nil || got != "287082" {
		t.Fatalf("typed secret: %q, %v", got, err)
	}
	for _, bad := range []string{"", "not base32!", "AAAA", strings.Repeat("A", 200)} {
		if _, err := TOTPCode(bad, time.Unix(59, 0)); !errors.Is(err, ErrInvalidSecret) {
			t.Fatalf("TOTPCode(%q) = %v, want ErrInvalidSecret", bad, err)
		}
	}
}

func TestTOTPURI(t *testing.T) {
	u, err := url.Parse(TOTPURI("Posthouse mail.example.com", "bob@example.com", "JBSWY3DPEHPK3PXP"))
	must(t, err)
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Posthouse mail.example.com:bob@example.com" ||
		q.Get("secret") != "JBSWY3DPEHPK3PXP" || q.Get("issuer") != "Posthouse mail.example.com" ||
		q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Fatalf("TOTPURI = %s", u)
	}
}

// totpEnv is a user with two-factor login on.
func newTOTPEnv(t *testing.T, opts Options) (*testEnv, string, []string) {
	t.Helper()
	ctx := context.Background()
	env := newTestDB(t, opts)
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com", "eve@example.com"}, nil)
	secret, err := env.db.NewTOTPSecret()
	must(t, err)
	if len(secret) != 32 {
		t.Fatalf("secret %q", secret)
	}
	wrong, _ := TOTPCode(secret, env.clock.Now().Add(-5*time.Minute))
	if _, err := env.db.EnableTOTP(ctx, "bob@example.com", secret, wrong); !errors.Is(err, ErrBadCode) {
		t.Fatalf("EnableTOTP with a stale code = %v, want ErrBadCode", err)
	}
	if u, _ := env.db.User(ctx, "bob@example.com"); u.TOTP {
		t.Fatal("a failed EnableTOTP turned TOTP on")
	}
	code, _ := TOTPCode(secret, env.clock.Now())
	codes, err := env.db.EnableTOTP(ctx, "bob@example.com", secret, code)
	must(t, err)
	if len(codes) != recoveryCodeCount {
		t.Fatalf("%d recovery codes", len(codes))
	}
	if u, _ := env.db.User(ctx, "bob@example.com"); !u.TOTP {
		t.Fatal("EnableTOTP did not set User.TOTP")
	}
	return env, secret, codes
}

func TestVerifySecondFactor(t *testing.T) { forEachBackend(t, testVerifySecondFactor) }

func testVerifySecondFactor(t *testing.T) {
	ctx := context.Background()
	env, secret, codes := newTOTPEnv(t, Options{})
	db := env.db
	now := env.clock.Now()
	code := func(d time.Duration) string {
		c, err := TOTPCode(secret, now.Add(d))
		must(t, err)
		return c
	}
	enrolment := code(0)
	env.clock.Advance(totpPeriod * time.Second) // the next step
	tests := []struct {
		name, user, code string
		want             error
	}{
		{"the enrolment code is used up", "bob@example.com", enrolment, ErrBadCode},
		{"current code", "bob@example.com", code(totpPeriod * time.Second), nil},
		{"same code again (replay)", "bob@example.com", code(totpPeriod * time.Second), ErrBadCode},
		{"next step's code (clock skew)", "bob@example.com", code(2 * totpPeriod * time.Second), nil},
		{"an earlier step after a later one", "bob@example.com", code(totpPeriod * time.Second), ErrBadCode},
		{"two steps ahead", "bob@example.com", code(4 * totpPeriod * time.Second), ErrBadCode},
		{"recovery code", "bob@example.com", codes[0], nil},
		{"recovery code again", "bob@example.com", codes[0], ErrBadCode},
		{"recovery code typed in capitals without dashes", "bob@example.com", strings.ToUpper(strings.ReplaceAll(codes[1], "-", "")), nil},
		{"user without 2FA", "eve@example.com", code(0), ErrBadCode},
		{"unknown user", "nobody@example.com", code(0), ErrBadCode},
		{"not a code", "bob@example.com", "12345", ErrBadCode},
		{"garbage", "bob@example.com", "\x00\xff", ErrBadCode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.VerifySecondFactor(ctx, tc.user, tc.code, ipA); !errors.Is(err, tc.want) {
				t.Fatalf("VerifySecondFactor(%q) = %v, want %v", tc.code, err, tc.want)
			}
		})
	}
	// A new enrolment voids the old recovery codes.
	env.clock.Advance(10 * totpPeriod * time.Second)
	c, _ := TOTPCode(secret, env.clock.Now())
	if _, err := db.EnableTOTP(ctx, "bob@example.com", secret, c); err != nil {
		t.Fatal(err)
	}
	if err := db.VerifySecondFactor(ctx, "bob@example.com", codes[2], ipA); !errors.Is(err, ErrBadCode) {
		t.Fatalf("old recovery code after re-enrolment = %v", err)
	}
	must(t, db.DisableTOTP(ctx, "bob@example.com"))
	if u, _ := db.User(ctx, "bob@example.com"); u.TOTP {
		t.Fatal("DisableTOTP left TOTP on")
	}
	env.clock.Advance(totpPeriod * time.Second)
	c, _ = TOTPCode(secret, env.clock.Now())
	if err := db.VerifySecondFactor(ctx, "bob@example.com", c, ipA); !errors.Is(err, ErrBadCode) {
		t.Fatalf("after DisableTOTP = %v", err)
	}
	var n int
	must(t, db.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes`).Scan(&n))
	if n != 0 {
		t.Fatalf("%d recovery codes left after DisableTOTP", n)
	}
	logs := env.logs.String()
	for _, s := range append([]string{secret}, codes...) {
		if strings.Contains(logs, s) {
			t.Fatalf("%q is in the log", s)
		}
	}
}

// TestSecondFactorThrottled: wrong codes are throttled like passwords, and
// logging in with the right password in between does not reset their count.
func TestSecondFactorThrottled(t *testing.T) { forEachBackend(t, testSecondFactorThrottled) }

func testSecondFactorThrottled(t *testing.T) {
	ctx := context.Background()
	env, secret, _ := newTOTPEnv(t, Options{IPMaxFailures: 3, AccountMaxFailures: 50})
	db := env.db
	for i := range 3 {
		if _, err := db.AuthenticateWeb(ctx, "bob@example.com", "pw-bob", ipB); err != nil {
			t.Fatalf("password %d: %v", i, err)
		}
		wrong := []string{"000000", "111111", "222222"}[i]
		if err := db.VerifySecondFactor(ctx, "bob@example.com", wrong, ipB); !errors.Is(err, ErrBadCode) {
			t.Fatalf("wrong code %d = %v", i, err)
		}
	}
	env.clock.Advance(totpPeriod * time.Second)
	right, _ := TOTPCode(secret, env.clock.Now())
	if err := db.VerifySecondFactor(ctx, "bob@example.com", right, ipB); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after 3 wrong codes = %v, want ErrThrottled", err)
	}
	// Another address is not locked out, and the code still works there.
	if err := db.VerifySecondFactor(ctx, "bob@example.com", right, ipA); err != nil {
		t.Fatalf("from another address: %v", err)
	}
}

func TestRequireAppPasswords(t *testing.T) { forEachBackend(t, testRequireAppPasswords) }

func testRequireAppPasswords(t *testing.T) {
	ctx := context.Background()
	for _, require := range []bool{false, true} {
		env, _, _ := newTOTPEnv(t, Options{RequireAppPasswords: require})
		db := env.db
		_, app, err := db.CreateAppPassword(ctx, "bob@example.com", "phone")
		must(t, err)
		_, err = db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA)
		if require && !errors.Is(err, ErrBadCredentials) || !require && err != nil {
			t.Fatalf("require=%v: account password over a protocol = %v", require, err)
		}
		if _, err := db.Authenticate(ctx, "bob@example.com", app, ipA); err != nil {
			t.Fatalf("require=%v: app password = %v", require, err)
		}
		// Users without 2FA keep their account password, and the web
		// login is the account password's.
		if _, err := db.Authenticate(ctx, "eve@example.com", "pw-eve", ipA); err != nil {
			t.Fatalf("require=%v: user without 2FA = %v", require, err)
		}
		if _, err := db.AuthenticateWeb(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
			t.Fatalf("require=%v: web login = %v", require, err)
		}
		if require && !strings.Contains(env.logs.String(), "app passwords are required") {
			t.Fatal("the refusal's reason is not logged")
		}
	}
}
