package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The stress workload runs Dovecot's imaptest in its stress mode (random
// commands from several clients, each on its own user) against each
// system. imaptest is a development tool without a Debian package: it is
// never built here; the workload runs when -imaptest, $IMAPTEST or PATH
// names a binary, and its rows are left out (with a note) otherwise.

// stressUsers are the imaptest users, stress1@ … stress10@.
const stressUsers = 10

func stressUser(i int) string { return fmt.Sprintf("stress%d@%s", i, domain) }

// stressCommands are the imaptest columns reported per command, with the
// IMAP command each one is.
var stressCommands = []struct{ col, name string }{
	{"Fetc", "FETCH"}, {"Stor", "STORE"}, {"Expu", "EXPUNGE"}, {"Appe", "APPEND"},
}

// stressLoginCol is imaptest's LOGIN column: its latency is not a row
// (a client in LOGIN issues none of the timed commands) but the notes
// give it.
const stressLoginCol = "Logi"

// stressResult is one imaptest stress run.
type stressResult struct {
	perSec float64            // commands of every kind per second
	ms     map[string]float64 // average ms per command, by imaptest column
	errors int                // imaptest's "Error:" lines (protocol checks that failed)
	// clients is the average number of clients connected, from the
	// "connected/clients" column of each second's line: a server that
	// keeps its clients waiting in LOGIN or connection set-up has fewer
	// of them issuing the timed commands at once.
	clients float64
	// cpuPerCmd is the CPU time of all the system's processes during the
	// run, per command of every kind, in µs.
	cpuPerCmd float64
}

// findImaptest resolves the imaptest binary: flag, then $IMAPTEST, then
// PATH. "" when there is none.
func findImaptest(flagPath string) string {
	for _, p := range []string{flagPath, os.Getenv("IMAPTEST")} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("imaptest"); err == nil {
		return p
	}
	return ""
}

func (b *bench) mStress() (rate, cpu metric, per []metric) {
	sz := b.sz
	pre := fmt.Sprintf("imaptest stress, %d clients, %d s", sz.StressClients, sz.StressSecs)
	rate = metric{label: pre + ": commands", unit: "cmd/s", higher: true, scale: 1, format: "%.0f"}
	cpu = metric{label: pre + ": CPU of all the system's processes per command", unit: "CPU µs", scale: 1, format: "%.0f"}
	for _, c := range stressCommands {
		per = append(per, millis(fmt.Sprintf("%s: %s, average latency", pre, c.name)))
	}
	return rate, cpu, per
}

