package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Parse(nil, "empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := Listen{SMTP: ":25", Submission: ":587", Submissions: ":465", POP3: ":110", POP3S: ":995", IMAP: ":143", IMAPS: ":993", ManageSieve: ":4190", Admin: "127.0.0.1:8080",
		ProxyProtocol: []string{}, ProxyNetworks: []string{}}
	if !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("listen = %+v, want %+v", c.Listen, want)
	}
	if c.DataDir != "./data" || c.Limits.MaxMessageSize != 50<<20 || c.Limits.MaxRecipients != 100 ||
		c.Limits.MaxConnections != 1000 || c.Limits.MaxConnectionsPerIP != 50 ||
		c.Limits.MaxConnectionRate != 60 || c.Limits.MaxJunkCommands != 100 ||
		c.Limits.MaxSessionDuration.Duration != 30*time.Minute || c.Limits.LoginTimeout.Duration != 30*time.Second ||
		!c.IMAP.LoopbackIsSecure || !c.POP3.LoopbackIsSecure || c.Queue.Expiry.Duration != 120*time.Hour ||
		c.Queue.RemotePort != 25 || c.DNS.Resolver != "" || c.Log.Level != "info" || c.Log.Format != "text" ||
		c.Store.Backend != "maildir" ||
		!c.Inbound.DMARCReject || c.Inbound.SPFFail != "junk" || c.Inbound.SpoofOwnDomains != "reject" || c.Inbound.IPRev != "accept" {
		t.Errorf("unexpected defaults: %+v", c)
	}
	h, _ := os.Hostname()
	if h != "" && c.Hostname != strings.ToLower(h) {
		t.Errorf("hostname = %q, want os.Hostname() %q", c.Hostname, h)
	}
}

