package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/backend"
	"github.com/posthouse/posthouse/metrics"
	"github.com/posthouse/posthouse/smtpd"
)

// TestMetricsWiring: the wrappers serve uses count logins per protocol
// (plain and SASL), connections, SMTP outcomes and DNS results, as the
// Prometheus handler shows them.
func TestMetricsWiring(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	rec, err := openMetrics(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	db, err := auth.Open(ctx, filepath.Join(dir, "users.sqlite"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AddDomain(ctx, "a.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.AddUser(ctx, "u@a.test", "pw-1", 0); err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: cfg, auth: db, metrics: rec}

	// The counted store keeps the account's optional interfaces.
	store, err := backend.Open(ctx, storeOptions(cfg, slog.New(slog.DiscardHandler), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	acct, err := deliveryStore(store, rec).Open(ctx, "u@a.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := acct.(delivery.MailboxCreator); !ok {
		t.Error("the counted account hides MailboxCreator")
	}
	if _, err := acct.Deliver(ctx, strings.NewReader("Subject: x\r\n\r\nx\r\n"), mailstore.DeliverOptions{}); err != nil {
		t.Fatal(err)
	}
	acct.Close()
	lo := netip.MustParseAddr("127.0.0.1")

	imap := a.authFor("imaps")
	imap.Authenticate(ctx, "u@a.test", "pw-1", lo)
	imap.Authenticate(ctx, "u@a.test", "wrong", lo)
	sub := a.authFor(smtpListenerName(smtpd.ModeSubmission))
	s, err := sub.NewSASLServer(ctx, "PLAIN", lo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, done, err := s.Next([]byte("\x00u@a.test\x00pw-1")); !done || err != nil {
		t.Fatalf("PLAIN: %v, %v", done, err)
	}
	s.Next(nil) // a second call after the end is not another login

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := countConns(ln, "pop3", rec)
	defer cl.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			c.Close()
		}
	}()
	if c, err := cl.Accept(); err == nil {
		c.Close()
	}

	obs := smtpObserver(rec)
	obs(smtpd.Outcome{Mode: smtpd.ModeMTA, Accepted: true})
	obs(smtpd.Outcome{Mode: smtpd.ModeSubmissions, Accepted: true})
	obs(smtpd.Outcome{Mode: smtpd.ModeMTA, Stage: "rcpt", Reason: "unknown_user"})
	dnsObserver(rec)("MX", time.Millisecond, &dns.Error{Err: dns.ErrNotFound})
	dnsObserver(rec)("A", time.Millisecond, errors.New("timeout"))

	srv := httptest.NewServer(rec.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`posthouse_auth_total{proto="imaps",result="success"} 1`,
		`posthouse_auth_total{proto="imaps",result="failure"} 1`,
		`posthouse_auth_total{proto="submission",result="success"} 1`,
		`posthouse_connections_total{proto="pop3"} 1`,
		`posthouse_messages_received_total{mode="mta"} 1`,
		`posthouse_messages_received_total{mode="submission"} 1`,
		`posthouse_messages_rejected_total{class="permanent",reason="unknown_user",stage="rcpt"} 1`,
		`posthouse_dns_lookup_duration_seconds_count{result="notfound",type="MX"} 1`,
		`posthouse_dns_lookup_duration_seconds_count{result="error",type="A"} 1`,
		`posthouse_deliveries_total{result="stored"} 1`,
		`posthouse_store_commit_duration_seconds_count 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if got := rec.Last24h(time.Now()); got != (metrics.Summary{In: 1, Out: 1, Rejected: 1}) {
		t.Errorf("Last24h = %+v", got)
	}
}
