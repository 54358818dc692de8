package srs

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestLoadKeyPostgres: nodes starting at once on one database agree on one
// key; a seed given later (another node's old srs.key) does not replace
// it; an address one node makes, another verifies.
func TestLoadKeyPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	pools := make([]*pgxpool.Pool, 4)
	for i := range pools {
		p, err := pgdb.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	keys := make([][]byte, len(pools))
	stored := make([]bool, len(pools))
	errs := make([]error, len(pools))
	var wg sync.WaitGroup
	for i := range pools {
		wg.Go(func() { keys[i], stored[i], errs[i] = LoadKeyPostgres(ctx, pools[i], nil) })
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if errs[i] != nil || len(keys[i]) != keyLen || !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("node %d: %x, %v; want one shared 32-byte key", i, keys[i], errs[i])
		}
		if stored[i] {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d nodes stored a key, want 1", n)
	}
	again, st, err := LoadKeyPostgres(ctx, pools[1], testKey)
	if err != nil || st || !bytes.Equal(again, keys[0]) {
		t.Fatalf("with a seed later: %x stored=%v %v; want the first key kept", again, st, err)
	}
	a, _ := newTest(t, "fwd.test", keys[0])
	b, _ := newTest(t, "fwd.test", again)
	addr, err := a.Forward("alice@orig.test")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Reverse(addr); err != nil || got != "alice@orig.test" {
		t.Fatalf("node B reverses A's %s to %q, %v", addr, got, err)
	}
}

// TestLoadKeyPostgresSeed: the first node after the move brings its file's
// key, so addresses made before stay valid.
func TestLoadKeyPostgresSeed(t *testing.T) {
	ctx := context.Background()
	pool, err := pgdb.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	k, st, err := LoadKeyPostgres(ctx, pool, testKey)
	if err != nil || !st || !bytes.Equal(k, testKey) {
		t.Fatalf("%x stored=%v %v; want the seed stored", k, st, err)
	}
	if _, _, err := LoadKeyPostgres(ctx, pool, []byte("short")); err == nil {
		t.Error("a short seed was accepted")
	}
}
