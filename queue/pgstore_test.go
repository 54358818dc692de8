package queue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// pgPool opens a pool on a fresh database, closed when the test ends.
func pgPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgdb.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func pgNode(t *testing.T, pool *pgxpool.Pool, node string, lease time.Duration) *pgStore {
	t.Helper()
	s, err := openPG(context.Background(), pool, node, lease)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pgEnqueue(t *testing.T, s *pgStore, id string, body []byte, rcpts ...string) {
	t.Helper()
	rows := &queuedRows{id: id, from: "a@here.example", size: int64(len(body)), created: time.Now().UnixNano()}
	for _, r := range rcpts {
		rows.rcpts = append(rows.rcpts, [2]string{r, r[bytes.IndexByte([]byte(r), '@')+1:]})
	}
	if err := s.enqueue(context.Background(), rows, bytes.NewReader(body), nil); err != nil {
		t.Fatal(err)
	}
}

func TestPGBodyChunks(t *testing.T) {
	ctx := context.Background()
	s := pgNode(t, pgPool(t, pgtest.NewDatabase(t)), "a", 0)
	body := bytes.Repeat([]byte("0123456789abcdef\r\n"), 3*pgChunkSize/18+7) // four chunks, the last partial
	id := newID()
	var signedSize int64
	var head []byte
	rows := &queuedRows{id: id, from: "a@here.example", size: int64(len(body)), created: 1,
		rcpts: [][2]string{{"x@there.example", "there.example"}}}
	err := s.enqueue(ctx, rows, bytes.NewReader(body), func(r io.ReadSeeker, size int64) error {
		signedSize = size
		head = make([]byte, 10)
		if _, err := r.Seek(pgChunkSize-5, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.ReadFull(r, head); err != nil { // across a chunk boundary
			return err
		}
		rows.dkim = "DKIM-Signature: x\r\n"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if signedSize != int64(len(body)) || !bytes.Equal(head, body[pgChunkSize-5:pgChunkSize+5]) {
		t.Fatalf("fill saw size %d head %q", signedSize, head)
	}
	var chunks int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM queue_bodies WHERE message_id = $1`, id).Scan(&chunks); err != nil {
		t.Fatal(err)
	}
	if want := (len(body) + pgChunkSize - 1) / pgChunkSize; chunks != want {
		t.Errorf("%d chunks, want %d", chunks, want)
	}
	b, err := s.openBody(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body read back: %d bytes (want %d), err %v", len(got), len(body), err)
	}
	m, err := s.get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Signed || len(m.Recipients) != 1 || m.Recipients[0].State != StatePending || m.Size != int64(len(body)) {
		t.Errorf("get: %+v", m)
	}
	if err := s.remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM queue_bodies WHERE message_id = $1`, id).Scan(&chunks); err != nil || chunks != 0 {
		t.Errorf("after remove: %d chunks left, err %v", chunks, err)
	}
	if err := s.remove(ctx, id); err != ErrNotFound {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
}

// A failed Enqueue (the body's reader fails) leaves nothing behind.
func TestPGEnqueueAtomic(t *testing.T) {
	ctx := context.Background()
	s := pgNode(t, pgPool(t, pgtest.NewDatabase(t)), "a", 0)
	rows := &queuedRows{id: newID(), from: "", size: 1, created: 1, rcpts: [][2]string{{"x@y.example", "y.example"}}}
	r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), pgChunkSize+10)), errReader{})
	if err := s.enqueue(ctx, rows, r, nil); err == nil {
		t.Fatal("enqueue with a failing body succeeded")
	}
	var n int
	s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM queue_bodies) + (SELECT count(*) FROM queue_messages)`).Scan(&n)
	if n != 0 {
		t.Errorf("%d rows left behind", n)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }

// Two nodes claiming at once from separate pools never get the same job,
// and between them get every due job.
func TestPGClaimExclusive(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	a := pgNode(t, pgPool(t, dsn), "a", time.Hour)
	b := pgNode(t, pgPool(t, dsn), "b", time.Hour)
	const n = 120
	want := map[job]bool{}
	for i := 0; i < n; i++ {
		id := newID()
		// Two domains per message: two jobs.
		pgEnqueue(t, a, id, []byte("Subject: x\r\n\r\nhi\r\n"), "r1@one.example", "r2@one.example", "r3@two.example")
		want[job{id, "one.example"}] = true
		want[job{id, "two.example"}] = true
	}
	// One far-future message is not due.
	future := &queuedRows{id: newID(), from: "", created: time.Now().Add(time.Hour).UnixNano(), rcpts: [][2]string{{"z@one.example", "one.example"}}}
	if err := a.enqueue(ctx, future, bytes.NewReader([]byte("x\r\n")), nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[job]string{}
	var wg sync.WaitGroup
	for _, s := range []*pgStore{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				jobs, err := s.claim(ctx, time.Now().UnixNano(), nil, 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if prev, dup := got[j]; dup {
						t.Errorf("job %v claimed by %s and %s", j, prev, s.node)
					}
					got[j] = s.node
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != len(want) {
		t.Errorf("%d jobs claimed, want %d", len(got), len(want))
	}
	for j := range want {
		if _, ok := got[j]; !ok {
			t.Errorf("job %v never claimed", j)
		}
	}
	// Held claims are not offered again.
	if jobs, err := b.claim(ctx, time.Now().UnixNano(), nil, 1000); err != nil || len(jobs) != 0 {
		t.Errorf("claim again: %v, %v", jobs, err)
	}
}

// A node that stops renewing (it died) loses its claims after the lease,
// and another node then takes them; the dead node's late writes find no
// claim. A renewing node keeps its claims.
func TestPGLeaseTakeover(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	poolA, err := pgdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	const lease = time.Second
	a := pgNode(t, poolA, "a", lease)
	b := pgNode(t, pgPool(t, dsn), "b", lease)
	c := pgNode(t, pgPool(t, dsn), "c", time.Hour)
	idA, idC := newID(), newID()
	pgEnqueue(t, a, idA, []byte("x\r\n"), "r@dead.example")
	ja, err := a.claim(ctx, time.Now().UnixNano(), nil, 10)
	if err != nil || len(ja) != 1 {
		t.Fatalf("a claims %v, %v", ja, err)
	}
	pgEnqueue(t, c, idC, []byte("x\r\n"), "r@live.example")
	jc, err := c.claim(ctx, time.Now().UnixNano(), nil, 10)
	if err != nil || len(jc) != 1 || jc[0].id != idC {
		t.Fatalf("c claims %v, %v", jc, err)
	}
	if rs, err := a.startAttempt(ctx, ja[0], time.Now().UnixNano(), 0); err != nil || len(rs) != 1 {
		t.Fatalf("a starts: %v, %v", rs, err)
	}
	poolA.Close() // a dies mid-delivery, claims held

	var jb []job
	for deadline := time.Now().Add(30 * time.Second); len(jb) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("b never took over a's claim")
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := c.renew(ctx); err != nil {
			t.Fatal(err)
		}
		jb, err = b.claim(ctx, time.Now().UnixNano(), nil, 10)
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(jb) != 1 || jb[0] != ja[0] {
		t.Fatalf("b took %v, want %v only (c's renewed claim stays c's)", jb, ja)
	}
	// a's attempt had moved next_attempt to 0 (due); b's attempt runs.
	rs, err := b.startAttempt(ctx, jb[0], time.Now().UnixNano(), time.Now().Add(time.Hour).UnixNano())
	if err != nil || len(rs) != 1 || rs[0].attempts != 1 {
		t.Fatalf("b starts: %v, %v", rs, err)
	}
	// A stale holder under a's name (its pool gone, a new one) holds nothing.
	a2 := pgNode(t, pgPool(t, dsn), "a", lease)
	if ok, err := a2.holds(ctx, ja[0]); err != nil || ok {
		t.Errorf("a still holds the job: %v, %v", ok, err)
	}
	if rs, err := a2.startAttempt(ctx, ja[0], time.Now().Add(2*time.Hour).UnixNano(), 0); err != nil || len(rs) != 0 {
		t.Errorf("a starts again without its claim: %v, %v", rs, err)
	}
	fin, err := b.record(ctx, idA, []recordRow{{rcpt: "r@dead.example", state: string(StateDelivered), reply: "250 ok", remote: "mx"}})
	if err != nil || !fin {
		t.Fatalf("record: finished %v, %v", fin, err)
	}
	if ok, _ := b.holds(ctx, jb[0]); ok {
		t.Error("claim outlived its message")
	}
	if _, err := b.renew(ctx); err != nil || !b.leaseValid(0) {
		t.Errorf("b's lease invalid right after renewing: %v", err)
	}
}

// Two nodes work the same queue the way the scheduler does (claim, start
// the attempt, deliver, record, release) into one receiver; one of them
// dies after starting its attempts. Every message reaches the receiver
// exactly once: the dead node's after its lease ran out.
func TestPGTwoNodesExactlyOnce(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	poolA, err := pgdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	const lease = time.Second
	a := pgNode(t, poolA, "a", lease)
	b := pgNode(t, pgPool(t, dsn), "b", lease)
	const n = 60
	for i := 0; i < n; i++ {
		pgEnqueue(t, a, newID(), []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)), fmt.Sprintf("u%d@remote.example", i))
	}
	var mu sync.Mutex
	received := map[string]int{}
	deliver := func(s *pgStore, j job) error {
		rs, err := s.startAttempt(ctx, j, time.Now().UnixNano(), time.Now().Add(time.Hour).UnixNano())
		if err != nil {
			return err
		}
		body, err := s.openBody(ctx, j.id)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		var res []recordRow
		for _, r := range rs {
			if !s.leaseValid(lease / 4) {
				return nil // not sure the claim is ours: leave it
			}
			mu.Lock()
			received[string(data)]++
			mu.Unlock()
			res = append(res, recordRow{rcpt: r.rcpt, state: string(StateDelivered), reply: "250 ok"})
		}
		if _, err := s.record(ctx, j.id, res); err != nil {
			return err
		}
		return s.release(ctx, j)
	}
	// a claims a batch and starts its attempts, then dies before sending.
	ja, err := a.claim(ctx, time.Now().UnixNano(), nil, 10)
	if err != nil || len(ja) != 10 {
		t.Fatalf("a claims %d, %v", len(ja), err)
	}
	for _, j := range ja[:5] {
		if _, err := a.startAttempt(ctx, j, time.Now().UnixNano(), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range ja[5:7] {
		if err := deliver(a, j); err != nil {
			t.Fatal(err)
		}
	}
	poolA.Close()
	// b drains the queue, taking a's claims once their lease runs out.
	for deadline := time.Now().Add(60 * time.Second); ; {
		var left int
		if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM queue_messages`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages never delivered", left)
		}
		if _, err := b.renew(ctx); err != nil {
			t.Fatal(err)
		}
		jobs, err := b.claim(ctx, time.Now().UnixNano(), nil, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if err := deliver(b, j); err != nil {
				t.Fatal(err)
			}
		}
		if len(jobs) == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(received) != n {
		t.Errorf("%d distinct messages received, want %d", len(received), n)
	}
	for body, k := range received {
		if k != 1 {
			t.Errorf("message %q received %d times", body, k)
		}
	}
}

