package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks values that decode but make no sense, and returns an
// *Error naming each one with the line (or variable) that set it.
func (c *Config) Validate() error {
	var problems []Problem
	add := func(key, msg, hint string) {
		p := Problem{Key: key, Msg: msg, Hint: hint}
		if o, ok := c.origins[key]; ok {
			if o.env != "" {
				p.File, p.Key = "environment", o.env
			} else {
				p.File, p.Line, p.Column = o.file, o.line, o.col
			}
		} else if c.Source != "" {
			p.File = c.Source
		}
		problems = append(problems, p)
	}

	if c.Hostname == "" {
		add("hostname", "must not be empty", `hostname = "mail.example.com"`)
	} else if !validHostname(c.Hostname) {
		add("hostname", fmt.Sprintf("%q is not a valid host name", c.Hostname),
			"letters, digits, '-' and '.' only, like mail.example.com")
	}
	if strings.TrimSpace(c.DataDir) == "" {
		add("data_dir", "must not be empty", `data_dir = "/var/lib/posthouse"`)
	}

	seen := map[string]string{}
	for _, l := range c.Listeners() {
		key := "listen." + l.Name
		if l.Addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(l.Addr)
		if err != nil {
			add(key, fmt.Sprintf("%q is not host:port", l.Addr), `use ":25", "127.0.0.1:2525" or "[::1]:25"; "" disables the listener`)
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add(key, fmt.Sprintf("port %q is not a number between 1 and 65535", port), "e.g. "+l.Name+` = ":`+strconv.Itoa(l.DefaultPort)+`"`)
			continue
		}
		if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
			add(key, fmt.Sprintf("host %q is neither an IP address nor a host name", host), `leave it empty (":25") to listen on every address`)
			continue
		}
		if other, clash := portClash(seen, host, port); clash {
			add(key, fmt.Sprintf("%q is also used by listen.%s", l.Addr, other), "each listener needs its own port")
			continue
		}
		seen[net.JoinHostPort(host, port)] = l.Name
	}

	switch {
	case (c.TLS.CertFile == "") != (c.TLS.KeyFile == ""):
		key := "tls.cert_file"
		if c.TLS.KeyFile == "" {
			key = "tls.key_file"
		}
		add(key, "cert_file and key_file go together", "set both, or neither for a self-signed certificate kept in data_dir")
	case c.TLS.CertFile != "":
		for _, f := range []struct{ key, path string }{{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
			if _, err := os.Stat(f.path); err != nil {
				add(f.key, "cannot read "+f.path+": "+unwrapPathError(err), "give the path of a PEM file readable by posthouse")
			}
		}
	}

	if c.TLS.ACME {
		if c.TLS.CertFile != "" {
			add("tls.acme", "acme and cert_file exclude each other", "choose certificate files or ACME")
		}
		if c.Listen.HTTP == "" && c.Listen.HTTPS == "" {
			add("tls.acme", "ACME needs the http or https listener for its challenges", `set [listen] http = ":80" or https = ":443"`)
		}
	}
	if c.TLS.ACMEDirectory != "" {
		if u, err := url.Parse(c.TLS.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
			add("tls.acme_directory", fmt.Sprintf("%q is not an https URL", c.TLS.ACMEDirectory), `acme_directory = "https://acme-v02.api.letsencrypt.org/directory"`)
		}
	}

	if c.Limits.MaxMessageSize < 1024 {
		add("limits.max_message_size", fmt.Sprintf("%d bytes is too small", int64(c.Limits.MaxMessageSize)), `max_message_size = "50MiB"`)
	}
	if c.Limits.MaxRecipients < 1 {
		add("limits.max_recipients", "must be at least 1", "RFC 5321 §4.5.3.1.8 asks for at least 100: max_recipients = 100")
	}
	if c.Limits.MaxConnections < 1 {
		add("limits.max_connections", "must be at least 1", "max_connections = 1000")
	}
	if c.Limits.MaxConnectionsPerIP < 1 {
		add("limits.max_connections_per_ip", "must be at least 1", "max_connections_per_ip = 50")
	} else if c.Limits.MaxConnections >= 1 && c.Limits.MaxConnectionsPerIP > c.Limits.MaxConnections {
		add("limits.max_connections_per_ip", fmt.Sprintf("%d is more than max_connections (%d)", c.Limits.MaxConnectionsPerIP, c.Limits.MaxConnections),
			"lower it or raise max_connections")
	}

	for _, n := range c.Auth.TrustedNetworks {
		if _, err := ParseNetwork(n); err != nil {
			add("auth.trusted_networks", fmt.Sprintf("%q is not a CIDR prefix or an IP address", n),
				`trusted_networks = ["127.0.0.0/8", "::1/128", "192.0.2.10"]; [] trusts none`)
		}
	}
	if n := c.Auth.IPMaxFailures; n < 1 || n > 64 {
		add("auth.ip_max_failures", fmt.Sprintf("%d is not between 1 and 64", n), "ip_max_failures = 10")
	}
	if n := c.Auth.AccountMaxFailures; n < 1 || n > 64 {
		add("auth.account_max_failures", fmt.Sprintf("%d is not between 1 and 64", n), "account_max_failures = 10")
	}
	for _, d := range []struct {
		key      string
		v        Duration
		min, max time.Duration
		hint     string
	}{
		{"auth.ip_window", c.Auth.IPWindow, time.Second, 24 * time.Hour, `ip_window = "10m"`},
		{"auth.account_window", c.Auth.AccountWindow, time.Second, 7 * 24 * time.Hour, `account_window = "1h"`},
		{"auth.account_interval", c.Auth.AccountInterval, 100 * time.Millisecond, time.Hour, `one password check per interval for an account under attack: account_interval = "5s"`},
		{"auth.known_address_ttl", c.Auth.KnownAddressTTL, time.Hour, 366 * 24 * time.Hour, `known_address_ttl = "30d"`},
	} {
		if d.v.Duration < d.min || d.v.Duration > d.max {
			add(d.key, fmt.Sprintf("%s is not between %s and %s", d.v, Duration{d.min}, Duration{d.max}), d.hint)
		}
	}
	if c.Limits.MaxConnectionRate < 0 {
		add("limits.max_connection_rate", "must not be negative", "max_connection_rate = 60 (new connections per address per minute), or 0 for no limit")
	}
	if c.Limits.MaxJunkCommands < 1 {
		add("limits.max_junk_commands", "must be at least 1", "max_junk_commands = 100")
	}
	if c.Limits.MaxSessionDuration.Duration < time.Minute {
		add("limits.max_session_duration", fmt.Sprintf("%s is too short", c.Limits.MaxSessionDuration),
			`a 50MiB message on a slow link takes minutes: max_session_duration = "30m"`)
	}
	if d := c.Limits.LoginTimeout.Duration; d < time.Second || d > 10*time.Minute {
		add("limits.login_timeout", fmt.Sprintf("%s is not between 1s and 10m", c.Limits.LoginTimeout), `login_timeout = "30s"`)
	}
	if _, _, err := ParseFreeSpace(c.Limits.MinFreeSpace); err != nil {
		add("limits.min_free_space", err.Error(), `min_free_space = "1%, 200MiB" (the larger of the two), "5%", "2GiB" or "0"`)
	}

	if c.Queue.Expiry.Duration < time.Minute {
		add("queue.expiry", fmt.Sprintf("%s is too short", c.Queue.Expiry), `messages are retried until expiry; expiry = "120h"`)
	}
	if c.Queue.RemotePort < 1 || c.Queue.RemotePort > 65535 {
		add("queue.remote_port", fmt.Sprintf("%d is not a port", c.Queue.RemotePort), "remote_port = 25")
	}
	if c.Queue.SRSDomain != "" && !validHostname(c.Queue.SRSDomain) {
		add("queue.srs_domain", fmt.Sprintf("%q is not a valid domain", c.Queue.SRSDomain), `srs_domain = "mail.example.com", or "" for hostname`)
	}

	if c.DNS.Resolver != "" {
		host, port, err := net.SplitHostPort(c.DNS.Resolver)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			add("dns.resolver", fmt.Sprintf("%q is not host:port", c.DNS.Resolver), `resolver = "127.0.0.1:53", or "" for /etc/resolv.conf`)
		}
	}

	if c.DNS.CacheSize < 0 || c.DNS.CacheSize > 1_000_000 {
		add("dns.cache_size", fmt.Sprintf("%d is out of range", c.DNS.CacheSize), "cache_size = 10000, or 0 for no cache")
	}

	c.validateInbound(add)
	for _, k := range []struct {
		key, v  string
		allowed []string
		hint    string
	}{
		{"inbound.spf_fail", c.Inbound.SPFFail, []string{"junk", "reject", "accept"}, `spf_fail = "junk" (or "reject", "accept")`},
		{"inbound.spoof_own_domains", c.Inbound.SpoofOwnDomains, []string{"reject", "junk"}, `spoof_own_domains = "reject" (or "junk")`},
		{"inbound.iprev", c.Inbound.IPRev, []string{"accept", "junk"}, `iprev = "accept" (only reported) or "junk"`},
	} {
		if !slices.Contains(k.allowed, k.v) {
			add(k.key, fmt.Sprintf("unknown action %q", k.v), k.hint)
		}
	}

	if !slices.Contains(StoreBackends, c.Store.Backend) {
		add("store.backend", fmt.Sprintf("unknown backend %q", c.Store.Backend),
			`backend = "maildir" (Maildir files and a SQLite index per account) or "postgres" (with dsn)`)
	}
	if c.Store.Backend == "postgres" {
		switch dsn := c.Store.DSN; {
		case dsn == "":
			add("store.dsn", "backend \"postgres\" needs the database to use",
				`dsn = "postgres://posthouse@db.example.org/posthouse" (or set POSTHOUSE_STORE_DSN)`)
		case !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") && !strings.Contains(dsn, "="):
			add("store.dsn", "not a postgres:// URL nor key=value pairs",
				`dsn = "postgres://user@host:5432/dbname" or "host=/run/postgresql dbname=posthouse"`)
		}
	}

	if t := c.Inbound.JunkThreshold; !(t > 0 && t < 1) {
		add("inbound.junk_threshold", fmt.Sprintf("%v is not between 0 and 1 (exclusive)", t),
			"junk_threshold = 0.9 (higher files less into Junk)")
	}

	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "warning", "error":
	default:
		add("log.level", fmt.Sprintf("unknown level %q", c.Log.Level), "one of debug, info, warn, error")
	}
	switch strings.ToLower(c.Log.Format) {
	case "text", "json":
	default:
		add("log.format", fmt.Sprintf("unknown format %q", c.Log.Format), "text or json")
	}

	c.validateMilters(add)
	c.validateProxy(add)
	if _, _, err := ParseMemoryLimit(c.Limits.MemoryLimit); err != nil {
		add("limits.memory_limit", err.Error(), `memory_limit = "auto" (80% of the cgroup's or machine's memory), "1GiB", "60%" or "off"`)
	}
	c.validateQueueLimits(add)

	if len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// portClash reports whether host:port cannot be bound beside the addresses
