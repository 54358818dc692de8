package dnscheck

import "testing"

func TestListenPort(t *testing.T) {
	for in, want := range map[string]int{"": 0, ":587": 587, "127.0.0.1:993": 993, "[::1]:110": 110, "bogus": 0} {
		if got := ListenPort(in); got != want {
			t.Errorf("ListenPort(%q) = %d, want %d", in, got, want)
		}
	}
}
