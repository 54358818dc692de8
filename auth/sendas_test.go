package auth

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

func TestSendAsGrants(t *testing.T) { forEachBackend(t, testSendAsGrants) }

func testSendAsGrants(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"example.com", "other.example"}, []string{"bob@example.com", "carol@example.com"}, nil)

	must(t, db.AddSendAs(ctx, "Bob@example.com", "Boss@Example.com"))
	must(t, db.AddSendAs(ctx, "bob@example.com", "bob@Personal.example"))
	must(t, db.AddSendAs(ctx, "carol@example.com", "@other.example"))
	for _, tc := range []struct {
		name, user, addr string
		err              error
	}{
		{"twice", "bob@example.com", "boss@example.com", ErrExists},
		{"no such user", "nobody@example.com", "x@example.com", ErrNoSuchUser},
		{"bad address", "bob@example.com", "not an address", ErrInvalidAddress},
		{"bad domain", "bob@example.com", "@bad_domain", ErrInvalidAddress},
	} {
		t.Run("add "+tc.name, func(t *testing.T) {
			if err := db.AddSendAs(ctx, tc.user, tc.addr); !errors.Is(err, tc.err) {
				t.Fatalf("AddSendAs(%q, %q) = %v, want %v", tc.user, tc.addr, err, tc.err)
			}
		})
	}

	for _, tc := range []struct {
		name, user, from string
		want             bool
	}{
		{"granted address", "bob@example.com", "boss@example.com", true},
		{"granted address other case", "bob@example.com", "BOSS@example.COM", true},
		{"granted address +tag", "bob@example.com", "boss+x@example.com", true},
		{"granted foreign address", "bob@example.com", "bob@personal.example", true},
		{"grant is per user", "carol@example.com", "boss@example.com", false},
		{"domain grant", "carol@example.com", "anyone@other.example", true},
		{"domain grant is not subdomains", "carol@example.com", "x@sub.other.example", false},
		{"no grant", "bob@example.com", "anyone@other.example", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.CanSendAs(ctx, tc.user, tc.from)
			if err != nil || got != tc.want {
				t.Fatalf("CanSendAs(%q, %q) = %v, %v; want %v", tc.user, tc.from, got, err, tc.want)
			}
		})
	}

	gs, err := db.SendAsGrants(ctx, "")
	must(t, err)
	var got [][2]string
	for _, g := range gs {
		got = append(got, [2]string{g.User, g.Address})
	}
	want := [][2]string{{"bob@example.com", "bob@personal.example"}, {"bob@example.com", "boss@example.com"}, {"carol@example.com", "@other.example"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("SendAsGrants = %v, want %v", got, want)
	}
	if gs, err := db.SendAsGrants(ctx, "carol@example.com"); err != nil || len(gs) != 1 || gs[0].Created.IsZero() {
		t.Fatalf("SendAsGrants(carol) = %+v, %v", gs, err)
	}
	if _, err := db.SendAsGrants(ctx, "nobody@example.com"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("SendAsGrants(nobody): %v", err)
	}

	must(t, db.RemoveSendAs(ctx, "bob@example.com", "BOSS@example.com"))
	if ok, _ := db.CanSendAs(ctx, "bob@example.com", "boss@example.com"); ok {
		t.Fatal("grant still in force after RemoveSendAs")
	}
	if err := db.RemoveSendAs(ctx, "bob@example.com", "boss@example.com"); !errors.Is(err, ErrNoSuchGrant) {
		t.Fatalf("second remove: %v", err)
	}
	if err := db.RemoveSendAs(ctx, "nobody@example.com", "boss@example.com"); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("remove for unknown user: %v", err)
	}
	// Grants go with their user.
	must(t, db.RemoveUser(ctx, "carol@example.com"))
	seed(t, db, nil, []string{"carol@example.com"}, nil)
	if ok, _ := db.CanSendAs(ctx, "carol@example.com", "anyone@other.example"); ok {
		t.Fatal("a new user of the same address inherited the removed user's grant")
	}
}

// BenchmarkCanSendAs measures the submission sender check per address:
// the user's own address (no query), a grant (one query), an alias (grant
// query, then the alias expansion), and a refusal (every lookup).
func BenchmarkCanSendAs(b *testing.B) {
	ctx := context.Background()
	env := newTestDB(b, Options{})
	seed(b, env.db, []string{"example.com"}, []string{"bob@example.com", "carol@example.com"}, map[string][]string{
		"sales@example.com": {"bob@example.com", "x@remote.example"},
	})
	must(b, env.db.AddSendAs(ctx, "bob@example.com", "@shared.example"))
	for _, bc := range []struct{ name, from string }{
		{"own", "bob@example.com"},
		{"grant", "help@shared.example"},
		{"alias", "sales@example.com"},
		{"refused", "carol@example.com"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := env.db.CanSendAs(ctx, "bob@example.com", bc.from); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