// already seen: the same address, or the same port where either side is a
// wildcard (":25" takes port 25 on every address).
func portClash(seen map[string]string, host, port string) (string, bool) {
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	for addr, name := range seen {
		h, p, _ := net.SplitHostPort(addr)
		if p == port && (h == host || wild(h) || wild(host)) {
			return name, true
		}
	}
	return "", false
}

// Listener is one entry of [listen].
type Listener struct {
	Name        string // "smtp", "submission", …, as in the TOML
	Addr        string // "" when disabled
	DefaultPort int
}

// Listeners lists [listen] in a fixed order: smtp, submission, submissions,
// pop3, pop3s, imap, imaps, managesieve, http, https, admin.
func (c *Config) Listeners() []Listener {
	return []Listener{
		{"smtp", c.Listen.SMTP, 25},
		{"submission", c.Listen.Submission, 587},
		{"submissions", c.Listen.Submissions, 465},
		{"pop3", c.Listen.POP3, 110},
		{"pop3s", c.Listen.POP3S, 995},
		{"imap", c.Listen.IMAP, 143},
		{"imaps", c.Listen.IMAPS, 993},
		{"managesieve", c.Listen.ManageSieve, 4190},
		{"http", c.Listen.HTTP, 80},
		{"https", c.Listen.HTTPS, 443},
		{"admin", c.Listen.Admin, 8080},
	}
}

