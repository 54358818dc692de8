package dkim_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/queue"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newKeys returns the key store of a fresh queue database, so the tests
// run against the table the queue's migrations really create.
func newKeys(t *testing.T) *dkim.Keys {
	t.Helper()
	return queueKeys(t, nil)
}

// queueKeys returns the key store of a new queue, on pool's PostgreSQL
// database when pool is not nil (a node of the postgres backend).
func queueKeys(t *testing.T, pool *pgxpool.Pool) *dkim.Keys {
	t.Helper()
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	q, err := queue.Open(context.Background(), queue.Options{
		DataDir:  t.TempDir(),
		Hostname: "mail.a.test",
		Now:      func() time.Time { return now },
		Postgres: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q.DKIM()
}

// pgNodes opens n pools on one new PostgreSQL database: n nodes.
func pgNodes(t *testing.T, n int) []*pgxpool.Pool {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	var pools []*pgxpool.Pool
	for range n {
		pool, err := pgdb.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		pools = append(pools, pool)
	}
	return pools
}

// TestKeys runs on queue.sqlite and on PostgreSQL (the postgres backend).
func TestKeys(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testKeys(t, newKeys(t)) })
	t.Run("postgres", func(t *testing.T) { testKeys(t, queueKeys(t, pgNodes(t, 1)[0])) })
}

// TestKeysTwoNodes: with the postgres backend, a key generated through
// one node's queue (admin dkim generate on A) is listed and signs on
// another's, and removing it on B removes it for A.
func TestKeysTwoNodes(t *testing.T) {
	pools := pgNodes(t, 2)
	a, b := queueKeys(t, pools[0]), queueKeys(t, pools[1])
	ctx := context.Background()
	k, err := a.Generate(ctx, "a.test", "", dkim.AlgorithmEd25519)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := b.List(ctx, "a.test")
	if err != nil || len(keys) != 1 || keys[0].Selector != k.Selector {
		t.Fatalf("node B lists %+v, %v; want the key made on A", keys, err)
	}
	msg := "From: <alice@a.test>\r\nSubject: x\r\n\r\nbody\r\n"
	sig, err := dkim.Sign(strings.NewReader(msg), keys)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, error) {
		if strings.TrimSuffix(name, ".") == k.TXTName() {
			return []string{k.TXTValue()}, nil
		}
		return nil, errors.New("no such record")
	}
	vs, err := msgauth.VerifyWithOptions(strings.NewReader(sig+msg), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("B's signature with A's key does not verify against A's record: %v %+v", err, vs)
	}
	if _, err := b.Generate(ctx, "a.test", k.Selector, dkim.AlgorithmEd25519); !errors.Is(err, dkim.ErrExists) {
		t.Errorf("same selector on B: %v, want ErrExists", err)
	}
	if err := b.Remove(ctx, "a.test", k.Selector); err != nil {
		t.Fatal(err)
	}
	if keys, _ := a.List(ctx, ""); len(keys) != 0 {
		t.Errorf("A still lists %d keys after B removed it", len(keys))
	}
}