// TestOnPostgres runs the queue's behaviour tests again with the messages
// in PostgreSQL. Left out: the tests of queue.sqlite and spool files
// themselves (file modes, group commit, fsync and reaping), and
// TestIdleConnectionTakesNextMessage, whose one-connection count depends on
// the connection going idle before the test enqueues the next message:
// recording in PostgreSQL takes longer than in SQLite and the scheduler
// then opens a second connection (a timing matter, not a loss or a
// duplicate).
func TestOnPostgres(t *testing.T) {
	pgtest.Shared(t) // skips when PostgreSQL is not installed
	tests := map[string]func(*testing.T){
		"Deliver":                          TestDeliver,
		"MXOrderAndFallback":               TestMXOrderAndFallback,
		"PermanentWithoutConnecting":       TestPermanentWithoutConnecting,
		"MXLoopsBackToUs":                  TestMXLoopsBackToUs,
		"RetryThenDeliveredOnce":           TestRetryThenDeliveredOnce,
		"PerRecipientResultsAndDSN":        TestPerRecipientResultsAndDSN,
		"RemoteSenderGetsQueuedDSN":        TestRemoteSenderGetsQueuedDSN,
		"NullSenderNeverBounced":           TestNullSenderNeverBounced,
		"ExpiryAndDelayWarning":            TestExpiryAndDelayWarning,
		"RestartDoesNotResendAcknowledged": TestRestartDoesNotResendAcknowledged,
		"RestartBeforeFirstAttempt":        TestRestartBeforeFirstAttempt,
		"ShutdownLeavesInterruptedQueued":  TestShutdownLeavesInterruptedQueued,
		"DKIMSignatureVerifies":            TestDKIMSignatureVerifies,
		"RemoteLimits":                     TestRemoteLimits,
		"SMTPUTF8AndEightBit":              TestSMTPUTF8AndEightBit,
		"ManyRecipientsPipelined":          TestManyRecipientsPipelined,
		"EnqueueValidation":                TestEnqueueValidation,
		"BareLFBecomesCRLF":                TestBareLFBecomesCRLF,
		"Admin":                            TestAdmin,
		"ConnectionReuse":                  TestConnectionReuse,
		"SRSForwarding":                    TestSRSForwarding,
		"AttemptsAndStats":                 TestAttemptsAndStats,
		"LocalRecipientRetriedIntoMailbox": TestLocalRecipientRetriedIntoMailbox,
		"DSNIntoMaildirInbox":              TestDSNIntoMaildirInbox,
		"Bounce":                           TestBounce,
		"EnqueueConcurrent":                TestEnqueueConcurrent,
	}
	onPostgres = true
	defer func() { onPostgres = false }()
	for name, fn := range tests {
		t.Run(name, fn)
	}
}

