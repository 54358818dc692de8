package config

import (
	"strings"
	"testing"
	"time"
)

func TestQueueLimits(t *testing.T) {
	c := Default()
	if q := c.Queue; q.MaxConnections != 50 || q.MaxPerDomain != 5 || q.MaxPerHost != 10 ||
		q.GreetingTimeout.Duration != 5*time.Minute || q.MailTimeout.Duration != 5*time.Minute ||
		q.RcptTimeout.Duration != 5*time.Minute || q.DataInitTimeout.Duration != 2*time.Minute ||
		q.DataBlockTimeout.Duration != 3*time.Minute || q.DataDoneTimeout.Duration != 10*time.Minute ||
		q.CommandTimeout.Duration != 5*time.Minute || q.ConnectTimeout.Duration != 30*time.Second ||
		q.ConnectionTimeout.Duration != 30*time.Minute || q.ClaimLease.Duration != time.Minute {
		t.Errorf("defaults: %+v", q)
	}
	c, err := Parse([]byte("[queue]\nmax_connections = 8\nmax_per_domain = 2\nmax_per_host = 3\ngreeting_timeout = \"2s\"\ndata_done_timeout = \"3s\"\nconnection_timeout = \"1m\"\nclaim_lease = \"10s\"\n"), "q.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if q := c.Queue; q.MaxConnections != 8 || q.MaxPerDomain != 2 || q.MaxPerHost != 3 || q.GreetingTimeout.Duration != 2*time.Second ||
		q.DataDoneTimeout.Duration != 3*time.Second || q.ConnectionTimeout.Duration != time.Minute || q.MailTimeout.Duration != 5*time.Minute ||
		q.ClaimLease.Duration != 10*time.Second {
		t.Errorf("parsed: %+v", q)
	}

	tests := []struct {
		name, doc string
		line      int
		key       string
		contains  string
	}{
		{"per domain takes every slot", "[queue]\nmax_connections = 4\nmax_per_domain = 4\n", 3, "queue.max_per_domain", "no slot for other destinations"},
		{"zero per host", "[queue]\nmax_per_host = 0\n", 2, "queue.max_per_host", "between 1 and 10000"},
		{"zero greeting timeout", "[queue]\ngreeting_timeout = \"0s\"\n", 2, "queue.greeting_timeout", "between 1s and 24h"},
		{"claim lease too short", "[queue]\nclaim_lease = \"1s\"\n", 2, "queue.claim_lease", "between 3s and 1h"},
		{"huge data timeout", "[queue]\ndata_done_timeout = \"48h\"\n", 2, "queue.data_done_timeout", `"10m"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), "v.toml")
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			p := problems(t, err)[0]
			if p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Msg+" "+p.Hint, tc.contains) {
				t.Errorf("problem = %+v, want line %d key %q mentioning %q", p, tc.line, tc.key, tc.contains)
			}
		})
	}
	// One slot in all is a choice, not a mistake.
	c, _ = Parse([]byte("[queue]\nmax_connections = 1\nmax_per_domain = 1\n"), "one.toml")
	if err := c.Validate(); err != nil {
		t.Errorf("max_connections = 1: %v", err)
	}
}
