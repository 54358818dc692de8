package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posthouse/posthouse/internal/pgtest"
)

// TestQuickPosthouse runs the quick mode once against Posthouse (and
// Postfix + Dovecot when they are installed and we are root; CI has
// neither, so that column is n/a there) and checks that the command prints
// a well-formed table with a figure for every Posthouse row. It never
// looks at how fast anything was.
func TestQuickPosthouse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sz := quickSizes
	sz.SMTPMsgs, sz.BigMsgs, sz.FetchMsgs, sz.SearchMsgs, sz.POPMsgs, sz.IdleConns, sz.RelayMsgs = 10, 100, 10, 100, 10, 20, 10
	sz.HostileSize = 256 << 10
	sz.WakeConns, sz.StressSecs, sz.StressClients = 20, 3, 2
	o := options{
		runs:       1,
		quick:      true,
		sizes:      &sz,
		workloads:  map[string]bool{"mem": true, "smtp": true, "imap": true, "pop3": true, "relay": true, "hostile": true, "stress": true, "idle": true},
		systems:    map[string]bool{"posthouse": true},
		populate:   "append",
		settle:     200 * time.Millisecond,
		idleWindow: time.Second,
	}
	if os.Getenv("BENCH_SMOKE_OTHERS") != "" {
		o.systems["postfix"] = true
	}
	var out bytes.Buffer
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	if err := run(ctx, o, &out, log); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("output:\n%s", out.String())
	checkTable(t, out.String(), allRows, "Posthouse")
	// The stress rows are there exactly when imaptest is (CI has none).
	if got, want := strings.Contains(out.String(), "| imaptest stress"), findImaptest("") != ""; got != want {
		t.Errorf("imaptest stress rows present %v, imaptest found %v", got, want)
	}
	if findImaptest("") == "" && !strings.Contains(out.String(), "imaptest stress: skipped, no imaptest binary") {
		t.Errorf("no note says the stress rows were skipped")
	}
}

// checkTable verifies the Markdown table: header with the columns
// (Postfix + Dovecot last), separator, a cell for each a row, a number in
// every cell of the columns named, and every workload present.
func checkTable(t *testing.T, s string, want []string, columns ...string) {
	t.Helper()
	var rows [][]string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		if !strings.HasSuffix(line, "|") {
			t.Fatalf("table line does not end with |: %q", line)
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) < 3 {
		t.Fatalf("no table in the output")
	}
	if got, want := strings.Join(rows[0], "|"), "Workload|Unit|"+strings.Join(columns, "|")+"|Postfix + Dovecot|Ratio (>1: Posthouse better)"; got != want {
		t.Errorf("header = %q, want %q", got, want)
	}
	cells := len(columns) + 4
	for _, c := range rows[1] {
		if strings.Trim(c, ":-") != "" || !strings.Contains(c, "---") {
			t.Errorf("separator row = %q", rows[1])
		}
	}
	for _, w := range want {
		found := false
		for _, r := range rows[2:] {
			found = found || strings.HasPrefix(r[0], w)
		}
		if !found {
			t.Errorf("no row for %q", w)
		}
	}
	for _, r := range rows[2:] {
		if len(r) != cells {
			t.Errorf("row has %d cells, want %d: %q", len(r), cells, r)
			continue
		}
		for i, col := range columns {
			if v, err := strconv.ParseFloat(r[2+i], 64); err != nil || v < 0 {
				t.Errorf("row %q: %s cell %q is not a figure", r[0], col, r[2+i])
			}
		}
		if pd := r[cells-2]; pd != "n/a" {
			if _, err := strconv.ParseFloat(pd, 64); err != nil {
				t.Errorf("row %q: Postfix + Dovecot cell %q is neither a figure nor n/a", r[0], pd)
			}
		}
	}
	if !strings.Contains(s, "cores") {
		t.Errorf("header does not name the core count")
	}
}

// allRows are the first words of every workload's rows.
var allRows = []string{"Memory with", "SMTP in", "Disk per stored message", "IMAP SELECT", "IMAP UID FETCH", "IMAP FETCH 1:*", "IMAP SEARCH TEXT", "IMAP SELECT (QRESYNC)", "POP3 RETR", "Relay out", "Hostile MIME in", "FETCH 1:* (BODYSTRUCTURE)", "20 IMAP conns in IDLE"}

