package main

import (
	"context"
	"errors"
	"sync"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/imapd"
)

func init() { registerService("imap", 30, startIMAP) }

// startIMAP opens the IMAP listeners: "imap" (143, STARTTLS) and "imaps"
// (993, implicit TLS), one imapd.Server each. They share one connection
// counter, so [limits] max_connections and max_connections_per_ip count IMAP
// connections on both ports together. APPEND accepts messages up to
// [limits] max_message_size, the same limit SMTP applies.
func startIMAP(ctx context.Context, a *app) (func(context.Context) error, error) {
	conns := limit.NewConns(a.cfg.Limits.MaxConnectionsPerIP, a.cfg.Limits.MaxConnections)
	var (
		servers []*imapd.Server
		wg      sync.WaitGroup
	)
	shutdown := func(ctx context.Context) error {
		errs := make([]error, len(servers))
		var swg sync.WaitGroup
		for i, srv := range servers {
			swg.Add(1)
			go func() {
				defer swg.Done()
				errs[i] = srv.Shutdown(ctx)
			}()
		}
		swg.Wait()
		wg.Wait()
		return errors.Join(errs...)
	}

	for _, l := range []struct {
		name     string
		implicit bool
	}{{"imap", false}, {"imaps", true}} {
		ln, err := a.listen(l.name)
		if err != nil {
			shutdown(context.Background())
			return nil, err
		}
		if ln == nil {
			continue
		}
		srv, err := imapd.New(imapd.Options{
			Logger:           a.log,
			TLS:              a.tls,
			ImplicitTLS:      l.implicit,
			LoopbackIsSecure: a.cfg.IMAP.LoopbackIsSecure,
			MaxAppendSize:    int64(a.cfg.Limits.MaxMessageSize),
			Limiter:          conns,
			Store:            a.store,
			Auth:             a.auth,
		})
		if err != nil {
			ln.Close()
			shutdown(context.Background())
			return nil, err
		}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, ln); err != nil {
				a.log.Error("imap listener stopped", "proto", l.name, "err", err)
			}
		}()
	}
	if len(servers) == 0 {
		return nil, nil
	}
	return shutdown, nil
}
