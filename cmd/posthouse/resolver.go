package main

import (
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/metrics"
)

// resolver is the one DNS resolver serve's services share (inbound checks,
// the port-25 gate, milters, the queue): the configured nameserver, its
// exchanges counted by metrics, and one answer cache ([dns] cache_size).
// err says why there is none; each service says what it does without.
type resolver struct {
	r   *dns.Resolver
	err error
}

func newResolver(cfg *config.Config, rec *metrics.Recorder) resolver {
	opts := dns.Options{Server: cfg.DNS.Resolver, Observe: dnsObserver(rec)}
	if cfg.DNS.CacheSize > 0 {
		opts.Cache = dns.NewCache(cfg.DNS.CacheSize, 0)
	}
	r, err := dns.New(opts)
	return resolver{r, err}
}
