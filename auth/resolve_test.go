package auth

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) { forEachBackend(t, testResolve) }

func testResolve(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	// A long chain a0 → a1 → … → a9 → bob is deeper than MaxAliasDepth.
	chain := map[string][]string{}
	for i := 0; i < MaxAliasDepth+2; i++ {
		next := fmt.Sprintf("chain%d@deep.example", i+1)
		if i == MaxAliasDepth+1 {
			next = "bob@example.com"
		}
		chain[fmt.Sprintf("chain%d@deep.example", i)] = []string{next}
	}
	aliases := map[string][]string{
		"sales@example.com":    {"bob@example.com", "carol@example.com"},
		"team@example.com":     {"sales@example.com", "bob+x@example.com", "dave@remote.example"},
		"fwd@example.com":      {"Dave@Remote.example", "erin@remote.example"},
		"diamond@example.com":  {"sales@example.com", "team@example.com"},
		"ping@example.com":     {"pong@example.com"},
		"pong@example.com":     {"ping@example.com", "carol@example.com"},
		"selfish@example.com":  {"selfish@example.com"},
		"loop1@example.com":    {"loop2@example.com"},
		"loop2@example.com":    {"loop1@example.com"},
		"dangling@example.com": {"gone@example.com", "bob@example.com"},
		"allgone@example.com":  {"gone@example.com"},
		"bob+x@example.com":    {"carol@example.com"}, // exact alias beats the +tag rule
		"@catch.example":       {"bob@example.com"},
		"known@catch.example":  {"carol@example.com"},
	}
	for k, v := range chain {
		aliases[k] = v
	}
	seed(t, db, []string{"example.com", "catch.example", "deep.example"},
		[]string{"bob@example.com", "carol@example.com", "frank@catch.example", "disabled@example.com"}, aliases)
	must(t, db.SetDisabled(ctx, "disabled@example.com", true))

	tests := []struct {
		name          string
		address       string
		local, remote []string
		err           error
	}{
		{"user", "bob@example.com", []string{"bob@example.com"}, nil, nil},
		{"user any case", "BOB@Example.COM", []string{"bob@example.com"}, nil, nil},
		{"disabled user still receives", "disabled@example.com", []string{"disabled@example.com"}, nil, nil},
		{"sub-address", "carol+lists@example.com", []string{"carol@example.com"}, nil, nil},
		{"exact alias before +tag", "bob+x@example.com", []string{"carol@example.com"}, nil, nil},
		{"alias", "sales@example.com", []string{"bob@example.com", "carol@example.com"}, nil, nil},
		{"alias +tag", "sales+q3@example.com", []string{"bob@example.com", "carol@example.com"}, nil, nil},
		{"nested alias with foreign target", "team@example.com", []string{"bob@example.com", "carol@example.com"}, []string{"dave@remote.example"}, nil},
		{"foreign targets normalized", "fwd@example.com", nil, []string{"dave@remote.example", "erin@remote.example"}, nil},
		{"diamond deduplicated", "diamond@example.com", []string{"bob@example.com", "carol@example.com"}, []string{"dave@remote.example"}, nil},
		{"loop with a way out", "ping@example.com", []string{"carol@example.com"}, nil, nil},
		{"self loop", "selfish@example.com", nil, nil, ErrAliasLoop},
		{"two-alias loop", "loop1@example.com", nil, nil, ErrAliasLoop},
		{"chain too deep", "chain0@deep.example", nil, nil, ErrAliasLoop},
		{"chain within limit", fmt.Sprintf("chain%d@deep.example", 2), []string{"bob@example.com"}, nil, nil},
		{"dangling target skipped", "dangling@example.com", []string{"bob@example.com"}, nil, nil},
		{"only dangling targets", "allgone@example.com", nil, nil, ErrNoSuchUser},
		{"catch-all", "anything@catch.example", []string{"bob@example.com"}, nil, nil},
		{"catch-all after user", "frank@catch.example", []string{"frank@catch.example"}, nil, nil},
		{"catch-all after alias", "known@catch.example", []string{"carol@example.com"}, nil, nil},
		{"catch-all after +tag", "frank+x@catch.example", []string{"frank@catch.example"}, nil, nil},
		{"unknown local", "nobody@example.com", nil, nil, ErrNoSuchUser},
		{"unknown local +tag", "nobody+x@example.com", nil, nil, ErrNoSuchUser},
		{"foreign domain", "bob@remote.example", nil, nil, ErrNotLocal},
		{"subdomain is foreign", "bob@sub.example.com", nil, nil, ErrNotLocal},
		{"invalid", "bob@", nil, nil, ErrInvalidAddress},
		{"catch-all form is no address", "@catch.example", nil, nil, ErrInvalidAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := db.Resolve(ctx, tc.address)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Resolve(%q) error %v, want %v", tc.address, err, tc.err)
			}
			if !reflect.DeepEqual(r.Local, tc.local) || !reflect.DeepEqual(r.Remote, tc.remote) {
				t.Fatalf("Resolve(%q) = %+v, want local %v remote %v", tc.address, r, tc.local, tc.remote)
			}
		})
	}
	if logs := env.logs.String(); !strings.Contains(logs, "alias loop") || !strings.Contains(logs, "gone@example.com") {
		t.Errorf("loop and dangling target not logged:\n%s", logs)
	}
}