func testKeys(t *testing.T, ks *dkim.Keys) {
	ctx := context.Background()
	ed, err := ks.Generate(ctx, "A.Test.", "", dkim.AlgorithmEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if ed.Domain != "a.test" || ed.Selector != "ed202611" {
		t.Errorf("key %s/%s, want a.test/ed202611", ed.Domain, ed.Selector)
	}
	if _, err := ks.Generate(ctx, "a.test", "", ""); err != nil { // RSA by default
		t.Fatal(err)
	}
	if _, err := ks.Generate(ctx, "b.test", "sel", dkim.AlgorithmEd25519); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, domain, selector, algorithm string
		want                              error
	}{
		{name: "duplicate selector", domain: "a.test", selector: "ED202611", algorithm: dkim.AlgorithmEd25519, want: dkim.ErrExists},
		{name: "domain without a dot", domain: "localhost", algorithm: dkim.AlgorithmEd25519},
		{name: "selector with a space", domain: "a.test", selector: "a b", algorithm: dkim.AlgorithmEd25519},
		{name: "unknown algorithm", domain: "a.test", selector: "x", algorithm: "dsa"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ks.Generate(ctx, tc.domain, tc.selector, tc.algorithm)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	keys, err := ks.List(ctx, "a.test")
	if err != nil || len(keys) != 2 || keys[0].Selector != "ed202611" || keys[1].Selector != "rsa202611" {
		t.Fatalf("list a.test: %+v %v", keys, err)
	}
	if all, err := ks.List(ctx, ""); err != nil || len(all) != 3 {
		t.Fatalf("list all: %d keys, %v", len(all), err)
	}
	if err := ks.Remove(ctx, "b.test", "sel"); err != nil {
		t.Fatal(err)
	}
	if err := ks.Remove(ctx, "b.test", "sel"); !errors.Is(err, dkim.ErrNoSuchKey) {
		t.Errorf("second remove: %v", err)
	}
}

func TestZoneRecordSplitsLongStrings(t *testing.T) {
	k, err := newKeys(t).Generate(context.Background(), "a.test", "s", dkim.AlgorithmRSA)
	if err != nil {
		t.Fatal(err)
	}
	z := k.ZoneRecord()
	if !strings.HasPrefix(z, "s._domainkey.a.test. 3600 IN TXT \"v=DKIM1; k=rsa; p=") {
		t.Errorf("record %q", z)
	}
	for _, part := range strings.Split(z[strings.Index(z, `"`):], `" "`) {
		if n := len(strings.Trim(part, `"`)); n > 255 {
			t.Errorf("a string of %d bytes in %q", n, z)
		}
	}
}

func TestSigningDomain(t *testing.T) {
	tests := []struct{ name, header, envFrom, want string }{
		{name: "header From", header: "From: Alice <alice@A.test>\r\nSubject: x\r\n", envFrom: "bounce@b.test", want: "a.test"},
		{name: "no From: envelope sender", header: "Subject: x\r\n", envFrom: "bob@B.test", want: "b.test"},
		{name: "unparsable From", header: "From: <<>>\r\n", envFrom: "bob@b.test", want: "b.test"},
		{name: "neither", header: "Subject: x\r\n", envFrom: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := dkim.SigningDomain([]byte(tc.header), tc.envFrom); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSignVerifies signs with both algorithms and checks the signatures
// with go-msgauth's verifier: valid, From oversigned, and broken by a
// second From added in transit (RFC 6376 §8.15).
func TestSignVerifies(t *testing.T) {
	ks := newKeys(t)
	ctx := context.Background()
	txt := map[string]string{}
	for _, algo := range []string{dkim.AlgorithmEd25519, dkim.AlgorithmRSA} {
		k, err := ks.Generate(ctx, "a.test", "", algo)
		if err != nil {
			t.Fatal(err)
		}
		txt[k.TXTName()] = k.TXTValue()
	}
	keys, err := ks.List(ctx, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: Alice <alice@a.test>\r\nTo: <bob@b.test>\r\nSubject: hello\r\n\r\nHi Bob.\r\n"
	sig, err := dkim.Sign(strings.NewReader(msg), keys)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, error) {
		if v, ok := txt[strings.TrimSuffix(name, ".")]; ok {
			return []string{v}, nil
		}
		return nil, errors.New("no such record")
	}
	signed := sig + msg
	vs, err := msgauth.VerifyWithOptions(strings.NewReader(signed), &msgauth.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(vs) != 2 {
		t.Fatalf("%d verifications, %v:\n%s", len(vs), err, signed)
	}
	for _, v := range vs {
		if v.Err != nil || v.Domain != "a.test" {
			t.Errorf("signature %s: %v", v.Domain, v.Err)
		}
		if n := strings.Count(strings.ToLower(strings.Join(v.HeaderKeys, ":")), "from"); n != 2 {
			t.Errorf("From signed %d times, want 2 (oversigned)", n)
		}
	}
	vs, _ = msgauth.VerifyWithOptions(bytes.NewReader(append([]byte("From: mallory@evil.test\r\n"), signed...)), &msgauth.VerifyOptions{LookupTXT: lookup})
	for _, v := range vs {
		if v.Err == nil {
			t.Error("signature still valid with an added From")
		}
	}
}
