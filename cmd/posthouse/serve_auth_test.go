package main

import (
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
)

// TestAuthOptionsDefaults: config's [auth] defaults are auth's own, so a
// server run without [auth] throttles as auth's doc says.
func TestAuthOptionsDefaults(t *testing.T) {
	got := authOptions(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	got.Logger = nil
	want := auth.Options{
		TrustedNetworks:    auth.DefaultTrustedNetworks(),
		IPMaxFailures:      auth.DefaultIPMaxFailures,
		IPWindow:           auth.DefaultIPWindow,
		AccountMaxFailures: auth.DefaultAccountMaxFailures,
		AccountWindow:      auth.DefaultAccountWindow,
		AccountInterval:    auth.DefaultAccountInterval,
		KnownAddressTTL:    auth.DefaultKnownAddressTTL,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("authOptions(defaults) = %+v, want %+v", got, want)
	}
	// An empty list trusts nothing (auth reads nil as its default).
	cfg := config.Default()
	cfg.Auth.TrustedNetworks = []string{}
	if n := authOptions(cfg, nil).TrustedNetworks; n == nil || len(n) != 0 {
		t.Errorf("trusted_networks = []: %v", n)
	}
}