func TestIsLocalDomain(t *testing.T) { forEachBackend(t, testIsLocalDomain) }

func testIsLocalDomain(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, nil, nil)
	for _, tc := range []struct {
		name, domain string
		want         bool
	}{
		{"ours", "example.com", true},
		{"ours upper case", "EXAMPLE.COM", true},
		{"foreign", "example.org", false},
		{"subdomain", "mail.example.com", false},
		{"malformed", "exa mple.com", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := env.db.IsLocalDomain(ctx, tc.domain)
			if err != nil || got != tc.want {
				t.Fatalf("IsLocalDomain(%q) = %v, %v", tc.domain, got, err)
			}
		})
	}
}

func TestCanSendAs(t *testing.T) { forEachBackend(t, testCanSendAs) }

func testCanSendAs(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	seed(t, env.db, []string{"example.com"}, []string{"bob@example.com", "carol@example.com"}, map[string][]string{
		"sales@example.com": {"bob@example.com", "x@remote.example"},
		"team@example.com":  {"sales@example.com"},
		"loop@example.com":  {"loop@example.com"},
		"@example.com":      {"bob@example.com"},
	})
	for _, tc := range []struct {
		name, user, from string
		want             bool
	}{
		{"own address", "bob@example.com", "bob@example.com", true},
		{"own address other case", "Bob@example.com", "BOB@EXAMPLE.COM", true},
		{"own +tag", "bob@example.com", "bob+news@example.com", true},
		{"alias", "bob@example.com", "sales@example.com", true},
		{"alias +tag", "bob@example.com", "sales+x@example.com", true},
		{"nested alias", "bob@example.com", "team@example.com", true},
		{"alias of someone else", "carol@example.com", "sales@example.com", false},
		{"other user", "carol@example.com", "bob@example.com", false},
		{"other user +tag", "carol@example.com", "bob+x@example.com", false},
		{"catch-all grants nothing", "bob@example.com", "random@example.com", false},
		{"foreign address", "bob@example.com", "bob@remote.example", false},
		{"looping alias", "bob@example.com", "loop@example.com", false},
		{"null sender", "bob@example.com", "", false},
		{"malformed", "bob@example.com", "bob@@example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := env.db.CanSendAs(ctx, tc.user, tc.from)
			if err != nil || got != tc.want {
				t.Fatalf("CanSendAs(%q, %q) = %v, %v; want %v", tc.user, tc.from, got, err, tc.want)
			}
		})
	}
}

func TestResolvePostmaster(t *testing.T) { forEachBackend(t, testResolvePostmaster) }

func testResolvePostmaster(t *testing.T) {
	ctx := context.Background()
	env := newTestDB(t, Options{})
	db := env.db
	seed(t, db, []string{"a.example", "b.example", "c.example", "own.example"},
		[]string{"admin@b.example", "pm@own.example"},
		map[string][]string{
			"postmaster@b.example":   {"admin@b.example"},
			"postmaster@own.example": {"pm@own.example"},
			"@c.example":             {"admin@b.example"},
		})
	tests := []struct {
		name, address string
		local         []string
		err           error
	}{
		{"defined", "postmaster@own.example", []string{"pm@own.example"}, nil},
		{"undefined: another domain's postmaster", "Postmaster@a.example", []string{"admin@b.example"}, nil},
		{"catch-all counts as defined", "postmaster@c.example", []string{"admin@b.example"}, nil},
		{"bare postmaster", "POSTMASTER", []string{"admin@b.example"}, nil},
		{"postmaster +tag", "postmaster+x@a.example", nil, ErrNoSuchUser},
		{"foreign domain", "postmaster@remote.example", nil, ErrNotLocal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := db.Resolve(ctx, tc.address)
			if !errors.Is(err, tc.err) || !reflect.DeepEqual(r.Local, tc.local) {
				t.Fatalf("Resolve(%q) = %+v, %v; want %v, %v", tc.address, r, err, tc.local, tc.err)
			}
		})
	}
	// With no postmaster anywhere, the error says so.
	env2 := newTestDB(t, Options{})
	seed(t, env2.db, []string{"a.example"}, nil, nil)
	for _, a := range []string{"postmaster", "postmaster@a.example"} {
		if _, err := env2.db.Resolve(ctx, a); !errors.Is(err, ErrNoSuchUser) {
			t.Fatalf("Resolve(%q) with no postmaster: %v", a, err)
		}
	}
}
