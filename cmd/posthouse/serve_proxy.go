package main

import (
	"net"

	"github.com/posthouse/posthouse/server/proxy"
)

// proxyListener makes the [listen] entry name read PROXY headers from the
// load balancers in [listen] proxy_networks (package server/proxy); every
// other source is refused. The protocol packages see the client's address
// through RemoteAddr and never know.
func proxyListener(ln net.Listener, a *app, name string) net.Listener {
	return proxy.Listen(ln, proxy.Options{
		Trusted:       a.cfg.Listen.ProxyPrefixes(),
		HeaderTimeout: proxy.DefaultHeaderTimeout,
		Logger:        a.log.With("proto", name),
	})
}