// pgNodeEnv is a queue node on the PostgreSQL database at dsn.
func pgNodeEnv(t *testing.T, remote *fakeRemote, pool *pgxpool.Pool, node string, lease time.Duration) *env {
	return newEnv(t, remote, func(o *Options) {
		o.Postgres, o.Node, o.Lease = pool, node, lease
	})
}

// Two nodes on one database deliver every message once.
func TestPGTwoQueuesDeliverOnce(t *testing.T) {
	remote := newFakeRemote(t)
	dsn := pgtest.NewDatabase(t)
	a := pgNodeEnv(t, remote, pgPool(t, dsn), "a", 0)
	b := pgNodeEnv(t, remote, pgPool(t, dsn), "b", 0)
	const n = 40
	for i := range n {
		e := a
		if i%2 == 1 {
			e = b
		}
		e.enqueue("alice@a.test", fmt.Sprintf("user%d@b.test", i))
	}
	waitFor(t, "every delivery", func() bool { return len(remote.messages()) >= n })
	waitFor(t, "empty queue", func() bool { msgs, _ := a.q.List(context.Background()); return len(msgs) == 0 })
	for i := range n {
		if c := remote.count(fmt.Sprintf("user%d@b.test", i)); c != 1 {
			t.Errorf("user%d got %d copies", i, c)
		}
	}
	if len(remote.messages()) != n {
		t.Errorf("%d messages received, want %d", len(remote.messages()), n)
	}
}