// writeStressMbox writes the mbox imaptest takes its APPENDs from: plain
// text messages of 1 to 60 KB.
func writeStressMbox(path string) error {
	var buf bytes.Buffer
	for i := range 100 {
		size := 1<<10 + (i*7919)%(60<<10)
		m := makeMessage("stress", i, size, stressUser(1))
		buf.WriteString("From sender@bench.example Sat Nov 21 10:00:00 2026\n")
		buf.Write(bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n")))
		buf.WriteString("\n")
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func (b *bench) stress(ctx context.Context) {
	rate, cpu, per := b.mStress()
	bin := b.imaptest
	if bin == "" {
		return // declareRows left the rows out and noted why
	}
	dir, err := os.MkdirTemp("", "posthouse-bench-stress-")
	if err != nil {
		b.note("imaptest stress: " + err.Error())
		return
	}
	defer os.RemoveAll(dir)
	mbox := filepath.Join(dir, "stress.mbox")
	if err := writeStressMbox(mbox); err != nil {
		b.note("imaptest stress: " + err.Error())
		return
	}
	connected := map[string][]string{} // system → average clients connected, per run
	login := map[string][]string{}     // system → imaptest's average LOGIN latency, per run
	record := func(s server, label string, r stressResult) {
		b.res.add(rate, s.Name(), r.perSec)
		b.res.add(cpu, s.Name(), r.cpuPerCmd)
		for i, c := range stressCommands {
			b.res.add(per[i], s.Name(), r.ms[c.col])
		}
		b.log.Info("stress", "system", s.Name(), "config", label, "cmd/s", fmt.Sprintf("%.0f", r.perSec), "cpu µs/cmd", fmt.Sprintf("%.0f", r.cpuPerCmd), "ms", r.ms, "errors", r.errors, "clients", fmt.Sprintf("%.1f", r.clients))
		connected[s.Name()] = append(connected[s.Name()], fmt.Sprintf("%.1f", r.clients))
		login[s.Name()] = append(login[s.Name()], fmt.Sprintf("%.1f", r.ms[stressLoginCol]))
	}
	failed := map[string]bool{}
	var dovecotNotes []string
	for run := range b.o.runs {
		for _, s := range b.srvs {
			if failed[s.Name()] {
				continue
			}
			tuner, ok := s.(imapTuner)
			if !ok {
				r, err := runImaptest(ctx, bin, s, mbox, b.sz)
				if err != nil {
					failed[s.Name()] = true
					b.fail(s, "imaptest stress", err)
					continue
				}
				record(s, "", r)
				if r.errors > 0 {
					b.note(fmt.Sprintf("%s, imaptest stress run %d: imaptest reported %d protocol errors.", s.Name(), run+1, r.errors))
				}
				continue
			}
			// Dovecot at its best: the faster of one process per
			// connection (Debian's default) and clients sharing a
			// process (client_limit raised), each run afresh.
			client0, proc0 := tuner.imapLimits()
			var best stressResult
			bestLabel := ""
			for _, cl := range []int{1, stressDovecotClientLimit} {
				label := fmt.Sprintf("service imap client_limit=%d", cl)
				if err := tuner.setIMAPLimits(cl, max(proc0, 2*b.sz.StressClients)); err != nil {
					b.fail(s, "imaptest stress ("+label+")", err)
					continue
				}
				r, err := runImaptest(ctx, bin, s, mbox, b.sz)
				if err != nil {
					b.fail(s, "imaptest stress ("+label+")", err)
					continue
				}
				b.log.Info("stress", "system", s.Name(), "config", label, "cmd/s", fmt.Sprintf("%.0f", r.perSec), "ms", r.ms)
				dovecotNotes = append(dovecotNotes, fmt.Sprintf("run %d, %s: %.0f cmd/s", run+1, label, r.perSec))
				if bestLabel == "" || r.perSec > best.perSec {
					best, bestLabel = r, label
				}
			}
			if err := tuner.setIMAPLimits(client0, proc0); err != nil {
				b.fail(s, "restore Dovecot's imap limits", err)
			}
			if bestLabel != "" {
				record(s, bestLabel, best)
			}
		}
	}
	msg := fmt.Sprintf("imaptest stress: Dovecot's imaptest (%s) in stress mode, %d clients on %d users (one mailbox each, filled by imaptest's own APPENDs from 100 plain-text messages of 1-60 KB), %d s per run; commands/s counts every command (LOGIN, LIST, STATUS, SELECT, FETCH, STORE, EXPUNGE, APPEND, LOGOUT); latency is imaptest's own average per command of each kind, weighted over its 10-second reports.",
		bin, b.sz.StressClients, stressUsers, b.sz.StressSecs)
	if len(dovecotNotes) > 0 {
		msg += fmt.Sprintf(" Dovecot, for its best throughput, runs each time with service imap client_limit=1 (a process per connection, Debian's default) and client_limit=%d with service_count=0 (clients sharing long-lived processes) and imap-login in its high-performance mode (service_count=0, process_min_avail = cores); the faster is reported (%s).",
			stressDovecotClientLimit, strings.Join(dovecotNotes, "; "))
	}
	var conn, logins []string
	for _, s := range b.srvs {
		if c := connected[s.Name()]; len(c) > 0 {
			conn = append(conn, s.Name()+" "+strings.Join(c, ", "))
			logins = append(logins, s.Name()+" "+strings.Join(login[s.Name()], ", "))
		}
	}
	if len(conn) > 0 {
		msg += fmt.Sprintf(" imaptest runs its clients back to back (no pause between commands), so the latency rows depend on how many of the %d clients are connected and issuing commands at once; on average, per run: %s. A client waiting for its connection or LOGIN issues none of the timed commands; imaptest's average LOGIN, in ms, per run: %s.",
			b.sz.StressClients, strings.Join(conn, "; "), strings.Join(logins, "; "))
	}
	msg += " The CPU row counts every process of the system (Dovecot's login and auth processes too) over the run, divided by the commands of every kind."
	b.note(msg)
}

// stressDovecotClientLimit is Dovecot's raised service imap client_limit
// for the stress row: every client in one process.
const stressDovecotClientLimit = 100

// imapTuner is a system whose IMAP service can be resized between
// workloads (Dovecot's client_limit and process_limit).
type imapTuner interface {
	imapLimits() (client, process int)
	setIMAPLimits(client, process int) error
}

// runImaptest runs one imaptest stress session against s.
func runImaptest(ctx context.Context, bin string, s server, mbox string, sz sizes) (stressResult, error) {
	host, port, _ := strings.Cut(s.Addr("imap"), ":")
	ctx, cancel := context.WithTimeout(ctx, time.Duration(sz.StressSecs)*time.Second+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "host="+host, "port="+port,
		"user=stress%d@"+domain, fmt.Sprintf("users=%d", stressUsers), "pass="+password,
		fmt.Sprintf("clients=%d", sz.StressClients), fmt.Sprintf("secs=%d", sz.StressSecs), "mbox="+mbox)
	c0 := systemCPU(s)
	out, err := cmd.CombinedOutput()
	used := systemCPU(s) - c0
	if err != nil {
		return stressResult{}, fmt.Errorf("imaptest: %w\n%s", err, tail(out, 2000))
	}
	r, err := parseImaptest(out, sz.StressSecs)
	if err == nil {
		r.cpuPerCmd = float64(used.Microseconds()) / (r.perSec * float64(sz.StressSecs))
	}
	return r, err
}

// parseImaptest reads imaptest's stress output: a header of command
// columns, a line of counts per second, every ten of them a line of
// average milliseconds per command ("… ms/cmd avg"), and at the end
// "Totals:" with the header and the total counts.
func parseImaptest(out []byte, secs int) (stressResult, error) {
	res := stressResult{ms: map[string]float64{}}
	var cols []string
	block := map[string]float64{}  // counts since the last average line
	sumMs := map[string]float64{}  // Σ count × ms
	weight := map[string]float64{} // Σ count
	totals := false
	var totalCounts []float64
	var connSum, connLines float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Error:"):
			res.errors++
		case len(f) > 0 && f[0] == "Logi":
			cols = f
		case line == "Totals:":
			totals = true
		case cols == nil || len(f) < len(cols):
		case strings.HasSuffix(line, "ms/cmd avg"):
			nums, ok := numbers(f[:len(cols)])
			if !ok {
				continue
			}
			for i, c := range cols {
				sumMs[c] += block[c] * nums[i]
				weight[c] += block[c]
			}
			block = map[string]float64{}
		default:
			nums, ok := numbers(f[:len(cols)])
			if !ok {
				continue // the percentage lines
			}
			if totals {
				totalCounts = nums
				continue
			}
			for i, c := range cols {
				block[c] += nums[i]
			}
			if len(f) > len(cols) {
				if n, err := strconv.ParseFloat(strings.TrimSuffix(f[len(cols)], "/"), 64); err == nil {
					connSum += n
					connLines++
				}
			}
		}
	}
	if connLines > 0 {
		res.clients = connSum / connLines
	}
	if totalCounts == nil {
		return res, errors.New("imaptest printed no totals")
	}
	var all float64
	for _, n := range totalCounts {
		all += n
	}
	res.perSec = all / float64(secs)
	for c, w := range weight {
		if w > 0 {
			res.ms[c] = sumMs[c] / w
		}
	}
	for _, c := range stressCommands {
		if weight[c.col] == 0 {
			return res, fmt.Errorf("imaptest reported no %s latency", c.name)
		}
	}
	return res, nil
}

func numbers(f []string) ([]float64, bool) {
	out := make([]float64, len(f))
	for i, s := range f {
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, false
		}
		out[i] = n
	}
	return out, true
}
