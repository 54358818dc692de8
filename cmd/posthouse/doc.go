// Command posthouse is the Posthouse mail server: one binary with the
// subcommands serve, admin, check-config and version.
//
// This package holds no protocol or storage logic. It reads the
// configuration, builds the slog handler and the shared *tls.Config, opens
// the system database and the mailstore, starts the services each protocol
// registers from its own serve_<name>.go (registerService), handles signals
// and shuts everything down in reverse order. admin subcommands register
// themselves the same way (registerAdmin).
//
// Exit codes: 0 success; 1 failure (one line on stderr says why); 2 usage
// error or invalid input; 3 something named does not exist (domain, user,
// alias); 4 it already exists; 5 refused because it would destroy data
// (removing a domain that still has users, without --force).
package main
