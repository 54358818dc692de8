package dkim_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
)

// TestVerify checks signatures through a resolver asking a loopback DNS
// server, as the server does for inbound mail.
func TestVerify(t *testing.T) {
	ns := dnstest.NewServer(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ns.AddTXT("sel._domainkey.sender.test.", "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	r, err := dns.New(dns.Options{Server: ns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(msg, domain, selector string) string {
		var b strings.Builder
		if err := msgauth.Sign(&b, strings.NewReader(msg), &msgauth.SignOptions{Domain: domain, Selector: selector, Signer: priv}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	plain := "From: a@sender.test\r\nTo: bob@example.org\r\nSubject: signed\r\n\r\nbody\r\n"
	signed := sign(plain, "sender.test", "sel")
	many := plain
	for range dkim.MaxVerifications + 3 {
		many = sign(many, "sender.test", "sel")
	}
	tests := []struct {
		name    string
		msg     string
		want    []dkim.Result
		wantErr error
	}{
		{"pass", signed, []dkim.Result{dkim.Pass}, nil},
		{"body altered", strings.Replace(signed, "body\r\n", "altered\r\n", 1), []dkim.Result{dkim.Fail}, nil},
		{"no key record", sign(plain, "sender.test", "gone"), []dkim.Result{dkim.PermError}, nil},
		{"unsigned", plain, nil, nil},
		{"signatures past the cap are ignored", many, []dkim.Result{dkim.Pass, dkim.Pass, dkim.Pass, dkim.Pass, dkim.Pass}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := dkim.Verify(context.Background(), strings.NewReader(tc.msg), r.LookupTXT)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			var got []dkim.Result
			for _, v := range vs {
				got = append(got, v.Result)
				if v.Result == dkim.Pass && (v.Domain != "sender.test" || v.Identifier != "@sender.test" || v.Err != nil) {
					t.Errorf("pass with domain %q identifier %q err %v", v.Domain, v.Identifier, v.Err)
				}
				if v.Result != dkim.Pass && v.Err == nil {
					t.Errorf("%s without a reason", v.Result)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("results %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVerifyTempError: a resolver that cannot answer gives temperror, so
// the sender's mail is not judged on our DNS trouble.
func TestVerifyTempError(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	msg := "From: a@sender.test\r\n\r\nbody\r\n"
	if err := msgauth.Sign(&b, strings.NewReader(msg), &msgauth.SignOptions{Domain: "sender.test", Selector: "sel", Signer: priv}); err != nil {
		t.Fatal(err)
	}
	failing := func(_ context.Context, name string) ([]string, error) {
		return nil, &dns.Error{Name: name, Type: "TXT", Err: dns.ErrTemporary}
	}
	vs, err := dkim.Verify(context.Background(), strings.NewReader(b.String()), failing)
	if err != nil || len(vs) != 1 || vs[0].Result != dkim.TempError {
		t.Fatalf("got %+v, %v; want one temperror", vs, err)
	}
}
