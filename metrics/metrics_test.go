package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestRecorder(t *testing.T, dir string, c *clock) *Recorder {
	t.Helper()
	r, err := open(dir, nil, c.Now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func scrape(t *testing.T, r *Recorder) string {
	t.Helper()
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	return string(b)
}

func TestHandlerExposesMetrics(t *testing.T) {
	c := &clock{t: time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC)}
	r := newTestRecorder(t, t.TempDir(), c)
	r.Connection("imaps")
	r.Connection("gopher") // not a listener of ours
	r.Auth("imap", "success")
	r.Auth("submission", "failure")
	r.Auth("smtp", "who knows")
	r.MessageReceived("mta")
	r.MessageReceived("submission")
	r.MessageRejected("rcpt", "unknown_user", false)
	r.MessageRejected("data", "not-a-reason", true)
	r.LocalDelivery(true, 3*time.Millisecond)
	r.LocalDelivery(false, 0)
	r.DeliveryAttempt("deferred")
	r.DNSLookup("MX", "ok", 2*time.Millisecond)
	r.DNSLookup("HINFO", "notfound", time.Millisecond)
	r.IMAPCommand("UID FETCH", time.Millisecond)
	r.IMAPCommand("XYZZY-"+strings.Repeat("A", 100), time.Millisecond)
	r.IMAPCommand("IDLE", time.Hour)
	r.SetQueueStats(func(ctx context.Context) (int, time.Time, error) {
		return 3, c.Now().Add(-90 * time.Second), nil
	})
	out := scrape(t, r)
	for _, want := range []string{
		`posthouse_connections_total{proto="imaps"} 1`,
		`posthouse_connections_total{proto="other"} 1`,
		`posthouse_auth_total{proto="imap",result="success"} 1`,
		`posthouse_auth_total{proto="submission",result="failure"} 1`,
		`posthouse_auth_total{proto="smtp",result="other"} 1`,
		`posthouse_messages_received_total{mode="mta"} 1`,
		`posthouse_messages_received_total{mode="submission"} 1`,
		`posthouse_messages_rejected_total{class="permanent",reason="unknown_user",stage="rcpt"} 1`,
		`posthouse_messages_rejected_total{class="temporary",reason="other",stage="data"} 1`,
		`posthouse_deliveries_total{result="stored"} 1`,
		`posthouse_deliveries_total{result="failed"} 1`,
		`posthouse_delivery_attempts_total{result="deferred"} 1`,
		`posthouse_dns_lookup_duration_seconds_count{result="ok",type="MX"} 1`,
		`posthouse_dns_lookup_duration_seconds_count{result="notfound",type="other"} 1`,
		`posthouse_store_commit_duration_seconds_count 1`,
		`posthouse_imap_command_duration_seconds_count{command="UID FETCH"} 1`,
		`posthouse_imap_command_duration_seconds_count{command="other"} 1`,
		`posthouse_queue_messages 3`,
		`posthouse_queue_oldest_seconds 90`,
		`go_goroutines `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(out, `command="IDLE"`) || strings.Contains(out, "XYZZY") || strings.Contains(out, "gopher") || strings.Contains(out, "HINFO") {
		t.Error("an unbounded label value got through")
	}
	if t.Failed() {
		t.Log(out)
	}

	// A failing queue query makes the scrape report it, not crash.
	r.SetQueueStats(func(ctx context.Context) (int, time.Time, error) {
		return 0, time.Time{}, errors.New("database is locked")
	})
	if out := scrape(t, r); strings.Contains(out, "posthouse_queue_messages 3") {
		t.Error("stale queue size after a failed query")
	}
}

func TestLast24hSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC)}
	r, err := open(dir, nil, c.Now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r.MessageReceived("mta")
	r.MessageReceived("mta")
	r.MessageReceived("submission")
	r.MessageRejected("rcpt", "relay_denied", false)
	c.Advance(5 * time.Hour)
	r.MessageReceived("mta")
	if got, want := r.Last24h(c.Now()), (Summary{In: 3, Out: 1, Rejected: 1}); got != want {
		t.Fatalf("Last24h = %+v, want %+v", got, want)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, dailyFile)); err != nil || fi.Size() > 4096 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved file: %v, %v", fi, err)
	}

	r2 := newTestRecorder(t, dir, c)
	if got, want := r2.Last24h(c.Now()), (Summary{In: 3, Out: 1, Rejected: 1}); got != want {
		t.Fatalf("after a restart Last24h = %+v, want %+v", got, want)
	}
	// 20 hours on, the first hour's counts (10:xx) have left the window;
	// the one of 15:xx has not.
	c.Advance(20 * time.Hour)
	if got, want := r2.Last24h(c.Now()), (Summary{In: 1}); got != want {
		t.Fatalf("a day later Last24h = %+v, want %+v", got, want)
	}
	// Buckets are reused as hours go by, without mixing hours.
	for range 30 {
		c.Advance(time.Hour)
		r2.MessageRejected("data", "content", true)
	}
	if got, want := r2.Last24h(c.Now()), (Summary{Rejected: 24}); got != want {
		t.Fatalf("after 30 more hours Last24h = %+v, want %+v", got, want)
	}
}

func TestDamagedFileStartsAfresh(t *testing.T) {
	for _, content := range []string{"{", `{"version":2,"hours":[]}`, `{"version":1,"hours":[{"hour":5,"in":-1}]}`, strings.Repeat(" ", maxDailyFile+10)} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, dailyFile), []byte(content), 0o600)
		c := &clock{t: time.Unix(5*3600, 0)}
		r := newTestRecorder(t, dir, c)
		if got := r.Last24h(c.Now()); got != (Summary{}) {
			t.Fatalf("from %.20q: %+v", content, got)
		}
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	r.Connection("imap")
	r.Auth("imap", "success")
	r.MessageReceived("mta")
	r.MessageRejected("rcpt", "quota", true)
	r.LocalDelivery(true, time.Millisecond)
	r.DeliveryAttempt("delivered")
	r.DNSLookup("A", "ok", time.Millisecond)
	r.IMAPCommand("FETCH", time.Millisecond)
	r.SetQueueStats(nil)
	if r.Last24h(time.Now()) != (Summary{}) || r.Close() != nil {
		t.Fatal("nil Recorder is not inert")
	}
}

// FuzzParseDaily checks the saved-file parser: no panic, and what it
// accepts fits the buckets (bounded count, one per slot, no negatives).
func FuzzParseDaily(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		hours, err := parseDaily(data)
		if err != nil {
			return
		}
		if len(hours) > dailyHours {
			t.Fatalf("%d hours", len(hours))
		}
		d := &daily{}
		for _, h := range hours {
			if h.Hour < 0 || h.In < 0 || h.Out < 0 || h.Rejected < 0 {
				t.Fatalf("negative bucket %+v", h)
			}
			d.b[h.Hour%dailyHours] = h
		}
		d.sum(time.Unix(0, 0))
	})
}
