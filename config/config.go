package config

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Config is the whole configuration. Field comments give each key's default.
type Config struct {
	// Hostname is our name in greetings, Received headers, HELO and the
	// self-signed certificate. Default: os.Hostname().
	Hostname string `toml:"hostname"`
	// DataDir holds users.sqlite, accounts/, the queue and the generated
	// certificate. Default "./data".
	DataDir string `toml:"data_dir"`

	Listen Listen `toml:"listen"`
	TLS    TLS    `toml:"tls"`
	Limits Limits `toml:"limits"`
	Auth   Auth   `toml:"auth"`
	IMAP   IMAP   `toml:"imap"`
	POP3   POP3   `toml:"pop3"`
	Store  Store  `toml:"store"`
	Queue  Queue  `toml:"queue"`
	DNS    DNS    `toml:"dns"`
	// Inbound is the policy for mail arriving on port 25.
	Inbound Inbound `toml:"inbound"`
	Log     Log     `toml:"log"`

	// Source is the file the configuration was read from; "" when only
	// defaults and the environment were used.
	Source string `toml:"-"`

	// origins maps a dotted key ("limits.max_recipients") to where its value
	// was set, so Validate can point at the right line or variable.
	origins map[string]origin
}

// Listen holds the listening addresses, "host:port" or ":port"; "" disables
// a listener.
type Listen struct {
	SMTP        string `toml:"smtp"`        // MTA, ":25"
	Submission  string `toml:"submission"`  // MSA with STARTTLS, ":587"
	Submissions string `toml:"submissions"` // MSA with implicit TLS, ":465"
	POP3        string `toml:"pop3"`        // ":110"
	POP3S       string `toml:"pop3s"`       // ":995"
	IMAP        string `toml:"imap"`        // ":143"
	IMAPS       string `toml:"imaps"`       // ":993"
	// ManageSieve (RFC 5804): users manage their Sieve filters with
	// STARTTLS then AUTHENTICATE. ":4190".
	ManageSieve string `toml:"managesieve"`
	// HTTP and HTTPS serve mail client autoconfiguration (Thunderbird
	// autoconfig, Outlook autodiscover) and ACME HTTP-01/TLS-ALPN-01
	// challenges. Disabled by default: ports 80 and 443 usually belong to a
	// web server. Set ":80" and ":443" to use them.
	HTTP  string `toml:"http"`
	HTTPS string `toml:"https"`
	// Admin serves the web console (admin pages, self-service at /account,
	// Prometheus /metrics). "127.0.0.1:8080": loopback only, plain HTTP,
	// reached through an SSH tunnel. On any other address it serves HTTPS
	// with the server's certificate. Self-service is also on HTTPS when set.
	Admin string `toml:"admin"`

	// ProxyProtocol names the listeners above ("smtp", "imaps", …) that
	// sit behind a TCP load balancer sending the PROXY protocol (HAProxy's
	// send-proxy or send-proxy-v2): each connection must start with a v1 or
	// v2 header, whose client address the session then uses for logs,
	// checks, limits and Received headers. Connections to those listeners
	// from outside ProxyNetworks are refused. Default [] (no listener reads
	// PROXY headers, and none is trusted).
	ProxyProtocol []string `toml:"proxy_protocol"`
	// ProxyNetworks are the load balancers' addresses (CIDR prefixes or
	// single addresses); required when ProxyProtocol names a listener.
	// Default [].
	ProxyNetworks []string `toml:"proxy_networks"`
}

// TLS names a certificate and key in PEM files. Both empty: a self-signed
// certificate for Hostname is made on first start and kept in DataDir.
type TLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ACME gets certificates from an ACME CA (Let's Encrypt unless
	// ACMEDirectory says otherwise) for Hostname and the autoconfig names of
	// local domains. Needs the http or https listener reachable from the CA.
	// Excludes cert_file/key_file. Default false.
	ACME          bool   `toml:"acme"`
	ACMEDirectory string `toml:"acme_directory"` // directory URL; "": Let's Encrypt
	ACMEEmail     string `toml:"acme_email"`     // contact address for the CA; optional
	// ACMECAFile is a PEM bundle of roots that verify the directory's HTTPS,
	// for a private or test CA; "": the system's roots.
	ACMECAFile string `toml:"acme_ca_file"`
}

