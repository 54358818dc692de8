package dns_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	miekg "github.com/miekg/dns"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
)

func newResolver(t *testing.T) (*dns.Resolver, *dnstest.Server) {
	t.Helper()
	srv := dnstest.NewServer(t)
	r, err := dns.New(dns.Options{Server: srv.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r, srv
}

func TestLookupMX(t *testing.T) {
	r, srv := newResolver(t)
	srv.Add("b.test. MX 20 mx2.b.test.", "b.test. MX 10 mx1.b.test.", "b.test. MX 30 mx3.b.test.")
	srv.Add("nomx.test. A 127.0.0.1")
	srv.Add("null.test. MX 0 .")
	ctx := context.Background()

	tests := []struct {
		name    string
		domain  string
		want    []string
		wantErr error
	}{
		{name: "sorted by preference", domain: "b.test", want: []string{"mx1.b.test", "mx2.b.test", "mx3.b.test"}},
		{name: "no MX is not an error", domain: "nomx.test", want: nil},
		{name: "null MX", domain: "null.test", want: []string{"."}},
		{name: "NXDOMAIN", domain: "missing.test", wantErr: dns.ErrNotFound},
		{name: "bad name", domain: "a..b", wantErr: dns.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mxs, err := r.LookupMX(ctx, tc.domain)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, mx := range mxs {
				got = append(got, mx.Host)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTemporaryFailure(t *testing.T) {
	r, srv := newResolver(t)
	srv.Add("b.test. MX 10 mx.b.test.")
	srv.SetRcode("b.test", miekg.RcodeServerFailure)
	_, err := r.LookupMX(context.Background(), "b.test")
	var de *dns.Error
	if !errors.As(err, &de) || !de.Temporary() || de.Rcode != "SERVFAIL" {
		t.Fatalf("err = %v, want temporary SERVFAIL", err)
	}
}

func TestUnreachableServerIsTemporary(t *testing.T) {
	// A closed UDP port on loopback: ICMP refusal or timeout, both temporary.
	r, err := dns.New(dns.Options{Server: "127.0.0.1:1", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.LookupMX(context.Background(), "b.test")
	if !errors.Is(err, dns.ErrTemporary) {
		t.Fatalf("err = %v, want ErrTemporary", err)
	}
}

func TestContextCancel(t *testing.T) {
	r, _ := newResolver(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.LookupMX(ctx, "b.test"); !errors.Is(err, dns.ErrTemporary) {
		t.Fatalf("err = %v, want ErrTemporary", err)
	}
}

func TestLookupIP(t *testing.T) {
	r, srv := newResolver(t)
	srv.Add("mx.b.test. A 127.0.0.2", "mx.b.test. AAAA ::1", "v4.test. A 127.0.0.3")
	srv.Add("alias.test. CNAME v4.test.")
	srv.Add("nodata.test. MX 10 x.test.")
	ctx := context.Background()
	got, err := r.LookupIP(ctx, "mx.b.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.2")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	got, err = r.LookupIP(ctx, "alias.test")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.3") {
		t.Errorf("CNAME: got %v, %v", got, err)
	}
	if _, err := r.LookupIP(ctx, "nodata.test"); !errors.Is(err, dns.ErrNotFound) {
		t.Errorf("NODATA: err = %v, want ErrNotFound", err)
	}
	if _, err := r.LookupIP(ctx, "missing.test"); !errors.Is(err, dns.ErrNotFound) {
		t.Errorf("NXDOMAIN: err = %v, want ErrNotFound", err)
	}
}

func TestTXTOverTCPFallback(t *testing.T) {
	r, srv := newResolver(t)
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 600)
	srv.AddTXT("sel._domainkey.a.test", long)
	srv.SetTruncateUDP(true)
	got, err := r.LookupTXT(context.Background(), "sel._domainkey.a.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != long {
		t.Fatalf("got %q", got)
	}
	if n := srv.Queries("sel._domainkey.a.test", "TXT"); n != 2 {
		t.Errorf("queries = %d, want 2 (UDP truncated, then TCP)", n)
	}
}

func TestLookupPTR(t *testing.T) {
	r, srv := newResolver(t)
	srv.Add("1.0.0.127.in-addr.arpa. PTR mail.a.test.")
	got, err := r.LookupPTR(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if err != nil || len(got) != 1 || got[0] != "mail.a.test" {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestNewFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	os.WriteFile(path, []byte("# comment\nsearch example.org\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"), 0o644)
	r, err := dns.New(dns.Options{ResolvConf: path})
	if err != nil {
		t.Fatal(err)
	}
	if r.Server() != "192.0.2.53:53" {
		t.Errorf("server = %q", r.Server())
	}
	if _, err := dns.New(dns.Options{ResolvConf: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing resolv.conf: no error")
	}
}

func TestServerAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:5353", "127.0.0.1:5353"},
		{"127.0.0.1", "127.0.0.1:53"},
		{"::1", "[::1]:53"},
		{"[::1]:5353", "[::1]:5353"},
		{"dns.example", "dns.example:53"},
	}
	for _, tc := range tests {
		r, err := dns.New(dns.Options{Server: tc.in})
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if r.Server() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, r.Server(), tc.want)
		}
	}
}

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "first of two", in: "nameserver 10.0.0.1\nnameserver 10.0.0.2\n", want: "10.0.0.1:53"},
		{name: "ipv6", in: "nameserver fe80::1\n", want: "[fe80::1]:53"},
		{name: "comment and options", in: "options ndots:2\n; x\nnameserver 1.1.1.1 # cf\n", want: "1.1.1.1:53"},
		{name: "skip junk", in: "nameserver bogus\nnameserver 9.9.9.9", want: "9.9.9.9:53"},
		{name: "commented out", in: "#nameserver 1.2.3.4\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dns.ParseResolvConf(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q (err %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add("nameserver 127.0.0.1\n")
	f.Add("search a b\nnameserver ::1%eth0\n")
	f.Add("nameserver\tfe80::1 ; c\r\n")
	f.Fuzz(func(t *testing.T, data string) {
		s, err := dns.ParseResolvConf(data)
		if err != nil {
			return
		}
		if _, err := netip.ParseAddrPort(s); err != nil {
			t.Fatalf("ParseResolvConf(%q) = %q, not an addr:port: %v", data, s, err)
		}
	})
}

// TestObserve: Options.Observe hears of each exchange with its type and
// error; a malformed name asks the nameserver nothing and is not one.
func TestObserve(t *testing.T) {
	srv := dnstest.NewServer(t)
	srv.Add("b.test. MX 10 mx1.b.test.")
	type seen struct {
		typ string
		err error
	}
	var got []seen
	r, err := dns.New(dns.Options{Server: srv.Addr, Timeout: 2 * time.Second, Observe: func(typ string, d time.Duration, err error) {
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		got = append(got, seen{typ, err})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.LookupMX(ctx, "b.test")
	r.LookupMX(ctx, "missing.test")
	r.LookupMX(ctx, "a..b")
	if len(got) != 2 || got[0].typ != "MX" || got[0].err != nil || got[1].typ != "MX" || !errors.Is(got[1].err, dns.ErrNotFound) {
		t.Fatalf("observed %+v", got)
	}
}
