package auth

import (
	"context"
	"errors"
	"os"
	"reflect"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestDomains(t *testing.T) { forEachBackend(t, testDomains) }

func testDomains(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"add", func() error { return db.AddDomain(ctx, "Example.COM") }, nil},
		{"add second", func() error { return db.AddDomain(ctx, "b.example") }, nil},
		{"add duplicate in other case", func() error { return db.AddDomain(ctx, "example.com") }, ErrExists},
		{"add invalid", func() error { return db.AddDomain(ctx, "bad domain") }, ErrInvalidDomain},
		{"add empty", func() error { return db.AddDomain(ctx, "") }, ErrInvalidDomain},
		{"remove unknown", func() error { return db.RemoveDomain(ctx, "nowhere.example", false) }, ErrNoSuchDomain},
		{"remove invalid", func() error { return db.RemoveDomain(ctx, "-x", false) }, ErrInvalidDomain},
		{"remove empty domain", func() error { return db.RemoveDomain(ctx, "B.example", false) }, nil},
		{"remove again", func() error { return db.RemoveDomain(ctx, "b.example", false) }, ErrNoSuchDomain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	ds, err := db.Domains(ctx)
	must(t, err)
	if len(ds) != 1 || ds[0].Name != "example.com" || !ds[0].Created.Equal(env.clock.Now()) {
		t.Fatalf("Domains = %+v", ds)
	}
}

func TestRemoveDomainForce(t *testing.T) { forEachBackend(t, testRemoveDomainForce) }

func testRemoveDomainForce(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"a.example", "b.example"}, []string{"u@a.example", "v@b.example"}, nil)
	must(t, db.AddAlias(ctx, "al@a.example", []string{"u@a.example"}))
	must(t, db.AddAlias(ctx, "@a.example", []string{"u@a.example"}))
	if err := db.RemoveDomain(ctx, "a.example", false); !errors.Is(err, ErrDomainNotEmpty) {
		t.Fatalf("RemoveDomain without force: %v", err)
	}
	must(t, db.RemoveDomain(ctx, "a.example", true))
	if _, err := db.User(ctx, "u@a.example"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("user survived domain removal: %v", err)
	}
	as, err := db.Aliases(ctx, "")
	must(t, err)
	if len(as) != 0 {
		t.Fatalf("aliases survived domain removal: %+v", as)
	}
	if _, err := db.Resolve(ctx, "u@a.example"); !errors.Is(err, ErrNotLocal) {
		t.Fatalf("Resolve after removal: %v", err)
	}
	if _, err := db.User(ctx, "v@b.example"); err != nil {
		t.Fatalf("other domain's user: %v", err)
	}
}

func TestUsers(t *testing.T) { forEachBackend(t, testUsers) }

func testUsers(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com", "other.example"}, nil, nil)
	must(t, db.AddAlias(ctx, "alias@example.com", []string{"x@elsewhere.example"}))
	tests := []struct {
		name, address, password string
		quota                   int64
		want                    error
	}{
		{"add", "Bob@Example.com", "secret", 1000, nil},
		{"add other domain", "carol@other.example", "secret", 0, nil},
		{"duplicate in other case", "BOB@example.com", "x", 0, ErrExists},
		{"alias has the address", "alias@example.com", "x", 0, ErrExists},
		{"unknown domain", "bob@nowhere.example", "x", 0, ErrNoSuchDomain},
		{"empty password", "dave@example.com", "", 0, ErrEmptyPassword},
		{"invalid address", "dave example.com", "x", 0, ErrInvalidAddress},
		{"catch-all form", "@example.com", "x", 0, ErrInvalidAddress},
		{"slash in local part", "a/b@example.com", "x", 0, ErrInvalidAddress},
		{"negative quota", "dave@example.com", "x", -1, ErrInvalidQuota},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := db.AddUser(ctx, tc.address, tc.password, tc.quota)
			if !errors.Is(err, tc.want) {
				t.Fatalf("AddUser: %v, want %v", err, tc.want)
			}
			if err == nil {
				n, _ := NormalizeAddress(tc.address)
				if u.Address != n || u.QuotaBytes != tc.quota || u.ID == 0 || u.Disabled || !u.Created.Equal(env.clock.Now()) {
					t.Fatalf("AddUser returned %+v", u)
				}
				got, err := db.User(ctx, tc.address)
				if err != nil || !reflect.DeepEqual(got, u) {
					t.Fatalf("User = %+v, %v; want %+v", got, err, u)
				}
			}
		})
	}
	list := func(domain string) []string {
		us, err := db.Users(ctx, domain)
		must(t, err)
		var as []string
		for _, u := range us {
			as = append(as, u.Address)
		}
		return as
	}
	if got := list(""); !reflect.DeepEqual(got, []string{"bob@example.com", "carol@other.example"}) {
		t.Fatalf("Users(all) = %v", got)
	}
	if got := list("EXAMPLE.com"); !reflect.DeepEqual(got, []string{"bob@example.com"}) {
		t.Fatalf("Users(example.com) = %v", got)
	}
	if _, err := db.Users(ctx, "nowhere.example"); !errors.Is(err, ErrNoSuchDomain) {
		t.Fatalf("Users(unknown) = %v", err)
	}
}