// Limits bound what one client can take.
type Limits struct {
	MaxMessageSize      ByteSize `toml:"max_message_size"`       // "50MiB"
	MaxRecipients       int      `toml:"max_recipients"`         // 100 per message
	MaxConnections      int      `toml:"max_connections"`        // 1000 per listener kind, all clients
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"` // 50
	// MaxConnectionRate is new SMTP connections per client address (IPv4
	// address or IPv6 /64) per minute; more get 421 4.7.0. 60; 0: no limit.
	MaxConnectionRate int `toml:"max_connection_rate"`
	// MaxJunkCommands is how many SMTP commands that do not advance a mail
	// transaction (NOOP, RSET, VRFY, HELP, unknown…) a connection may send
	// between messages before 421 4.7.0. 100.
	MaxJunkCommands int `toml:"max_junk_commands"`
	// MaxSessionDuration is how long an SMTP connection may last; it is
	// ended with 421 at the next command, never during an upload. "30m".
	MaxSessionDuration Duration `toml:"max_session_duration"`
	// LoginTimeout is how long IMAP and POP3 clients may stay silent
	// before logging in. "30s".
	LoginTimeout Duration `toml:"login_timeout"`
	// MinFreeSpace is the free space kept on data_dir's file system: below
	// it new mail is refused (SMTP 452 4.3.1 at MAIL and RCPT, IMAP
	// APPEND NO [OVERQUOTA]) while reads, deletions and queued deliveries
	// go on (package diskspace). A size, a percentage, or both ("1%,
	// 200MiB": the larger); "0" keeps none. Default "1%, 200MiB".
	MinFreeSpace string `toml:"min_free_space"`
	// MemoryLimit is the Go runtime's soft memory limit: near it the
	// server collects garbage more often and slows down rather than
	// being killed for running out of memory. "auto": 80% of the memory
	// the process may use (its cgroup's memory.max, or else the
	// machine's MemTotal); a size ("1GiB"); a percentage of that memory
	// ("60%"); or "off". The GOMEMLIMIT environment variable, when set,
	// wins. Default "auto".
	MemoryLimit string `toml:"memory_limit"`
}

// Auth holds the password-guessing limits (README "Password guessing").
type Auth struct {
	// TrustedNetworks are CIDR prefixes (or single addresses) of webmails
	// and proxies that log in for many users: never locked out per address,
	// and their IMAP ID x-originating-ip is taken as the client's address.
	// Default: loopback, ["127.0.0.0/8", "::1/128"].
	TrustedNetworks []string `toml:"trusted_networks"`
	// IPMaxFailures distinct failed passwords from one address (an IPv6
	// /64) within IPWindow lock it out until the oldest leaves the window.
	// 10 and "10m"; at most 64.
	IPMaxFailures int      `toml:"ip_max_failures"`
	IPWindow      Duration `toml:"ip_window"`
	// After AccountMaxFailures distinct failures for one account within
	// AccountWindow, from any addresses, it gets one password check per
	// AccountInterval, except from known addresses. 10, "1h", "5s".
	AccountMaxFailures int      `toml:"account_max_failures"`
	AccountWindow      Duration `toml:"account_window"`
	AccountInterval    Duration `toml:"account_interval"`
	// KnownAddressTTL is how long an address the account logged in from
	// stays exempt from the per-account cap. "30d".
	KnownAddressTTL Duration `toml:"known_address_ttl"`
	// RequireAppPasswords: users who turned on two-factor login for the
	// web sign in to IMAP, POP3, SMTP and ManageSieve with app passwords
	// only, never the account password. Default false.
	RequireAppPasswords bool `toml:"require_app_passwords"`
}

