package smtpd

import (
	"crypto/tls"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestReceivedHeaderGolden(t *testing.T) {
	date := time.Date(2026, 11, 22, 6, 0, 0, 0, time.FixedZone("", 3600))
	tlsState := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	tests := []struct {
		name string
		ri   receivedInfo
	}{
		{name: "mta_plain", ri: receivedInfo{helo: "mail.sender.test", remote: netip.MustParseAddr("192.0.2.7"), hostname: "mx.example.org", id: "a1b2c31.1", rcpts: []string{"bob@example.org"}, date: date}},
		{name: "mta_starttls_many_rcpts", ri: receivedInfo{helo: "mail.sender.test", remote: netip.MustParseAddr("2001:db8::25"), hostname: "mx.example.org", tls: tlsState, id: "a1b2c32.3", rcpts: []string{"bob@example.org", "alice@example.org"}, date: date}},
		{name: "submission_auth", ri: receivedInfo{helo: "[192.168.1.20]", remote: netip.MustParseAddr("198.51.100.9"), hostname: "mx.example.org", tls: tlsState, user: "alice@example.org", id: "a1b2c33.1", rcpts: []string{"friend@elsewhere.test"}, date: date}},
		{name: "hostile_helo_utf8", ri: receivedInfo{helo: "evil(\r\n)\x00;host", remote: netip.MustParseAddr("203.0.113.5"), hostname: "mx.example.org", utf8: true, id: "a1b2c34.1", rcpts: []string{"jöran@example.org"}, date: date}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := receivedHeader(tc.ri)
			path := filepath.Join("testdata", "received_"+tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