func TestUserUpdates(t *testing.T) { forEachBackend(t, testUserUpdates) }

func testUserUpdates(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	bcryptHash, err := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	must(t, err)
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"set password", func() error { return db.SetPassword(ctx, "BOB@example.com", "new") }, nil},
		{"set empty password", func() error { return db.SetPassword(ctx, "bob@example.com", "") }, ErrEmptyPassword},
		{"set password unknown", func() error { return db.SetPassword(ctx, "nobody@example.com", "x") }, ErrNoSuchUser},
		{"set password invalid", func() error { return db.SetPassword(ctx, "nobody", "x") }, ErrInvalidAddress},
		{"set quota", func() error { return db.SetQuota(ctx, "bob@example.com", 5<<20) }, nil},
		{"set negative quota", func() error { return db.SetQuota(ctx, "bob@example.com", -5) }, ErrInvalidQuota},
		{"set quota unknown", func() error { return db.SetQuota(ctx, "nobody@example.com", 1) }, ErrNoSuchUser},
		{"set message quota", func() error { return db.SetMessageQuota(ctx, "bob@example.com", 1000) }, nil},
		{"set negative message quota", func() error { return db.SetMessageQuota(ctx, "bob@example.com", -1) }, ErrInvalidQuota},
		{"set message quota unknown", func() error { return db.SetMessageQuota(ctx, "nobody@example.com", 1) }, ErrNoSuchUser},
		{"disable", func() error { return db.SetDisabled(ctx, "bob@example.com", true) }, nil},
		{"disable unknown", func() error { return db.SetDisabled(ctx, "nobody@example.com", true) }, ErrNoSuchUser},
		{"import bcrypt", func() error { return db.SetPasswordHash(ctx, "bob@example.com", string(bcryptHash)) }, nil},
		{"import garbage", func() error { return db.SetPasswordHash(ctx, "bob@example.com", "$1$md5crypt") }, ErrInvalidHash},
		{"import unknown user", func() error { return db.SetPasswordHash(ctx, "nobody@example.com", string(bcryptHash)) }, ErrNoSuchUser},
		{"remove unknown", func() error { return db.RemoveUser(ctx, "nobody@example.com") }, ErrNoSuchUser},
		{"remove invalid", func() error { return db.RemoveUser(ctx, "") }, ErrInvalidAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	u, err := db.User(ctx, "bob@example.com")
	must(t, err)
	if !u.Disabled || u.QuotaBytes != 5<<20 || u.QuotaMessages != 1000 {
		t.Fatalf("User after updates = %+v", u)
	}
	if n, err := db.MessageQuota(ctx, "Bob@example.com"); err != nil || n != 1000 {
		t.Fatalf("MessageQuota = %d, %v", n, err)
	}
	q, err := db.Quota(ctx, "Bob@example.com")
	if err != nil || q != 5<<20 {
		t.Fatalf("Quota = %d, %v", q, err)
	}
	if _, err := db.Quota(ctx, "nobody@example.com"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("Quota(unknown) = %v", err)
	}
	must(t, db.RemoveUser(ctx, "bob@example.com"))
	if _, err := db.User(ctx, "bob@example.com"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("User after RemoveUser: %v", err)
	}
}

func TestAddUserHash(t *testing.T) { forEachBackend(t, testAddUserHash) }

