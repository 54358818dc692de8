package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
	"github.com/posthouse/posthouse/junk"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/sievestore"
	"github.com/posthouse/posthouse/srs"
)

// TestAdminStoreCopySystem: store copy brings data_dir's user database
// (password hashes, roles, quotas, 2FA with its recovery codes, app
// passwords, aliases, send-as grants), Sieve scripts, DKIM keys, junk
// statistics and SRS key into PostgreSQL, where a node of the postgres backend uses them; a
// second run changes nothing and says so.
func TestAdminStoreCopySystem(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "p.toml")
	if err := os.WriteFile(cfgPath, []byte("hostname = \"mail.a.test\"\ndata_dir = \""+data+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The single node's state.
	users, err := auth.Open(ctx, filepath.Join(data, "users.sqlite"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(users.AddDomain(ctx, "a.test"))
	must(users.AddDomain(ctx, "b.test"))
	_, err = users.AddUser(ctx, "alice@a.test", "alice password 1", 5<<20)
	must(err)
	_, err = users.AddUser(ctx, "bob@b.test", "bob password 2", 0)
	must(err)
	must(users.SetMessageQuota(ctx, "alice@a.test", 500))
	must(users.SetAdmin(ctx, "alice@a.test", true))
	must(users.SetDisabled(ctx, "bob@b.test", true))
	_, appPW, err := users.CreateAppPassword(ctx, "alice@a.test", "phone")
	must(err)
	secret, err := users.NewTOTPSecret()
	must(err)
	code, err := auth.TOTPCode(secret, time.Now())
	must(err)
	recovery, err := users.EnableTOTP(ctx, "alice@a.test", secret, code)
	must(err)
	must(users.AddAlias(ctx, "team@a.test", []string{"alice@a.test", "bob@b.test"}))
	must(users.AddSendAs(ctx, "alice@a.test", "@b.test"))
	must(users.Close())

	sv, err := sievestore.Open(ctx, filepath.Join(data, "sieve.sqlite"), sievestore.Options{})
	must(err)
	must(sv.Put(ctx, "alice@a.test", "main", []byte("keep;\n")))
	must(sv.SetActive(ctx, "alice@a.test", "main"))
	must(sv.Close())

	q, err := queue.Open(ctx, queue.Options{DataDir: data, Hostname: "mail.a.test"})
	must(err)
	key, err := q.DKIM().Generate(ctx, "a.test", "", dkim.AlgorithmEd25519)
	must(err)
	must(q.Close())

	srsKey, err := srs.LoadKey(filepath.Join(data, "srs.key"))
	must(err)

	jdb, err := junk.OpenDB(ctx, filepath.Join(data, "junk.sqlite"), junk.DBOptions{})
	must(err)
	_, err = jdb.Learn(ctx, "alice@a.test", junk.MessageKey{1}, junk.Spam, []uint64{7, 8, 9})
	must(err)
	must(jdb.Close())

	dsn := pgtest.NewDatabase(t)
	copyCmd := func(want ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(ctx, []string{"admin", "--config", cfgPath, "store", "copy", "--to", dsn}, strings.NewReader(""), &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
		}
		for _, w := range want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("want %q in stdout:\n%s", w, stdout.String())
			}
		}
	}
	copyCmd("user database: copied 2 domains, 2 users (1 app passwords), 1 aliases, 1 send-as grants",
		"Sieve scripts: copied 1 scripts", "DKIM keys: copied 1", "junk filter statistics: copied 1 accounts (3 features)", "SRS key: copied")
	copyCmd("user database: nothing to copy", "Sieve scripts: nothing to copy", "DKIM keys: nothing to copy", "junk filter statistics: nothing to copy", "SRS key: nothing to copy")

	// What a node of the postgres backend sees.
	pool, err := pgdb.Open(ctx, dsn)
	must(err)
	defer pool.Close()
	db, err := auth.OpenPostgres(ctx, pool, auth.Options{})
	must(err)
	defer db.Close()
	remote := netip.MustParseAddr("127.0.0.1")
	u, err := db.Authenticate(ctx, "alice@a.test", "alice password 1", remote)
	if err != nil || u.QuotaBytes != 5<<20 || u.QuotaMessages != 500 || !u.Admin || !u.TOTP {
		t.Errorf("alice on PostgreSQL: %+v, %v", u, err)
	}
	if _, err := db.Authenticate(ctx, "alice@a.test", appPW, remote); err != nil {
		t.Errorf("alice's app password on PostgreSQL: %v", err)
	}
	if err := db.VerifySecondFactor(ctx, "alice@a.test", recovery[0], remote); err != nil {
		t.Errorf("alice's recovery code on PostgreSQL: %v", err)
	}
	if _, err := db.Authenticate(ctx, "bob@b.test", "bob password 2", remote); err == nil {
		t.Error("bob, disabled, logs in on PostgreSQL")
	}
	res, err := db.Resolve(ctx, "team@a.test")
	if err != nil || len(res.Local) != 2 {
		t.Errorf("team@a.test on PostgreSQL: %+v, %v", res, err)
	}
	if ok, err := db.CanSendAs(ctx, "alice@a.test", "x@b.test"); !ok || err != nil {
		t.Errorf("alice's send-as grant on PostgreSQL: %v, %v", ok, err)
	}
	pgSieve, err := sievestore.OpenPostgres(ctx, pool, sievestore.Options{})
	must(err)
	defer pgSieve.Close()
	if name, _, err := pgSieve.Active(ctx, "alice@a.test"); name != "main" || err != nil {
		t.Errorf("alice's active script on PostgreSQL: %q, %v", name, err)
	}
	keys, err := dkim.OpenPostgresKeys(ctx, pool, nil)
	must(err)
	defer keys.Close()
	if ks, err := keys.List(ctx, "a.test"); err != nil || len(ks) != 1 || ks[0].TXTValue() != key.TXTValue() {
		t.Errorf("DKIM keys on PostgreSQL: %+v, %v", ks, err)
	}
	pgJunk, err := junk.OpenDBPostgres(ctx, pool, junk.DBOptions{})
	must(err)
	defer pgJunk.Close()
	if st, err := pgJunk.Stats(ctx, "alice@a.test"); err != nil || st.Spam != 1 || st.Tokens != 3 {
		t.Errorf("junk statistics on PostgreSQL: %+v, %v", st, err)
	}
	if k, _, err := srs.LoadKeyPostgres(ctx, pool, nil); err != nil || !bytes.Equal(k, srsKey) {
		t.Errorf("SRS key on PostgreSQL %s, %v; want %s", hex.EncodeToString(k), err, hex.EncodeToString(srsKey))
	}
}
