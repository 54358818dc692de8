// Command posthouse is the Posthouse mail server: one binary with the
// subcommands serve, admin, check-config and version.
//
// This package holds no protocol or storage logic. It reads the
// configuration, builds the slog handler and the shared *tls.Config (its
// certificates come from the certs package: ACME, certificate files, or the
// self-signed certificate in data_dir/tls), opens the databases, and starts
// and stops everything else. serve (serve.go) does so in one sequence read
// top to bottom: data_dir → user database, mailstore, outbound queue →
// mailstore reconciliation → certificates → queue workers → listeners
// (smtp, imap, pop3, managesieve, http, admin; each protocol's options are
// built in its own serve_<name>.go, the web console's in serve_web.go). It stops them in reverse, in two phases: stop accepting
// and let sessions finish for a grace period, then cut what remains; the
// databases close last. serve and admin open the mailstore the same way,
// through mailstore/backend with [store] backend (storeOptions); this
// package imports no backend. The subcommands and the admin nouns are plain
// tables (commands in main.go, adminCommands in admin.go), each noun in its
// own admin_<noun>.go.
//
// Before anything opens, serve sets the Go soft memory limit from [limits]
// memory_limit unless GOMEMLIMIT is set (memlimit.go). Listeners named in
// [listen] proxy_protocol are wrapped in server/proxy when opened
// (app.listen, serve_proxy.go), so each session's RemoteAddr is the client
// address of the load balancer's PROXY header; the protocol packages do not
// know.
//
// Exit codes: 0 success; 1 failure (one line on stderr says why); 2 usage
// error or invalid input; 3 something named does not exist (domain, user,
// alias); 4 it already exists; 5 refused because it would destroy data
// (removing a domain that still has users, without --force).
package main