// IMAP settings.
type IMAP struct {
	// LoopbackIsSecure lets clients on 127.0.0.1/::1 log in without TLS,
	// as webmail and local tools expect. Default true.
	LoopbackIsSecure bool `toml:"loopback_is_secure"`
}

// POP3 settings.
type POP3 struct {
	// LoopbackIsSecure: as IMAP.LoopbackIsSecure. Default true.
	LoopbackIsSecure bool `toml:"loopback_is_secure"`
}

// Store chooses where mail is kept.
type Store struct {
	// Backend is the mailstore backend, one of StoreBackends. "maildir":
	// Maildir files and a SQLite index per account, under
	// data_dir/accounts. "postgres": every mailbox in the PostgreSQL
	// database DSN names. Default "maildir".
	Backend string `toml:"backend"`
	// DSN is the PostgreSQL database of backend "postgres": a
	// postgres:// URL or a key=value string (libpq's forms). Required by
	// that backend, unused by maildir. A password in it is better given
	// by POSTHOUSE_STORE_DSN or a .pgpass file than in the file.
	DSN string `toml:"dsn"`
}

// StoreBackends are the values store.backend accepts. cmd/posthouse opens
// them through mailstore/backend; its tests check that the two agree.
var StoreBackends = []string{"maildir", "postgres"}

// Queue settings for outbound mail.
type Queue struct {
	// Expiry is how long a message is retried before it bounces. "120h".
	Expiry Duration `toml:"expiry"`
	// RemotePort is the port remote MX hosts are contacted on. 25; tests
	// point it at a loopback server.
	RemotePort int `toml:"remote_port"`
	// SRS rewrites the envelope sender of mail relayed for senders outside
	// our domains (an alias forwarding to foreign addresses) so that the
	// receiver's SPF check passes and bounces come back; SRSDomain is where
	// the rewritten addresses live (it must reach us and its SPF allow us).
	// true and "": Hostname.
	SRS       bool   `toml:"srs"`
	SRSDomain string `toml:"srs_domain"`

	// MaxConnections bounds delivery attempts in flight in total (50),
	// MaxPerDomain per destination domain (5), MaxPerHost connections per
	// mail server address (10): a server that stalls holds a few slots,
	// not all (see queue_limits.go).
	MaxConnections int `toml:"max_connections"`
	MaxPerDomain   int `toml:"max_per_domain"`
	MaxPerHost     int `toml:"max_per_host"`
	// Timeouts of a conversation with a remote server, RFC 5321 §4.5.3.2:
	// each is a deadline for a whole reply, not an idle time. Connection
	// bounds a whole connection, every message on it.
	ConnectTimeout    Duration `toml:"connect_timeout"`    // 30s
	GreetingTimeout   Duration `toml:"greeting_timeout"`   // 5m
	CommandTimeout    Duration `toml:"command_timeout"`    // 5m: EHLO, STARTTLS, RSET
	MailTimeout       Duration `toml:"mail_timeout"`       // 5m
	RcptTimeout       Duration `toml:"rcpt_timeout"`       // 5m
	DataInitTimeout   Duration `toml:"data_init_timeout"`  // 2m
	DataBlockTimeout  Duration `toml:"data_block_timeout"` // 3m, each block written
	DataDoneTimeout   Duration `toml:"data_done_timeout"`  // 10m
	ConnectionTimeout Duration `toml:"connection_timeout"` // 30m

	// ClaimLease (backend "postgres" only) is how long a node's claim on
	// a message it is delivering lasts without renewal (renewed every
	// third of it while the node runs): when a node dies, another takes
	// its messages over after at most this long. 60s.
	ClaimLease Duration `toml:"claim_lease"`
}

