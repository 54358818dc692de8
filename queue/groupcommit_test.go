package queue

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestEnqueueConcurrent: Enqueues that run at once (and may share a
// commit) each get their own entry, with their own recipients.
func TestEnqueueConcurrent(t *testing.T) {
	e := newEnv(t, newFakeRemote(t))
	e.stop() // nothing is delivered: the entries stay to be counted
	q, err := Open(context.Background(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const n = 32
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id, err := q.Enqueue(context.Background(), "bob@a.test", []string{"carol@b.test", "dave@b.test"}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	msgs, err := q.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("%d entries, want %d", len(msgs), n)
	}
	for _, m := range msgs {
		if len(m.Recipients) != 2 {
			t.Errorf("entry %s has %d recipients, want 2", m.ID, len(m.Recipients))
		}
	}
}

// TestEnqueueBatchFailsAlone: when a shared commit fails, every Enqueue of
// the batch is committed on its own, so only the bad one fails.
func TestEnqueueBatchFailsAlone(t *testing.T) {
	e := newEnv(t, newFakeRemote(t))
	e.stop()
	q, err := Open(context.Background(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	row := func(id string) *queuedRows {
		return &queuedRows{id: id, from: "bob@a.test", size: 1, created: 1, rcpts: [][2]string{{"carol@b.test", "b.test"}}}
	}
	good, dup := row("00000000000000a1"), row("00000000000000a1") // the same id twice
	other := row("00000000000000a2")
	q.insertBatch([]*queuedRows{good, dup, other})
	if good.err != nil || other.err != nil {
		t.Errorf("good rows failed: %v, %v", good.err, other.err)
	}
	if dup.err == nil {
		t.Error("a duplicate id was committed")
	}
	msgs, err := q.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Errorf("%d entries, want 2", len(msgs))
	}
}
