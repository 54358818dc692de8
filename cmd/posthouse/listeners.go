package main

import (
	"context"
	"errors"
	"net"
	"sync"
)

// mailServer is the face every protocol package's Server shows cmd.
type mailServer interface {
	Serve(ctx context.Context, ln net.Listener) error
	Shutdown(ctx context.Context) error
}

// serveEach opens the named [listen] entries (a disabled one is skipped),
// builds a server for each with build, and serves each in a goroutine it
// owns. A Serve error other than closed is logged. The shutdown it returns
// shuts every server down at once under ctx and waits for the goroutines;
// it is nil when no listener was enabled. On error, what was started is
// stopped.
func serveEach(ctx context.Context, a *app, names []string, closed error, build func(name string) (mailServer, error)) (func(context.Context) error, error) {
	var (
		servers []mailServer
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
	for _, name := range names {
		ln, err := a.listen(name)
		if err != nil {
			shutdown(context.Background())
			return nil, err
		}
		if ln == nil {
			continue
		}
		srv, err := build(name)
		if err != nil {
			ln.Close()
			shutdown(context.Background())
			return nil, err
		}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ctx, ln); err != nil && (closed == nil || !errors.Is(err, closed)) {
				a.log.Error("listener stopped", "proto", name, "err", err)
			}
		}()
	}
	if len(servers) == 0 {
		return nil, nil
	}
	return shutdown, nil
}