// DNS settings.
type DNS struct {
	// Resolver is the "host:port" every DNS query goes to. "": the first
	// nameserver of /etc/resolv.conf.
	Resolver string `toml:"resolver"`
	// CacheSize is how many answers the server keeps for their TTL (at
	// most an hour; negative answers only with a SOA, failures never), so
	// the lookups each message repeats go to the resolver once per TTL.
	// 0 turns the cache off. Default 10000.
	CacheSize int `toml:"cache_size"`
}

// Inbound is the policy for mail from other servers (the smtp listener,
// port 25; never submission), README "Inbound mail: spoofing, spam and
// junk": what happens to mail that fails SPF, DKIM or DMARC (actions are
// "reject" (550 5.7.1 at the end of DATA), "junk" (stored in the
// recipient's Junk mailbox, flagged $Junk) or "accept"), the checks before
// the data (trusted_networks skip those), the milters and the junk filter.
type Inbound struct {
	// DMARCReject honours a sender domain's DMARC p=reject with a 550;
	// false files such mail into Junk instead. Default true.
	DMARCReject bool `toml:"dmarc_reject"`
	// SPFFail is done with an SPF fail when DMARC decides nothing (no
	// record, or p=none): "junk" (default), "reject" or "accept".
	SPFFail string `toml:"spf_fail"`
	// SpoofOwnDomains is done with mail from outside that uses one of our
	// local domains (MAIL FROM or From:) without an SPF pass or an aligned
	// DKIM signature: "reject" (default) or "junk".
	SpoofOwnDomains string `toml:"spoof_own_domains"`
	// IPRev is done when the client's address has no reverse DNS name
	// leading back to it: "accept" (default: only reported in
	// Authentication-Results) or "junk".
	IPRev string `toml:"iprev"`
	// DNSBL and DNSWL are DNS block and allow list zones
	// ("zen.spamhaus.org"). A client a DNSBL lists gets 554 5.7.1 at RCPT;
	// one a DNSWL lists skips the DNSBLs and greylisting. Default [].
	DNSBL []string `toml:"dnsbl"`
	DNSWL []string `toml:"dnswl"`
	// Greylist refuses a new (client network, sender, recipient) with
	// 451 4.7.1 until it is retried after GreylistDelay and within
	// GreylistRetryWindow; the client network and sender domain are then
	// allow-listed for GreylistAllowTTL after their last message. Default
	// false, "5m", "24h", "35d".
	Greylist            bool     `toml:"greylist"`
	GreylistDelay       Duration `toml:"greylist_delay"`
	GreylistRetryWindow Duration `toml:"greylist_retry_window"`
	GreylistAllowTTL    Duration `toml:"greylist_allow_ttl"`
	// MaxMessagesPerSender is how many messages one envelope sender
	// address (the null sender: one client address) may send per hour;
	// more get 450 4.7.1 at MAIL. 0: no limit (the default).
	MaxMessagesPerSender int `toml:"max_messages_per_sender"`
	// JunkFilter files mail each user's junk filter judges junk into
	// their Junk mailbox (package junk). It learns from the user's Junk
	// and Not Junk buttons; until it has learned 20 of each, it only adds
	// a header. Default true.
	JunkFilter bool `toml:"junk_filter"`
	// JunkThreshold is the score (0 to 1) at or above which a message is
	// junk. Default 0.9.
	JunkThreshold float64 `toml:"junk_threshold"`
	// Milter lists mail filters speaking the milter protocol (rspamd,
	// OpenDKIM…), asked in order about every message from port 25, as
	// [[inbound.milter]] tables (inbound.go). Default: none.
	Milter []Milter `toml:"milter"`
}

// Log settings.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error; "info"
	Format string `toml:"format"` // text or json; "text"
}

// DefaultAdminAddr is the web console's listener unless configured:
// loopback only.
const DefaultAdminAddr = "127.0.0.1:8080"

