package main

import (
	"context"
	"errors"
	"sync"

	"github.com/posthouse/posthouse/auth/limit"
	"github.com/posthouse/posthouse/pop3d"
)

func init() { registerService("pop3", 40, startPOP3) }

// startPOP3 opens the POP3 listeners: "pop3" (110, STLS) and "pop3s" (995,
// implicit TLS), one pop3d.Server each. They share one connection counter,
// so [limits] max_connections and max_connections_per_ip count POP3
// connections on both ports together.
func startPOP3(ctx context.Context, a *app) (func(context.Context) error, error) {
	conns := limit.NewConns(a.cfg.Limits.MaxConnectionsPerIP, a.cfg.Limits.MaxConnections)
	var (
		servers []*pop3d.Server
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
	}{{"pop3", false}, {"pop3s", true}} {
		ln, err := a.listen(l.name)
		if err != nil {
			shutdown(context.Background())
			return nil, err
		}
		if ln == nil {
			continue
		}
		srv, err := pop3d.New(pop3d.Options{
			Logger:           a.log,
			Hostname:         a.cfg.Hostname,
			TLS:              a.tls,
			ImplicitTLS:      l.implicit,
			LoopbackIsSecure: a.cfg.POP3.LoopbackIsSecure,
			Store:            a.store,
			Auth:             a.auth,
			Conns:            conns,
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
			if err := srv.Serve(ctx, ln); err != nil && !errors.Is(err, pop3d.ErrServerClosed) {
				a.log.Error("pop3 listener stopped", "proto", l.name, "err", err)
			}
		}()
	}
	if len(servers) == 0 {
		return nil, nil
	}
	return shutdown, nil
}
