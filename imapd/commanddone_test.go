package imapd

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCommandDone: Options.CommandDone reaches the library and hears
// each command by name.
func TestCommandDone(t *testing.T) {
	var mu sync.Mutex
	var names []string
	ts := newTestServer(t, func(o *Options) {
		o.CommandDone = func(name string, d time.Duration) {
			mu.Lock()
			names = append(names, name)
			mu.Unlock()
		}
	})
	c := ts.client(t, "alice@example.org", "alicepw", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		ok := slices.Contains(names, "LOGIN") && slices.Contains(names, "SELECT") && slices.Contains(names, "NOOP")
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("CommandDone heard %q, want LOGIN, SELECT and NOOP", names)
		}
	}
}