// DefaultDataDir is where data lives when nothing says otherwise.
const DefaultDataDir = "./data"

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		Hostname: defaultHostname(),
		DataDir:  DefaultDataDir,
		Listen: Listen{
			SMTP:        ":25",
			Submission:  ":587",
			Submissions: ":465",
			POP3:        ":110",
			POP3S:       ":995",
			IMAP:        ":143",
			IMAPS:       ":993",
			ManageSieve: ":4190",
			Admin:       DefaultAdminAddr,

			ProxyProtocol: []string{},
			ProxyNetworks: []string{},
		},
		Limits: Limits{
			MaxMessageSize:      50 << 20,
			MaxRecipients:       100,
			MaxConnections:      1000,
			MaxConnectionsPerIP: 50,
			MaxConnectionRate:   60,
			MaxJunkCommands:     100,
			MaxSessionDuration:  Duration{30 * time.Minute},
			LoginTimeout:        Duration{30 * time.Second},
			MinFreeSpace:        "1%, 200MiB",
			MemoryLimit:         "auto",
		},
		Auth: Auth{
			TrustedNetworks:    []string{"127.0.0.0/8", "::1/128"},
			IPMaxFailures:      10,
			IPWindow:           Duration{10 * time.Minute},
			AccountMaxFailures: 10,
			AccountWindow:      Duration{time.Hour},
			AccountInterval:    Duration{5 * time.Second},
			KnownAddressTTL:    Duration{30 * 24 * time.Hour},
		},
		IMAP:  IMAP{LoopbackIsSecure: true},
		POP3:  POP3{LoopbackIsSecure: true},
		Store: Store{Backend: "maildir"},
		DNS:   DNS{CacheSize: 10000},
		Queue: Queue{Expiry: Duration{120 * time.Hour}, RemotePort: 25, SRS: true,
			MaxConnections: 50, MaxPerDomain: 5, MaxPerHost: 10,
			ConnectTimeout: Duration{30 * time.Second}, GreetingTimeout: Duration{5 * time.Minute},
			CommandTimeout: Duration{5 * time.Minute}, MailTimeout: Duration{5 * time.Minute},
			RcptTimeout: Duration{5 * time.Minute}, DataInitTimeout: Duration{2 * time.Minute},
			DataBlockTimeout: Duration{3 * time.Minute}, DataDoneTimeout: Duration{10 * time.Minute},
			ConnectionTimeout: Duration{30 * time.Minute}, ClaimLease: Duration{60 * time.Second}},
		Inbound: Inbound{
			DMARCReject:         true,
			SPFFail:             "junk",
			SpoofOwnDomains:     "reject",
			IPRev:               "accept",
			DNSBL:               []string{},
			DNSWL:               []string{},
			GreylistDelay:       Duration{5 * time.Minute},
			GreylistRetryWindow: Duration{24 * time.Hour},
			GreylistAllowTTL:    Duration{35 * 24 * time.Hour},
			JunkFilter:          true,
			JunkThreshold:       0.9,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

func defaultHostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// Load reads the file at path (none when path is ""), applies the
// environment (os.Environ) and validates. Errors are *Error values listing
// every problem with its file and line.
func Load(path string) (*Config, error) {
	var c *Config
	if path == "" {
		c = Default()
	} else {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{Problems: []Problem{{File: path, Msg: "cannot read config file: " + unwrapPathError(err),
				Hint: "give an existing file with --config, or none to use the defaults"}}}
		}
		c, err = Parse(data, path)
		if err != nil {
			return nil, err
		}
	}
	if err := c.ApplyEnv(os.Environ()); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func unwrapPathError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse decodes a TOML document over the defaults. filename is used in error
// messages and recorded as Source. It does not apply the environment or
// validate values beyond their types.
func Parse(data []byte, filename string) (*Config, error) {
	c := Default()
	c.Source = filename
	c.origins = map[string]origin{}

	// Our own walk first: it knows the schema, so unknown keys and wrong
	// types get a line and a useful hint, and it records where each key is.
	problems := walkDocument(data, filename, c.origins)
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}

	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, &Error{Problems: decodeProblems(err, filename)}
	}
	c.fillMilterDefaults()
	return c, nil
}

