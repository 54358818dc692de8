package config

import (
	"fmt"
	"time"
)

// validateQueueLimits checks [queue]'s concurrency bounds and timeouts.
// One stalled destination must not be able to take every delivery slot,
// so max_per_domain stays below max_connections (unless both are 1).
func (c *Config) validateQueueLimits(add func(key, msg, hint string)) {
	q := c.Queue
	counts := []struct {
		key  string
		v    int
		hint string
	}{
		{"queue.max_connections", q.MaxConnections, "max_connections = 50"},
		{"queue.max_per_domain", q.MaxPerDomain, "max_per_domain = 5"},
		{"queue.max_per_host", q.MaxPerHost, "max_per_host = 10"},
	}
	ok := true
	for _, n := range counts {
		if n.v < 1 || n.v > 10000 {
			add(n.key, fmt.Sprintf("%d is not between 1 and 10000", n.v), n.hint)
			ok = false
		}
	}
	if ok && q.MaxConnections > 1 && q.MaxPerDomain >= q.MaxConnections {
		add("queue.max_per_domain", fmt.Sprintf("%d leaves no slot for other destinations (max_connections = %d)", q.MaxPerDomain, q.MaxConnections),
			"keep max_per_domain below max_connections, so one stalled destination cannot hold every slot")
	}
	timeouts := []struct {
		key string
		d   Duration
		def string
	}{
		{"queue.connect_timeout", q.ConnectTimeout, "30s"},
		{"queue.greeting_timeout", q.GreetingTimeout, "5m"},
		{"queue.command_timeout", q.CommandTimeout, "5m"},
		{"queue.mail_timeout", q.MailTimeout, "5m"},
		{"queue.rcpt_timeout", q.RcptTimeout, "5m"},
		{"queue.data_init_timeout", q.DataInitTimeout, "2m"},
		{"queue.data_block_timeout", q.DataBlockTimeout, "3m"},
		{"queue.data_done_timeout", q.DataDoneTimeout, "10m"},
		{"queue.connection_timeout", q.ConnectionTimeout, "30m"},
	}
	for _, t := range timeouts {
		if t.d.Duration < time.Second || t.d.Duration > 24*time.Hour {
			add(t.key, fmt.Sprintf("%s is not between 1s and 24h", t.d), fmt.Sprintf(`%s = %q (RFC 5321 section 4.5.3.2)`, t.key[len("queue."):], t.def))
		}
	}
	if l := q.ClaimLease.Duration; l < 3*time.Second || l > time.Hour {
		add("queue.claim_lease", fmt.Sprintf("%s is not between 3s and 1h", q.ClaimLease), `claim_lease = "60s"`)
	}
}