// TestQuickPosthousePG runs the intake, IMAP and POP3 workloads once, in
// tiny sizes, on Posthouse with the maildir and the postgres backends side
// by side (a private PostgreSQL started for it), and checks that both
// columns have a figure in every row and that the notes give PostgreSQL's
// statements per delivery and per IMAP command. It skips when PostgreSQL
// is not installed, unless PGTEST_REQUIRE is set (as in CI).
func TestQuickPosthousePG(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server and PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sz := quickSizes
	sz.SMTPMsgs, sz.BigMsgs, sz.FetchMsgs, sz.SearchMsgs, sz.POPMsgs = 10, 100, 10, 100, 10
	o := options{
		runs:      1,
		quick:     true,
		sizes:     &sz,
		workloads: map[string]bool{"smtp": true, "imap": true, "pop3": true},
		systems:   map[string]bool{"posthouse": true, "posthouse-pg": true},
		populate:  "auto",
		settle:    200 * time.Millisecond,
	}
	var out bytes.Buffer
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	err := run(ctx, o, &out, log)
	if errors.Is(err, pgtest.ErrNotInstalled) && os.Getenv("PGTEST_REQUIRE") == "" {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("output:\n%s", out.String())
	checkTable(t, out.String(), []string{"SMTP in", "Disk per stored message", "IMAP SELECT", "IMAP UID FETCH", "IMAP FETCH 1:*", "IMAP SEARCH TEXT", "POP3 RETR"}, "Posthouse", pgName)
	for _, want := range []string{
		"fsync = on, synchronous_commit = on",
		pgName + ", SMTP in, 10 KB msgs, 1 conn, first run (delivery): ",
		"statements (each one round trip)",
		pgName + ", statements (each one round trip) per IMAP command",
		"UID FETCH 1:* (FLAGS): ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "Failures") {
		t.Errorf("a workload failed")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestParseImaptest reads a stress report as imaptest prints it.
func TestParseImaptest(t *testing.T) {
	out := `Error: testuser9@example.test[1116]: UID=12 MODSEQ dropped 250 -> 247: * 1 FETCH (UID 12 MODSEQ (247))
Logi List Stat Sele Fetc Fet2 Stor Dele Expu Appe Logo 
100%  50%  50% 100% 100% 100%  50% 100% 100% 100% 100% 
                          30%                  5%      
  10    5    5   10   10   10    4    4   10   10   10  10/ 10
  30   15   15   30   30   30   12   12   30   30   30  10/ 10
   9   10   10   11   20   27   30   33   40   80    7 ms/cmd avg
Logi List Stat Sele Fetc Fet2 Stor Dele Expu Appe Logo 
100%  50%  50% 100% 100% 100%  50% 100% 100% 100% 100% 
                          30%                  5%      
  60   30   30   60   60   60   24   24   60   60   60  10/ 10
   7   10   10   11   10   27   15   33   20   40    7 ms/cmd avg
   5    5    5    5    5    5    5    5    5    5    5   9/ 10

Totals:
Logi List Stat Sele Fetc Fet2 Stor Dele Expu Appe Logo 
100%  50%  50% 100% 100% 100%  50% 100% 100% 100% 100% 
                          30%                  5%      
 105   55   55  105  105  105   45   45  105  105  105 
`
	r, err := parseImaptest([]byte(out), 5)
	if err != nil {
		t.Fatal(err)
	}
	if r.perSec != 935.0/5 || r.errors != 1 {
		t.Errorf("perSec %v, errors %d", r.perSec, r.errors)
	}
	// Connected clients: 10, 10, 10 and 9 in the four seconds.
	if r.clients != 39.0/4 {
		t.Errorf("clients %v, want %v", r.clients, 39.0/4)
	}
	// FETCH: 40 commands at 20 ms, 60 at 10 ms.
	// LOGIN: 40 at 9 ms, 60 at 7 ms.
	want := map[string]float64{"Fetc": 14, "Stor": 21, "Expu": 28, "Appe": 56, "Logi": 7.8}
	for k, v := range want {
		if math.Abs(r.ms[k]-v) > 1e-9 {
			t.Errorf("%s: %v ms, want %v", k, r.ms[k], v)
		}
	}
	if _, err := parseImaptest([]byte("imaptest: connection refused\n"), 5); err == nil {
		t.Error("output without totals parsed")
	}
}

// TestRestartOnTakenPort: when another process takes one of the server's
// ports while it is stopped between runs (as Reindex and the PostgreSQL
// import stop it), the restart picks new ports instead of failing the
// workload.
func TestRestartOnTakenPort(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := startPosthouse(ctx, log, phOptions{DNSAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.stop()
	old := s.Addr("pop3")
	ln, err := net.Listen("tcp", old)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Reindex(ctx); err != nil {
		t.Fatalf("restart with pop3's port taken: %v", err)
	}
	if s.Addr("pop3") == old {
		t.Fatalf("pop3 still configured on the taken port %s", old)
	}
	for _, proto := range []string{"smtp", "imap", "pop3"} {
		c, err := net.DialTimeout("tcp", s.Addr(proto), 5*time.Second)
		if err != nil {
			t.Fatalf("%s after the restart: %v", proto, err)
		}
		c.Close()
	}
}