// decodeProblems turns go-toml's errors into Problems.
func decodeProblems(err error, filename string) []Problem {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var ps []Problem
		for i := range sm.Errors {
			e := &sm.Errors[i]
			line, col := e.Position()
			key := strings.Join(e.Key(), ".")
			ps = append(ps, Problem{File: filename, Line: line, Column: col, Key: key,
				Msg: "unknown key", Hint: unknownKeyHint(key)})
		}
		return ps
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		hint := "check the TOML syntax: strings need double quotes, sections are [name]"
		if strings.Contains(msg, "already defined") {
			hint = "a key or section may appear once; remove one of them"
		}
		return []Problem{{File: filename, Line: line, Column: col, Key: strings.Join(de.Key(), "."), Msg: msg, Hint: hint}}
	}
	return []Problem{{File: filename, Msg: err.Error()}}
}

// origin is where a key's value came from.
type origin struct {
	file string
	line int
	col  int
	env  string // the variable's name, when set from the environment
}

// keyInfo describes one key of the schema.
type keyInfo struct {
	path  string // "limits.max_recipients"
	env   string // "POSTHOUSE_LIMITS_MAX_RECIPIENTS"
	index []int  // reflect field index path from Config
	typ   reflect.Type
}

var (
	byteSizeType = reflect.TypeOf(ByteSize(0))
	durationType = reflect.TypeOf(Duration{})
	stringsType  = reflect.TypeOf([]string(nil))
)

// schema lists every key, in declaration order; sections lists the tables.
var schema, sections = buildSchema()

func buildSchema() ([]keyInfo, []string) {
	var keys []keyInfo
	var secs []string
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := tomlName(f)
		if name == "" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			secs = append(secs, name)
			for j := 0; j < f.Type.NumField(); j++ {
				g := f.Type.Field(j)
				gn := tomlName(g)
				if gn == "" {
					continue
				}
				keys = append(keys, keyInfo{
					path:  name + "." + gn,
					env:   "POSTHOUSE_" + strings.ToUpper(name+"_"+gn),
					index: []int{i, j},
					typ:   g.Type,
				})
				if isTableArray(g.Type) {
					// The keys of [[name.gn]] tables: no variable, no
					// index (each table is a list element).
					for k := 0; k < g.Type.Elem().NumField(); k++ {
						h := g.Type.Elem().Field(k)
						if hn := tomlName(h); hn != "" {
							keys = append(keys, keyInfo{path: name + "." + gn + "." + hn, typ: h.Type})
						}
					}
				}
			}
			continue
		}
		keys = append(keys, keyInfo{path: name, env: "POSTHOUSE_" + strings.ToUpper(name), index: []int{i}, typ: f.Type})
	}
	return keys, secs
}

func tomlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("toml")
	if tag == "-" || tag == "" {
		return ""
	}
	return strings.Split(tag, ",")[0]
}

func lookupKey(path string) (keyInfo, bool) {
	for _, k := range schema {
		if k.path == path {
			return k, true
		}
	}
	return keyInfo{}, false
}

func isSection(name string) bool {
	for _, s := range sections {
		if s == name {
			return true
		}
	}
	return false
}

// Keys returns every dotted key of the schema, in order.
func Keys() []string {
	out := make([]string, len(schema))
	for i, k := range schema {
		out[i] = k.path
	}
	return out
}

// EnvName returns the environment variable that overrides a dotted key.
func EnvName(path string) string {
	if k, ok := lookupKey(path); ok {
		return k.env
	}
	return ""
}

// Marshal returns the configuration as TOML, every key included, so an
// operator sees the effective values. The schema holds no secrets (passwords
// live in users.sqlite, keys in files), so nothing needs masking.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(false)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
