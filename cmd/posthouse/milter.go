package main

import (
	"fmt"
	"log/slog"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/delivery"
	"github.com/posthouse/posthouse/milter"
)

// milterFilters builds one delivery filter per [[inbound.milter]] table, in
// their order. They run after the inbound authentication filter and
// before the junk filter. The client's host name they pass on comes from
// the configured resolver; without one, milters see every client as
// "unknown".
func milterFilters(cfg *config.Config, log *slog.Logger, shared resolver) ([]delivery.Filter, error) {
	if len(cfg.Inbound.Milter) == 0 {
		return nil, nil
	}
	var res milter.Resolver
	if r, err := shared.r, shared.err; err != nil {
		log.Warn("no DNS resolver: milters see every client's host name as unknown", "proto", "delivery", "err", err)
	} else {
		res = r
	}
	var filters []delivery.Filter
	for i, m := range cfg.Inbound.Milter {
		f, err := milter.New(milter.Options{
			Address:    m.Address,
			Timeout:    m.Timeout.Duration,
			OnError:    milter.OnError(m.OnError),
			Submission: m.Submission,
			Hostname:   cfg.Hostname,
			Resolver:   res,
			Logger:     log.With("proto", "delivery"),
		})
		if err != nil {
			return nil, fmt.Errorf("inbound.milter[%d]: %w", i+1, err)
		}
		filters = append(filters, f)
	}
	return filters, nil
}
