package server

import (
	"log/slog"
	"math"
	"net"
	"testing"
	"time"
)

func TestMaxConns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		want  int
	}{
		{"unknown", 0, math.MaxInt},
		{"tiny: half", 100, 50},
		{"256: reserve 64", 256, 192},
		{"1024: a quarter", 1024, 768},
		{"large: reserve capped", 1 << 20, 1<<20 - 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := maxConns(tc.limit); got != tc.want {
				t.Errorf("maxConns(%d) = %d, want %d", tc.limit, got, tc.want)
			}
		})
	}
}

func TestFDBudgetWaitsForRelease(t *testing.T) {
	b := &fdBudget{limit: func() int { return 100 }} // 50 connections
	log := slog.New(slog.DiscardHandler)
	for i := range 50 {
		if !b.acquire(log, nil, nil) {
			t.Fatalf("acquire %d refused", i)
		}
	}
	got := make(chan bool, 1)
	go func() { got <- b.acquire(log, nil, nil) }()
	select {
	case <-got:
		t.Fatal("acquire beyond the budget returned before a release")
	case <-time.After(50 * time.Millisecond):
	}
	b.release()
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("acquire after release: false")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire did not return after a release")
	}

	// Waiting ends with stop, reporting false.
	stop := make(chan struct{})
	go func() { got <- b.acquire(log, stop, nil) }()
	close(stop)
	select {
	case ok := <-got:
		if ok {
			t.Fatal("acquire with stop closed and no room: true")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire did not return on stop")
	}
	if b.live != 50 {
		t.Fatalf("live = %d, want 50", b.live)
	}
}

// A Lifecycle whose connections reach the budget stops accepting, and
// takes the waiting connection when one ends.
func TestServePausesAtDescriptorBudget(t *testing.T) {
	old := descriptors
	descriptors = &fdBudget{limit: func() int { return 4 }} // maxConns(4) = 2
	t.Cleanup(func() { descriptors = old })
	ts := newTestServer(t, Options{})
	var clients []net.Conn
	for range 2 {
		clients = append(clients, dial(t, ts.addr))
		ts.next(t)
	}
	dial(t, ts.addr) // queued by the kernel
	select {
	case <-ts.conns:
		t.Fatal("a third connection was accepted over the budget")
	case <-time.After(100 * time.Millisecond):
	}
	clients[0].Close()
	ts.next(t) // the queued one, once a connection ended
}