func TestParseFile(t *testing.T) {
	doc := `
hostname = "mail.example.com"
data_dir = "/var/lib/posthouse"
[listen]
smtp = "127.0.0.1:2525"
pop3 = ""
[limits]
max_message_size = "10MB"
max_recipients = 7
[imap]
loopback_is_secure = false
[store]
backend = "maildir"
[queue]
expiry = "5d"
remote_port = 2526
[dns]
resolver = "127.0.0.1:5353"
[log]
level = "debug"
format = "json"
`
	c, err := Parse([]byte(doc), "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "mail.example.com" || c.DataDir != "/var/lib/posthouse" || c.Listen.SMTP != "127.0.0.1:2525" ||
		c.Listen.POP3 != "" || c.Listen.IMAP != ":143" || c.Limits.MaxMessageSize != 10_000_000 ||
		c.Limits.MaxRecipients != 7 || c.IMAP.LoopbackIsSecure || !c.POP3.LoopbackIsSecure ||
		c.Queue.Expiry.Duration != 120*time.Hour || c.Queue.RemotePort != 2526 || c.DNS.Resolver != "127.0.0.1:5353" ||
		c.Log.LevelName() != "debug" || c.Log.Format != "json" || c.Source != "p.toml" || c.Store.Backend != "maildir" {
		t.Errorf("unexpected config: %+v", c)
	}
	// The same port on two different addresses is fine.
	c, err = Parse([]byte("[listen]\nsmtp = \"127.0.0.1:2525\"\nsubmission = \"127.0.0.2:2525\"\n"), "two.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("same port on two addresses: %v", err)
	}
	// Inline tables and dotted keys are TOML too.
	c, err = Parse([]byte("listen = { smtp = \":2500\" }\nlimits.max_recipients = 3\n"), "i.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.SMTP != ":2500" || c.Limits.MaxRecipients != 3 {
		t.Errorf("inline/dotted: %+v %+v", c.Listen, c.Limits)
	}
}

// problems returns the problems of an *Error, failing the test otherwise.
func problems(t *testing.T, err error) []Problem {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	return ce.Problems
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		line     int
		key      string
		contains string // in the problem's message or hint
	}{
		{"unknown key", "[limits]\n\nmax_recipents = 5\n", 3, "limits.max_recipents", "did you mean max_recipients in [limits]?"},
		{"unknown top-level key", "hostname = \"a.b\"\ndatadir = \"x\"\n", 2, "datadir", "did you mean data_dir?"},
		{"unknown section", "[listen]\nsmtp = \":25\"\n[lisen]\nsmtp = \":26\"\n", 3, "lisen", "did you mean [listen]?"},
		{"unrelated section", "[frobnicator]\n", 1, "frobnicator", "known sections:"},
		{"key in wrong section", "[listen]\nmax_recipients = 5\n", 2, "listen.max_recipients", "in [limits]"},
		{"string for int", "[limits]\nmax_recipients = \"5\"\n", 2, "limits.max_recipients", "want an integer"},
		{"int for string", "[listen]\nsmtp = 25\n", 2, "listen.smtp", "want a string"},
		{"bare duration", "[queue]\nexpiry = 5\n", 2, "queue.expiry", `expiry = "120h"`},
		{"bad duration", "[queue]\n\nexpiry = \"5 fortnights\"\n", 3, "queue.expiry", "bad duration"},
		{"bad size", "[limits]\nmax_message_size = \"50 parsecs\"\n", 2, "limits.max_message_size", "unknown unit"},
		{"bool as string", "[imap]\nloopback_is_secure = \"yes\"\n", 2, "imap.loopback_is_secure", "true or false"},
		{"section as value", "listen = 5\n", 1, "listen", "is a section"},
		{"syntax", "hostname = mail.example.com\n", 1, "", "syntax error"},
		{"array table", "[[listen]]\n", 1, "listen", "arrays of tables"},
		{"duplicate key", "hostname = \"a.b\"\nhostname = \"c.d\"\n", 2, "hostname", "appear once"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "f.toml")
			if err == nil {
				t.Fatal("no error")
			}
			ps := problems(t, err)
			p := ps[0]
			if p.File != "f.toml" || p.Line != tc.line || p.Key != tc.key {
				t.Errorf("problem = %+v, want f.toml line %d key %q", p, tc.line, tc.key)
			}
			if !strings.Contains(p.Msg+" "+p.Hint, tc.contains) {
				t.Errorf("problem %q does not mention %q", p.String(), tc.contains)
			}
			if !strings.HasPrefix(err.Error(), "f.toml:") || strings.Contains(err.Error(), "\n\n") {
				t.Errorf("error text %q does not start with file:line", err.Error())
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		line     int
		key      string
		contains string
	}{
		{"zero recipients", "[limits]\nmax_recipients = 0\n", 2, "limits.max_recipients", "at least 1"},
		{"tiny size", "[limits]\nmax_message_size = 10\n", 2, "limits.max_message_size", "too small"},
		{"negative size", "[limits]\nmax_message_size = -10\n", 2, "limits.max_message_size", "too small"},
		{"per-ip over total", "[limits]\nmax_connections = 10\nmax_connections_per_ip = 11\n", 3, "limits.max_connections_per_ip", "more than"},
		{"bad listen", "[listen]\nimap = \"143\"\n", 2, "listen.imap", "host:port"},
		{"bad port", "[listen]\nimap = \":99999\"\n", 2, "listen.imap", "between 1 and 65535"},
		{"port zero", "[listen]\nimap = \":0\"\n", 2, "listen.imap", "between 1 and 65535"},
		{"duplicate listen", "[listen]\nimap = \":25\"\n", 2, "listen.imap", "also used by listen.smtp"},
		{"managesieve clash", "[listen]\nmanagesieve = \":993\"\n", 2, "listen.managesieve", "also used by listen.imaps"},
		{"bad managesieve", "[listen]\nmanagesieve = \"4190\"\n", 2, "listen.managesieve", "host:port"},
		{"wildcard clash", "[listen]\nimap = \"127.0.0.1:25\"\n", 2, "listen.imap", "also used by listen.smtp"},
		{"bad hostname", "hostname = \"mail example\"\n", 1, "hostname", "not a valid host name"},
		{"empty hostname", "hostname = \"\"\n", 1, "hostname", "must not be empty"},
		{"empty data dir", "data_dir = \"\"\n", 1, "data_dir", "must not be empty"},
		{"cert without key", "[tls]\ncert_file = \"/x.pem\"\n", 0, "tls.key_file", "go together"},
		{"missing cert", "[tls]\ncert_file = \"/nonexistent/c.pem\"\nkey_file = \"/nonexistent/k.pem\"\n", 2, "tls.cert_file", "cannot read"},
		{"short expiry", "[queue]\nexpiry = \"10s\"\n", 2, "queue.expiry", "too short"},
		{"negative rate", "[limits]\nmax_connection_rate = -1\n", 2, "limits.max_connection_rate", "negative"},
		{"no junk commands", "[limits]\nmax_junk_commands = 0\n", 2, "limits.max_junk_commands", "at least 1"},
		{"short session", "[limits]\nmax_session_duration = \"10s\"\n", 2, "limits.max_session_duration", "too short"},
		{"long login timeout", "[limits]\nlogin_timeout = \"1h\"\n", 2, "limits.login_timeout", "between"},
		{"remote port", "[queue]\nremote_port = 0\n", 2, "queue.remote_port", "not a port"},
		{"free space percent", "[limits]\nmin_free_space = \"60%\"\n", 2, "limits.min_free_space", "between 0% and 50%"},
		{"free space unit", "[limits]\nmin_free_space = \"lots\"\n", 2, "limits.min_free_space", `"1%, 200MiB"`},
		{"srs domain", "[queue]\nsrs = true\nsrs_domain = \"a b\"\n", 3, "queue.srs_domain", "not a valid domain"},
		{"resolver", "[dns]\nresolver = \"8.8.8.8\"\n", 2, "dns.resolver", "host:port"},
		{"log level", "[log]\nlevel = \"chatty\"\n", 2, "log.level", "debug, info, warn, error"},
		{"log format", "[log]\nformat = \"xml\"\n", 2, "log.format", "text or json"},
		{"store backend", "[store]\nbackend = \"cassandra\"\n", 2, "store.backend", `backend = "maildir"`},
		{"postgres without dsn", "[store]\nbackend = \"postgres\"\n", 0, "store.dsn", "POSTHOUSE_STORE_DSN"},
		{"postgres dsn", "[store]\nbackend = \"postgres\"\ndsn = \"db.example.org\"\n", 3, "store.dsn", "postgres://"},
		{"empty store backend", "[store]\nbackend = \"\"\n", 2, "store.backend", "unknown backend"},
		{"spf_fail action", "[inbound]\nspf_fail = \"bounce\"\n", 2, "inbound.spf_fail", `"junk"`},
		{"spoof action", "[inbound]\nspoof_own_domains = \"accept\"\n", 2, "inbound.spoof_own_domains", "unknown action"},
		{"proxy listener name", "[listen]\nproxy_protocol = [\"smtps\"]\nproxy_networks = [\"10.0.0.5\"]\n", 2, "listen.proxy_protocol", "no listener named \"smtps\""},
		{"proxy without networks", "[listen]\nproxy_protocol = [\"smtp\"]\n", 0, "listen.proxy_networks", "no load balancer is trusted"},
		{"proxy network", "[listen]\nproxy_protocol = [\"smtp\"]\nproxy_networks = [\"10.0.0.0/33\"]\n", 3, "listen.proxy_networks", "not a CIDR prefix"},
		{"memory limit", "[limits]\nmemory_limit = \"lots\"\n", 2, "limits.memory_limit", `"auto"`},
		{"memory limit percent", "[limits]\nmemory_limit = \"150%\"\n", 2, "limits.memory_limit", "between 1% and 100%"},
		{"memory limit tiny", "[limits]\nmemory_limit = \"1MiB\"\n", 2, "limits.memory_limit", "below 16MiB"},
		{"iprev action", "[inbound]\niprev = \"reject\"\n", 2, "inbound.iprev", "only reported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), "v.toml")
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			p := problems(t, err)[0]
			if p.File != "v.toml" || p.Line != tc.line || p.Key != tc.key {
				t.Errorf("problem = %+v, want line %d key %q", p, tc.line, tc.key)
			}
			if !strings.Contains(p.Msg+" "+p.Hint, tc.contains) {
				t.Errorf("problem %q does not mention %q", p.String(), tc.contains)
			}
			if p.Hint == "" {
				t.Errorf("problem %q has no hint", p.String())
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	c, err := Parse([]byte("hostname = \"file.example\"\n[listen]\nsmtp = \":2525\"\n"), "e.toml")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=/bin",
		"POSTHOUSE_CONFIG=/etc/posthouse.toml",
		"POSTHOUSE_HOSTNAME=env.example",
		"POSTHOUSE_DATA_DIR=/srv/mail",
		"POSTHOUSE_LISTEN_SMTP=127.0.0.1:2600",
		"POSTHOUSE_LISTEN_IMAPS=",
		"POSTHOUSE_LIMITS_MAX_MESSAGE_SIZE=25MiB",
		"POSTHOUSE_LIMITS_MAX_RECIPIENTS=9",
		"POSTHOUSE_POP3_LOOPBACK_IS_SECURE=false",
		"POSTHOUSE_QUEUE_EXPIRY=48h",
		"POSTHOUSE_DNS_RESOLVER=127.0.0.1:5300",
		"POSTHOUSE_LOG_FORMAT=json",
		"POSTHOUSE_STORE_BACKEND=maildir",
	}
	if err := c.ApplyEnv(env); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "env.example" || c.DataDir != "/srv/mail" || c.Listen.SMTP != "127.0.0.1:2600" ||
		c.Listen.IMAPS != "" || c.Limits.MaxMessageSize != 25<<20 || c.Limits.MaxRecipients != 9 ||
		c.POP3.LoopbackIsSecure || c.Queue.Expiry.Duration != 48*time.Hour || c.DNS.Resolver != "127.0.0.1:5300" ||
		c.Log.Format != "json" || c.origins["store.backend"].env != "POSTHOUSE_STORE_BACKEND" {
		t.Errorf("env not applied: %+v", c)
	}

	// A bad backend from the environment is blamed on the variable, with
	// the hint.
	c = Default()
	if err := c.ApplyEnv([]string{"POSTHOUSE_STORE_BACKEND=mbox"}); err != nil {
		t.Fatal(err)
	}
	if p := problems(t, c.Validate())[0]; p.File != "environment" || p.Key != "POSTHOUSE_STORE_BACKEND" ||
		!strings.Contains(p.String(), `unknown backend "mbox"`) || !strings.Contains(p.Hint, "maildir") {
		t.Errorf("problem = %+v, want an unknown backend blamed on POSTHOUSE_STORE_BACKEND", p)
	}

	// A bad value set from the environment is blamed on the variable.
	c = Default()
	if err := c.ApplyEnv([]string{"POSTHOUSE_LIMITS_MAX_RECIPIENTS=0"}); err != nil {
		t.Fatal(err)
	}
	p := problems(t, c.Validate())[0]
	if p.File != "environment" || p.Key != "POSTHOUSE_LIMITS_MAX_RECIPIENTS" {
		t.Errorf("problem = %+v, want blamed on POSTHOUSE_LIMITS_MAX_RECIPIENTS", p)
	}

	for _, tc := range []struct{ name, env, contains string }{
		{"unknown", "POSTHOUSE_LISTEN_SMPT=:25", "did you mean POSTHOUSE_LISTEN_SMTP?"},
		{"bad int", "POSTHOUSE_LIMITS_MAX_RECIPIENTS=many", "want an integer"},
		{"bad bool", "POSTHOUSE_IMAP_LOOPBACK_IS_SECURE=perhaps", "true or false"},
		{"bad size", "POSTHOUSE_LIMITS_MAX_MESSAGE_SIZE=huge", "bad size"},
		{"bad duration", "POSTHOUSE_QUEUE_EXPIRY=7", "needs a unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Default().ApplyEnv([]string{tc.env})
			if err == nil {
				t.Fatal("no error")
			}
			p := problems(t, err)[0]
			if p.File != "environment" || !strings.Contains(p.String(), tc.contains) {
				t.Errorf("problem %q, want it to mention %q", p.String(), tc.contains)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "posthouse.toml")
	if err := os.WriteFile(path, []byte("[listen]\nsmtp = \":2525\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("POSTHOUSE_LISTEN_IMAP", ":1143")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen.SMTP != ":2525" || c.Listen.IMAP != ":1143" || c.Source != path {
		t.Errorf("Load: %+v", c)
	}
	c, err = Load("")
	if err != nil || c.Listen.IMAP != ":1143" || c.Source != "" {
		t.Errorf("Load(\"\") = %+v, %v", c, err)
	}
	_, err = Load(filepath.Join(dir, "missing.toml"))
	if err == nil || !strings.Contains(err.Error(), "cannot read config file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := Default()
	c.Hostname = "mail.example.org"
	c.Limits.MaxMessageSize = 3 << 30
	c.Queue.Expiry = Duration{90 * time.Minute}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"max_message_size = '3GiB'", "expiry = '1h30m'", "[listen]", "hostname = 'mail.example.org'"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, b)
		}
	}
	back, err := Parse(b, "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	back.Source, back.origins = "", nil
	c.origins = nil
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", back, c)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"50MiB", 50 << 20, false},
		{"50mib", 50 << 20, false},
		{"10MB", 10_000_000, false},
		{"10 MB", 10_000_000, false},
		{"512KiB", 512 << 10, false},
		{"2GiB", 2 << 30, false},
		{"1.5GiB", 3 << 29, false},
		{"2G", 2 << 30, false},
		{"7B", 7, false},
		{"1_000", 1000, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"-5MiB", 0, true},
		{"5 parsecs", 0, true},
		{"99999999999TiB", 0, true},
		{"1.2.3MB", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("ParseByteSize(%q) = %d, %v; want %d, err=%v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{{0, "0"}, {50 << 20, "50MiB"}, {1000, "1000"}, {3 << 40, "3TiB"}, {1536, "1536"}} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"10m", 10 * time.Minute, false},
		{"120h", 120 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"5d", 120 * time.Hour, false},
		{"90s", 90 * time.Second, false},
		{"5", 0, true},
		{"", 0, true},
		{"d", 0, true},
		{"-1d", 0, true},
		{"soon", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if (err != nil) != tc.err || got.Duration != tc.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
	if s := (Duration{120 * time.Hour}).String(); s != "120h" {
		t.Errorf("String = %q", s)
	}
}

// FuzzParseConfig: any document either parses into a config whose problems
// are well-formed, or is refused with an *Error; it never panics.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("hostname = \"mail.example.com\"\n[listen]\nsmtp = \":25\"\n"))
	f.Add([]byte("[limits]\nmax_message_size = \"50MiB\"\nmax_recipients = 100\n"))
	f.Add([]byte("[queue]\nexpiry = \"5d\"\nremote_port = 25\n"))
	f.Add([]byte("listen = { imap = \"\" }\nlimits.max_connections = 3\n"))
	f.Add([]byte("[[x]]\na = [1, 2]\n"))
	f.Add([]byte("[tls]\ncert_file = 1979-05-27T07:32:00Z\n"))
	f.Add([]byte("[auth]\ntrusted_networks = [\"127.0.0.0/8\", \"::1\", 1, [\"x\"]]\naccount_interval = \"5s\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("error %v is not a non-empty *Error", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("validate error %v is not a non-empty *Error", err)
			}
		}
	})
}

func TestParseFreeSpace(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		size    ByteSize
		percent float64
		bad     bool
	}{
		{name: "default", in: Default().Limits.MinFreeSpace, size: 200 << 20, percent: 1},
		{name: "size", in: "500MiB", size: 500 << 20},
		{name: "percent", in: "5%", percent: 5},
		{name: "fraction", in: "0.5 %", percent: 0.5},
		{name: "reversed", in: "2GiB,1%", size: 2 << 30, percent: 1},
		{name: "off", in: "0"},
		{name: "empty", in: "", bad: true},
		{name: "empty part", in: "1%,", bad: true},
		{name: "two sizes", in: "1MiB, 2MiB", bad: true},
		{name: "two percents", in: "1%, 2%", bad: true},
		{name: "three parts", in: "1%, 2MiB, 3", bad: true},
		{name: "over half", in: "51%", bad: true},
		{name: "negative", in: "-1%", bad: true},
		{name: "nan", in: "NaN%", bad: true},
		{name: "words", in: "lots", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			size, pct, err := ParseFreeSpace(tc.in)
			if tc.bad {
				if !errors.Is(err, errFreeSpaceSyntax) {
					t.Fatalf("ParseFreeSpace(%q) = %v, %v, %v; want a syntax error", tc.in, size, pct, err)
				}
				return
			}
			if err != nil || size != tc.size || pct != tc.percent {
				t.Fatalf("ParseFreeSpace(%q) = %v, %v, %v; want %v, %v", tc.in, size, pct, err, tc.size, tc.percent)
			}
		})
	}
	t.Run("env", func(t *testing.T) {
		c := Default()
		if err := c.ApplyEnv([]string{"POSTHOUSE_LIMITS_MIN_FREE_SPACE=3%"}); err != nil {
			t.Fatal(err)
		}
		if c.Limits.MinFreeSpace != "3%" {
			t.Fatalf("min_free_space from the environment = %q", c.Limits.MinFreeSpace)
		}
	})
}

// FuzzParseFreeSpace: any string is refused or gives a reserve within
// bounds; it never panics.
func FuzzParseFreeSpace(f *testing.F) {
	for _, s := range []string{"1%, 200MiB", "0", "5%", "500MiB", ",", "%", "1e308%", "1.5GiB, 0.1%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		size, pct, err := ParseFreeSpace(s)
		if err != nil {
			return
		}
		if size < 0 || pct < 0 || pct > 50 {
			t.Fatalf("ParseFreeSpace(%q) = %v, %v", s, size, pct)
		}
	})
}

func TestAuthSection(t *testing.T) {
	doc := `
[auth]
trusted_networks = ["10.1.0.0/16", "192.0.2.10", "2001:db8::/48", "::ffff:198.51.100.0/120", "10.2.3.4/8"]
ip_max_failures = 5
account_interval = "10s"
known_address_ttl = "7d"
require_app_passwords = true
`
	c, err := Parse([]byte(doc), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Auth.Networks() {
		got = append(got, p.String())
	}
	want := []string{"10.1.0.0/16", "192.0.2.10/32", "2001:db8::/48", "198.51.100.0/24", "10.0.0.0/8"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("networks = %q, want %q", got, want)
	}
	if c.Auth.IPMaxFailures != 5 || c.Auth.AccountInterval.Duration != 10*time.Second ||
		c.Auth.KnownAddressTTL.Duration != 7*24*time.Hour || c.Auth.AccountMaxFailures != 10 || c.Auth.AccountWindow.Duration != time.Hour ||
		!c.Auth.RequireAppPasswords || Default().Auth.RequireAppPasswords {
		t.Errorf("auth = %+v", c.Auth)
	}
	// Defaults: loopback; an empty list trusts nothing.
	if got := Default().Auth.Networks(); len(got) != 2 || got[0].String() != "127.0.0.0/8" || got[1].String() != "::1/128" {
		t.Errorf("default networks = %v", got)
	}
	c, err = Parse([]byte("[auth]\ntrusted_networks = []\n"), "e.toml")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Auth.Networks(); n == nil || len(n) != 0 {
		t.Errorf("empty list: %v", n)
	}
	// From the environment: comma- or space-separated.
	c = Default()
	if err := c.ApplyEnv([]string{"POSTHOUSE_AUTH_TRUSTED_NETWORKS=10.0.0.0/8, 192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Auth.TrustedNetworks, []string{"10.0.0.0/8", "192.0.2.1"}) {
		t.Errorf("from the environment: %q", c.Auth.TrustedNetworks)
	}
	if err := c.ApplyEnv([]string{"POSTHOUSE_AUTH_TRUSTED_NETWORKS="}); err != nil || c.Auth.TrustedNetworks == nil || len(c.Auth.TrustedNetworks) != 0 {
		t.Errorf("empty from the environment: %q, %v", c.Auth.TrustedNetworks, err)
	}

	for _, tc := range []struct{ name, doc, key, contains string }{
		{"not a network", `trusted_networks = ["10.0.0.0/33"]`, "auth.trusted_networks", "not a CIDR prefix"},
		{"host name", `trusted_networks = ["webmail.example.com"]`, "auth.trusted_networks", "not a CIDR prefix"},
		{"zone", `trusted_networks = ["fe80::1%eth0"]`, "auth.trusted_networks", "not a CIDR prefix"},
		{"not an array", `trusted_networks = "127.0.0.1"`, "auth.trusted_networks", "want an array of strings"},
		{"array of numbers", `trusted_networks = [1, 2]`, "auth.trusted_networks", "want strings"},
		{"zero failures", `ip_max_failures = 0`, "auth.ip_max_failures", "between 1 and 64"},
		{"too many failures", `account_max_failures = 65`, "auth.account_max_failures", "between 1 and 64"},
		{"interval too long", `account_interval = "2h"`, "auth.account_interval", "account_interval = \"5s\""},
		{"ttl too short", `known_address_ttl = "1m"`, "auth.known_address_ttl", "between 1h and"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("[auth]\n"+tc.doc+"\n"), "bad.toml")
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			p := problems(t, err)[0]
			if p.Key != tc.key || p.Line != 2 || !strings.Contains(p.String(), tc.contains) {
				t.Errorf("problem %q (line %d), want %s on line 2 mentioning %q", p.String(), p.Line, tc.key, tc.contains)
			}
		})
	}
}

func TestInboundSection(t *testing.T) {
	d := Default().Inbound
	if len(d.DNSBL) != 0 || len(d.DNSWL) != 0 || d.Greylist || d.MaxMessagesPerSender != 0 ||
		d.GreylistDelay.Duration != 5*time.Minute || d.GreylistRetryWindow.Duration != 24*time.Hour || d.GreylistAllowTTL.Duration != 35*24*time.Hour {
		t.Errorf("defaults = %+v", d)
	}
	doc := `
[inbound]
dnsbl = ["zen.example.org", "bl.example.net."]
dnswl = ["list.dnswl.example"]
greylist = true
greylist_delay = "2m"
greylist_retry_window = "12h"
greylist_allow_ttl = "60d"
max_messages_per_sender = 200
`
	c, err := Parse([]byte(doc), "i.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	in := c.Inbound
	if !reflect.DeepEqual(in.DNSBL, []string{"zen.example.org", "bl.example.net."}) || !reflect.DeepEqual(in.DNSWL, []string{"list.dnswl.example"}) ||
		!in.Greylist || in.GreylistDelay.Duration != 2*time.Minute || in.GreylistRetryWindow.Duration != 12*time.Hour ||
		in.GreylistAllowTTL.Duration != 60*24*time.Hour || in.MaxMessagesPerSender != 200 {
		t.Errorf("inbound = %+v", in)
	}
	c = Default()
	if err := c.ApplyEnv([]string{"POSTHOUSE_INBOUND_DNSBL=a.example b.example", "POSTHOUSE_INBOUND_GREYLIST=true"}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Inbound.DNSBL, []string{"a.example", "b.example"}) || !c.Inbound.Greylist {
		t.Errorf("from the environment: %+v", c.Inbound)
	}

	for _, tc := range []struct{ name, doc, key, contains string }{
		{"zone with space", `dnsbl = ["zen spamhaus.org"]`, "inbound.dnsbl", "not a DNS list zone"},
		{"zone without dot", `dnswl = ["localhost"]`, "inbound.dnswl", "not a DNS list zone"},
		{"zone too long", `dnsbl = ["` + strings.Repeat("a.", 100) + `example"]`, "inbound.dnsbl", "not a DNS list zone"},
		{"delay too short", `greylist_delay = "1s"`, "inbound.greylist_delay", "between 10s and"},
		{"window too long", `greylist_retry_window = "30d"`, "inbound.greylist_retry_window", "between 1h and"},
		{"window not after delay", "greylist_delay = \"2h\"\ngreylist_retry_window = \"1h\"", "inbound.greylist_retry_window", "not longer than greylist_delay"},
		{"allow ttl", `greylist_allow_ttl = "1h"`, "inbound.greylist_allow_ttl", "between 24h and"},
		{"negative rate", `max_messages_per_sender = -1`, "inbound.max_messages_per_sender", "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("[inbound]\n"+tc.doc+"\n"), "bad.toml")
			if err == nil {
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			p := problems(t, err)[0]
			if p.Key != tc.key || p.Line < 2 || !strings.Contains(p.String(), tc.contains) {
				t.Errorf("problem %q (line %d), want %s mentioning %q", p.String(), p.Line, tc.key, tc.contains)
			}
		})
	}
}
