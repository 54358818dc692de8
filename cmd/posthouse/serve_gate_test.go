package main

import (
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dns/dnstest"
	"github.com/posthouse/posthouse/gate"
)

// TestGateDefaults: config's [inbound] greylisting defaults are gate's own.
func TestGateDefaults(t *testing.T) {
	in := config.Default().Inbound
	if in.GreylistDelay.Duration != gate.DefaultGreylistDelay || in.GreylistRetryWindow.Duration != gate.DefaultRetryWindow ||
		in.GreylistAllowTTL.Duration != gate.DefaultAllowTTL {
		t.Errorf("config %+v, gate %s %s %s", in, gate.DefaultGreylistDelay, gate.DefaultRetryWindow, gate.DefaultAllowTTL)
	}
}

// TestOpenGate: no gate by default; [inbound] builds one, with the
// greylist in data_dir and trusted_networks exempt; list zones need a
// resolver.
func TestOpenGate(t *testing.T) {
	newApp := func(t *testing.T, edit func(*config.Config)) *app {
		cfg := testConfig(t)
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		edit(cfg)
		return &app{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	}
	ctx := t.Context()
	if g, err := openGate(ctx, newApp(t, func(*config.Config) {}), nil); g != nil || err != nil {
		t.Fatalf("defaults: %v, %v; want no gate", g, err)
	}
	if _, err := openGate(ctx, newApp(t, func(c *config.Config) { c.Inbound.DNSBL = []string{"bl.example"} }), nil); err == nil {
		t.Fatal("dnsbl without a resolver accepted")
	}

	d := dnstest.NewServer(t)
	r, err := dns.New(dns.Options{Server: d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(t, func(c *config.Config) {
		c.Inbound.Greylist = true
		c.Inbound.DNSBL = []string{"bl.example"}
		c.Auth.TrustedNetworks = []string{"127.0.0.0/24"}
	})
	g, err := openGate(ctx, a, r)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := os.Stat(filepath.Join(a.cfg.DataDir, greylistFile)); err != nil {
		t.Errorf("greylist database: %v", err)
	}
	sg := smtpGate{g}
	if c := sg.Connect(ctx, netip.MustParseAddr("127.0.0.5"), nil); c != nil {
		t.Errorf("trusted client: %#v, want a nil GateConn", c)
	}
	c := sg.Connect(ctx, netip.MustParseAddr("127.0.1.5"), nil)
	if c == nil {
		t.Fatal("untrusted client not checked")
	}
	if err := c.Rcpt(ctx, "a@sender.example", "alice@example.com"); err != gate.ReplyGreylisted {
		t.Errorf("first attempt: %v, want greylisted", err)
	}
}
