package auth

import (
	"context"
	"testing"
	"time"
)

// benchDB is a database with the real argon2id parameters and throttling
// off, so the benchmarks measure the password check.
func benchDB(b *testing.B, opts Options) *DB {
	opts.IPMaxFailures, opts.AccountMaxFailures = -1, -1
	env := newTestDB(b, opts)
	env.db.argon = defaultArgon
	if err := env.db.AddDomain(context.Background(), "example.com"); err != nil {
		b.Fatal(err)
	}
	if _, err := env.db.AddUser(context.Background(), "bob@example.com", "pw-bob", 0); err != nil {
		b.Fatal(err)
	}
	return env.db
}

// BenchmarkAuthenticate measures one login: with the credential cache off
// every login verifies argon2id (m=19 MiB, t=2, p=1); with it on, repeated
// logins (an IMAP client's many connections) cost a row lookup and an HMAC.
func BenchmarkAuthenticate(b *testing.B) {
	for _, bc := range []struct {
		name string
		ttl  time.Duration
		user string
		pw   string
	}{
		{"hash", -1, "bob@example.com", "pw-bob"},
		{"hash/unknown-user", -1, "nobody@example.com", "pw-bob"},
		{"hash/wrong-password", -1, "bob@example.com", "nope"},
		{"cached", 0, "bob@example.com", "pw-bob"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			db := benchDB(b, Options{CacheTTL: bc.ttl})
			ctx := context.Background()
			db.Authenticate(ctx, bc.user, bc.pw, ipA) // warm: dummy hash, cache
			b.ResetTimer()
			for b.Loop() {
				db.Authenticate(ctx, bc.user, bc.pw, ipA)
			}
		})
	}
}

// BenchmarkResolve measures a recipient lookup through an alias with a
// +tag, the smtpd RCPT path.
func BenchmarkResolve(b *testing.B) {
	db := benchDB(b, Options{})
	ctx := context.Background()
	if err := db.AddAlias(ctx, "sales@example.com", []string{"bob@example.com", "x@remote.example"}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := db.Resolve(ctx, "Sales+Q3@example.com"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateParallel measures login throughput with every core
// busy: uncached logins are bounded by MaxConcurrentHashes.
func BenchmarkAuthenticateParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"hash", -1}, {"cached", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			db := benchDB(b, Options{CacheTTL: bc.ttl})
			ctx := context.Background()
			db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkBackends compares the backends on the hot paths: a cached login
// with throttling on (what an IMAP client's every connection costs; on
// PostgreSQL the shared throttle adds two short transactions) and a
// recipient lookup.
func BenchmarkBackends(b *testing.B) {
	for _, be := range testBackends {
		b.Run(be.name, func(b *testing.B) {
			b.Run("login-cached", func(b *testing.B) {
				env := newTestDB(b, Options{})
				ctx := context.Background()
				seed(b, env.db, []string{"example.com"}, []string{"bob@example.com"}, nil)
				env.db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA)
				for b.Loop() {
					if _, err := env.db.Authenticate(ctx, "bob@example.com", "pw-bob", ipA); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("resolve", func(b *testing.B) {
				env := newTestDB(b, Options{})
				ctx := context.Background()
				seed(b, env.db, []string{"example.com"}, []string{"bob@example.com"}, map[string][]string{"sales@example.com": {"bob@example.com"}})
				for b.Loop() {
					if _, err := env.db.Resolve(ctx, "sales+q3@example.com"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
