package loopport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickBelowEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	seen := map[int]bool{}
	for range 300 {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d returned twice", p)
		}
		seen[p] = true
		if lo-lowest >= 1000 && (p < lowest || p >= lo) {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, lo)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d just picked: %v", p, err)
		}
		ln.Close()
	}
}

func TestPickSkipsTakenPorts(t *testing.T) {
	// The draws: a port a listener holds, one handed out before, then
	// one free. Pick returns the free one.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	before, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	free, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	// free was handed out too: let it be handed again for this test.
	handed.Lock()
	delete(handed.ports, free)
	handed.Unlock()
	draws := []int{busy.Addr().(*net.TCPAddr).Port, before, free}
	defer func(d func(int) (int, error)) { draw = d }(draw)
	draw = func(int) (int, error) {
		p := draws[0]
		draws = draws[1:]
		return p, nil
	}
	p, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	if p != free || len(draws) != 0 {
		t.Fatalf("Pick returned %d after %d draws, want %d after 3", p, 3-len(draws), free)
	}
}

func TestCandidateFallsBackToTheKernel(t *testing.T) {
	p, err := candidate(lowest + 10)
	if err != nil {
		t.Fatal(err)
	}
	if p < lowest+10 {
		t.Fatalf("with no room below the ephemeral range, got %d", p)
	}
}