// A node dies (its database connections gone, its claims not released)
// while its messages are in the remote's DATA phase, before the remote
// accepted them; the other node delivers them after the lease, once.
func TestPGNodeKilledMidDelivery(t *testing.T) {
	remote := newFakeRemote(t)
	stall := make(chan struct{})
	remote.mu.Lock()
	remote.stall = stall
	remote.mu.Unlock()
	dsn := pgtest.NewDatabase(t)
	poolA := pgPool(t, dsn)
	const lease = time.Second
	a := pgNodeEnv(t, remote, poolA, "a", lease)
	const n = 10
	for i := range n {
		a.enqueue("alice@a.test", fmt.Sprintf("user%d@b.test", i))
	}
	<-remote.inData // a is sending
	var claimed int
	if err := poolA.QueryRow(context.Background(), `SELECT count(*) FROM queue_claims WHERE node = 'a'`).Scan(&claimed); err != nil || claimed == 0 {
		t.Fatalf("a holds %d claims (%v)", claimed, err)
	}
	// Kill: the database goes first, so a can neither record nor release.
	poolA.Close()
	if err := a.q.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	remote.mu.Lock()
	remote.stall = nil
	remote.mu.Unlock()
	close(stall)
	if got := len(remote.messages()); got != 0 {
		t.Fatalf("%d messages accepted before the kill", got)
	}
	b := pgNodeEnv(t, remote, pgPool(t, dsn), "b", lease)
	waitFor(t, "every delivery", func() bool { return len(remote.messages()) >= n })
	waitFor(t, "empty queue", func() bool { msgs, _ := b.q.List(context.Background()); return len(msgs) == 0 })
	for i := range n {
		if c := remote.count(fmt.Sprintf("user%d@b.test", i)); c != 1 {
			t.Errorf("user%d got %d copies", i, c)
		}
	}
	t.Logf("a held %d claims when killed", claimed)
}