func testAddUserHash(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com"}, nil, nil)
	b, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	must(t, err)
	argon, err := hashPassword("pw", defaultArgon)
	must(t, err)
	huge := "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	tests := []struct {
		name, address, hash string
		want                error
	}{
		{"bcrypt 2a", "a@example.com", string(b), nil},
		{"bcrypt 2y", "b@example.com", "$2y$" + string(b[4:]), nil},
		{"argon2id", "c@example.com", argon, nil},
		{"argon2i refused", "d@example.com", "$argon2i$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ErrInvalidHash},
		{"argon2id memory too high", "d@example.com", huge, ErrInvalidHash},
		{"bcrypt cost too high", "d@example.com", "$2b$31$" + string(b[7:]), ErrInvalidHash},
		{"plain text", "d@example.com", "hunter2", ErrInvalidHash},
		{"empty", "d@example.com", "", ErrInvalidHash},
		{"unknown domain", "d@nowhere.example", string(b), ErrNoSuchDomain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.AddUserHash(ctx, tc.address, tc.hash, 0); !errors.Is(err, tc.want) {
				t.Fatalf("AddUserHash: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAliases(t *testing.T) { forEachBackend(t, testAliases) }

func testAliases(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com", "other.example"}, []string{"bob@example.com", "carol@example.com"}, nil)
	tests := []struct {
		name    string
		address string
		targets []string
		want    error
	}{
		{"simple", "Sales@example.com", []string{"Bob@example.com", " carol@example.com "}, nil},
		{"foreign target", "fwd@example.com", []string{"someone@elsewhere.example"}, nil},
		{"alias of alias and tag", "team@example.com", []string{"sales@example.com", "bob+team@example.com"}, nil},
		{"catch-all", "@Example.com", []string{"bob@example.com"}, nil},
		{"duplicate targets collapse", "dup@example.com", []string{"bob@example.com", "BOB@example.com"}, nil},
		{"exists as alias", "sales@example.com", []string{"bob@example.com"}, ErrExists},
		{"exists as user", "carol@example.com", []string{"bob@example.com"}, ErrExists},
		{"unknown domain", "x@nowhere.example", []string{"bob@example.com"}, ErrNoSuchDomain},
		{"catch-all unknown domain", "@nowhere.example", []string{"bob@example.com"}, ErrNoSuchDomain},
		{"no targets", "empty@example.com", nil, ErrInvalidAddress},
		{"invalid target", "bad@example.com", []string{"not an address"}, ErrInvalidAddress},
		{"catch-all as target", "bad@example.com", []string{"@example.com"}, ErrInvalidAddress},
		{"missing local target", "bad@other.example", []string{"nobody@other.example"}, ErrNoSuchUser},
		{"self loop", "self@other.example", []string{"self@other.example"}, ErrAliasLoop},
		{"invalid address", "bad address@example.com", []string{"bob@example.com"}, ErrInvalidAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.AddAlias(ctx, tc.address, tc.targets); !errors.Is(err, tc.want) {
				t.Fatalf("AddAlias: %v, want %v", err, tc.want)
			}
		})
	}
	// A two-step loop: ping → pong is fine, pong → ping closes the loop.
	must(t, db.AddAlias(ctx, "ping@other.example", []string{"x@elsewhere.example"}))
	must(t, db.AddAlias(ctx, "pong@other.example", []string{"ping@other.example"}))
	must(t, db.RemoveAlias(ctx, "ping@other.example"))
	if err := db.AddAlias(ctx, "ping@other.example", []string{"pong@other.example"}); !errors.Is(err, ErrAliasLoop) {
		t.Fatalf("two-step loop: %v", err)
	}
	as, err := db.Aliases(ctx, "example.com")
	must(t, err)
	want := []Alias{
		{"@example.com", []string{"bob@example.com"}},
		{"dup@example.com", []string{"bob@example.com"}},
		{"fwd@example.com", []string{"someone@elsewhere.example"}},
		{"sales@example.com", []string{"bob@example.com", "carol@example.com"}},
		{"team@example.com", []string{"sales@example.com", "bob+team@example.com"}},
	}
	if !reflect.DeepEqual(as, want) {
		t.Fatalf("Aliases = %+v\nwant %+v", as, want)
	}
	all, err := db.Aliases(ctx, "")
	must(t, err)
	if len(all) != len(want)+1 {
		t.Fatalf("Aliases(all) = %+v", all)
	}
	if _, err := db.Aliases(ctx, "nowhere.example"); !errors.Is(err, ErrNoSuchDomain) {
		t.Fatalf("Aliases(unknown) = %v", err)
	}
	for _, tc := range []struct {
		name, address string
		want          error
	}{
		{"remove", "SALES@example.com", nil},
		{"remove catch-all", "@example.com", nil},
		{"remove again", "sales@example.com", ErrNoSuchAlias},
		{"remove user address", "bob@example.com", ErrNoSuchAlias},
		{"remove invalid", "a b@example.com", ErrInvalidAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := db.RemoveAlias(ctx, tc.address); !errors.Is(err, tc.want) {
				t.Fatalf("RemoveAlias: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFileMode(t *testing.T) {
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
	for _, p := range []string{env.path, env.path + "-wal", env.path + "-shm"} {
		fi, err := os.Stat(p)
		must(t, err)
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
}
