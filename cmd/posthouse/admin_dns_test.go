package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/dns/dnstest"
)

// TestAdminDNSCheck: admin dns --check looks the records up through
// [dns] resolver and says which are right, missing or wrong, with the line
// to publish for each that is not right.
func TestAdminDNSCheck(t *testing.T) {
	srv := dnstest.NewServer(t)
	srv.Add("example.org. MX 10 mail.example.org.", "mail.example.org. A 127.0.0.10",
		"10.0.0.127.in-addr.arpa. PTR mail.example.org.", `_dmarc.example.org. TXT "v=DMARC1; p=none"`)
	srv.AddTXT("example.org.", "v=spf1 ip4:192.0.2.1 -all")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "posthouse.toml")
	os.WriteFile(cfg, []byte("hostname = \"mail.example.org\"\ndata_dir = \""+filepath.Join(dir, "data")+
		"\"\n[dns]\nresolver = \""+srv.Addr+"\"\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"admin", "--config", cfg, "dns", "--check", "example.org"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"ok MX example.org 10 mail.example.org",
		"ok DMARC",
		"ok PTR 127.0.0.10 mail.example.org",
		"wrong SPF example.org v=spf1 ip4:192.0.2.1 -all",
		"missing autoconfig autoconfig.example.org",
		"; SPF example.org is wrong: it names neither mx",
		`example.org. 3600 IN TXT "v=spf1 mx -all"`,
		"autoconfig.example.org. 3600 IN CNAME mail.example.org.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
