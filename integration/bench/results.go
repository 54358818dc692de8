package main

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// metric is one row of the results table.
type metric struct {
	label  string
	unit   string
	higher bool // higher is better (throughput); else lower is better
	scale  float64
	format string
}

// results holds every run's figure: results[metric label][server name].
type results struct {
	order  []metric
	values map[string]map[string][]float64
}

func newResults() *results {
	return &results{values: map[string]map[string][]float64{}}
}

// declare adds rows to the table (in this order) before any figure is
// known, so a workload that fails still shows its rows.
func (r *results) declare(ms ...metric) {
	for _, m := range ms {
		if _, ok := r.values[m.label]; !ok {
			r.order = append(r.order, m)
			r.values[m.label] = map[string][]float64{}
		}
	}
}

// add records one run's raw value (before scale) for a server.
func (r *results) add(m metric, srv string, v float64) {
	r.declare(m)
	r.values[m.label][srv] = append(r.values[m.label][srv], v)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// header is the context printed above the table.
type header struct {
	date, machine, cores, goVersion, posthouse, others, mode string
	runs                                                     int
	// pg describes the PostgreSQL of the postgres backend's column ("":
	// not run).
	pg string
}

// write prints the Markdown table: one row per metric, the median of the
// runs for each system and the ratio of the first column to the last
// (Posthouse to Postfix + Dovecot), oriented so that >1 means Posthouse
// is better.
func (r *results) write(w io.Writer, h header, cols []string) {
	fmt.Fprintf(w, "Benchmark of %s, %s, median of %d runs (%s mode).\n\n", h.date, h.machine, h.runs, h.mode)
	fmt.Fprintf(w, "Machine: %s cores; %s. Systems: %s; %s.\n\n", h.cores, h.goVersion, h.posthouse, h.others)
	if h.pg != "" {
		fmt.Fprintf(w, "%s.\n\n", h.pg)
	}
	fmt.Fprintf(w, "| Workload | Unit | %s | Ratio (>1: Posthouse better) |\n", strings.Join(cols, " | "))
	fmt.Fprintf(w, "|---|---|%s---|\n", strings.Repeat("---:|", len(cols)))
	for _, m := range r.order {
		cells := make([]string, len(cols))
		meds := make([]float64, len(cols))
		for i, c := range cols {
			v, ok := r.values[m.label][c]
			if !ok || len(v) == 0 {
				cells[i] = "n/a"
				meds[i] = -1
				continue
			}
			meds[i] = median(v) * m.scale
			cells[i] = fmt.Sprintf(m.format, meds[i])
		}
		ratio := "n/a"
		if last := len(cols) - 1; last > 0 && meds[0] > 0 && meds[last] > 0 {
			q := meds[0] / meds[last]
			if !m.higher {
				q = meds[last] / meds[0]
			}
			ratio = fmt.Sprintf("%.2f", q)
		}
		dir := "lower is better"
		if m.higher {
			dir = "higher is better"
		}
		fmt.Fprintf(w, "| %s | %s (%s) | %s | %s |\n", m.label, m.unit, dir, strings.Join(cells, " | "), ratio)
	}
}

// logRuns logs every run's value of each row, so the spread behind a
// median can be seen (the table shows medians only).
func (r *results) logRuns(log *slog.Logger, cols []string) {
	for _, m := range r.order {
		args := []any{"row", m.label}
		for _, c := range cols {
			var vals []string
			for _, v := range r.values[m.label][c] {
				vals = append(vals, fmt.Sprintf(m.format, v*m.scale))
			}
			args = append(args, c, strings.Join(vals, " "))
		}
		log.Info("runs", args...)
	}
}
