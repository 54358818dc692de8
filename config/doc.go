// Package config holds Posthouse's configuration: the TOML schema, its
// defaults, environment overrides and validation.
//
// Every field has a safe default, so `posthouse serve` runs with no file at
// all: data under ./data, the hostname from the operating system, the
// standard ports and a self-signed certificate. A file only needs the keys
// that differ. Unknown keys and bad values are refused with the file, line and
// a hint, because a mistyped key silently ignored is how mail servers end up
// open relays or listening on the wrong port.
//
// Environment variables override the file, for containers:
// POSTHOUSE_HOSTNAME, POSTHOUSE_DATA_DIR and POSTHOUSE_<SECTION>_<KEY> for
// every key of a section (POSTHOUSE_LISTEN_SMTP, POSTHOUSE_LIMITS_MAX_MESSAGE_SIZE,
// …). An unknown POSTHOUSE_ variable is refused like an unknown key
// (POSTHOUSE_CONFIG, the config file's path, is read by the command, not here).
//
// Sizes (ByteSize) take "50MiB", "10MB", "512KiB" or a plain integer of
// bytes; durations (Duration) take Go durations such as "10m" or "120h", and
// whole days such as "5d". Lists (auth.trusted_networks, inbound.dnsbl) are TOML arrays of
// strings; from the environment, one string separated by commas or spaces.
//
// This package imports nothing of Posthouse: it returns plain structs that
// cmd/posthouse turns into each server's Options.
package config