// countTracer counts the statements a pool sends (batched ones each) and
// the round trips (a batch is one).
type countTracer struct{ stmts, trips atomic.Int64 }

func (c *countTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.stmts.Add(1)
	c.trips.Add(1)
	return ctx
}
func (c *countTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *countTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.trips.Add(1)
	return ctx
}
func (c *countTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.stmts.Add(1)
}
func (c *countTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TestPGStatementsPerMessage counts what one Enqueue and one delivery
// cost in PostgreSQL statements and round trips (BEGIN and COMMIT
// included), and keeps them from growing unnoticed.
func TestPGStatementsPerMessage(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	tr := &countTracer{}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	remote := newFakeRemote(t)
	e := pgNodeEnv(t, remote, pool, "a", 0)
	e.q.Shutdown(context.Background()) // no scheduler while enqueueing
	const n = 20
	before := tr.stmts.Load()
	beforeTrips := tr.trips.Load()
	for i := range n {
		e.enqueue("alice@a.test", fmt.Sprintf("user%d@b.test", i))
	}
	enqStmts := float64(tr.stmts.Load()-before) / n
	enqTrips := float64(tr.trips.Load()-beforeTrips) / n
	before, beforeTrips = tr.stmts.Load(), tr.trips.Load()
	e.q.Start()
	waitFor(t, "every delivery", func() bool { return len(remote.messages()) >= n })
	waitFor(t, "empty queue", func() bool { m, _, _ := e.q.Stats(context.Background()); return m == 0 })
	e.q.Shutdown(context.Background())
	// The scheduler's idle scans are counted too: an upper bound.
	delStmts := float64(tr.stmts.Load()-before) / n
	delTrips := float64(tr.trips.Load()-beforeTrips) / n
	t.Logf("per Enqueue: %.1f statements, %.1f round trips; per delivery (scans included): %.1f statements, %.1f round trips",
		enqStmts, enqTrips, delStmts, delTrips)
	if enqStmts > 6 || delStmts > 100 {
		t.Errorf("more statements than expected: %.1f per Enqueue, %.1f per delivery", enqStmts, delStmts)
	}
}