// validHostname accepts DNS names made of LDH labels (RFC 1123 §2.1).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

// ParseNetwork parses a trusted_networks entry: a CIDR prefix
// ("192.0.2.0/24", "2001:db8::/48") or a single address ("192.0.2.10"),
// returned masked.
func ParseNetwork(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q has a zone", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Networks returns TrustedNetworks parsed (never nil); Validate has
// checked them, so entries that do not parse are left out.
func (a Auth) Networks() []netip.Prefix {
	out := []netip.Prefix{}
	for _, s := range a.TrustedNetworks {
		if p, err := ParseNetwork(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// LevelName returns the log level normalised to debug, info, warn or error.
func (l Log) LevelName() string {
	s := strings.ToLower(l.Level)
	if s == "warning" {
		return "warn"
	}
	return s
}

// validateInbound checks [inbound]'s list zones, greylisting times and
// sender rate.
func (c *Config) validateInbound(add func(key, msg, hint string)) {
	in := c.Inbound
	for _, l := range []struct {
		key   string
		zones []string
	}{{"inbound.dnsbl", in.DNSBL}, {"inbound.dnswl", in.DNSWL}} {
		for _, z := range l.zones {
			// 189: room for an IPv6 query's 64 octets of nibbles in 253.
			if !validHostname(z) || len(strings.TrimSuffix(z, ".")) > 189 || !strings.Contains(strings.Trim(z, "."), ".") {
				add(l.key, fmt.Sprintf("%q is not a DNS list zone", z), `a zone name such as "zen.spamhaus.org"; [] for none`)
			}
		}
	}
	for _, d := range []struct {
		key      string
		v        Duration
		min, max time.Duration
		hint     string
	}{
		{"inbound.greylist_delay", in.GreylistDelay, 10 * time.Second, 2 * time.Hour, `senders retry after 5 to 30 minutes: greylist_delay = "5m"`},
		{"inbound.greylist_retry_window", in.GreylistRetryWindow, time.Hour, 7 * 24 * time.Hour, `greylist_retry_window = "24h"`},
		{"inbound.greylist_allow_ttl", in.GreylistAllowTTL, 24 * time.Hour, 366 * 24 * time.Hour, `greylist_allow_ttl = "35d"`},
	} {
		if d.v.Duration < d.min || d.v.Duration > d.max {
			add(d.key, fmt.Sprintf("%s is not between %s and %s", d.v, Duration{d.min}, Duration{d.max}), d.hint)
		}
	}
	if in.GreylistDelay.Duration >= in.GreylistRetryWindow.Duration {
		add("inbound.greylist_retry_window", fmt.Sprintf("%s is not longer than greylist_delay (%s)", in.GreylistRetryWindow, in.GreylistDelay),
			"a retry must be possible after the delay: greylist_retry_window = \"24h\"")
	}
	if in.MaxMessagesPerSender < 0 {
		add("inbound.max_messages_per_sender", "must not be negative", "max_messages_per_sender = 200 (messages per envelope sender per hour), or 0 for no limit")
	}
}
