package main

import (
	"cmp"
	"fmt"
	"path/filepath"

	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/srs"
)

// openSRS builds the Sender Rewriting Scheme of [queue] srs: nil when it is
// off. Its key is made on first start and kept in data_dir/srs.key (0600);
// the queue rewrites with it and smtpd reverses bounces with it.
func openSRS(cfg *config.Config) (*srs.Rewriter, error) {
	if !cfg.Queue.SRS {
		return nil, nil
	}
	key, err := srs.LoadKey(filepath.Join(cfg.DataDir, "srs.key"))
	if err != nil {
		return nil, err
	}
	rw, err := srs.New(srs.Options{Domain: cmp.Or(cfg.Queue.SRSDomain, cfg.Hostname), Secret: key})
	if err != nil {
		return nil, fmt.Errorf("[queue] srs: %w", err)
	}
	return rw, nil
}
