package config

import (
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Milter is one [[inbound.milter]] table.
type Milter struct {
	// Address is "inet:host:port" or "unix:/path/to/socket". Required.
	Address string `toml:"address"`
	// Timeout bounds the whole conversation about one message. "30s".
	Timeout Duration `toml:"timeout"`
	// OnError is what happens to a message when the milter is down, times
	// out or breaks the protocol: "tempfail" (451 4.7.1, the sender
	// retries) or "accept" (delivered unchecked). "tempfail".
	OnError string `toml:"on_error"`
	// Submission also sends mail from the submission ports (587, 465),
	// from our own users, to this milter. false.
	Submission bool `toml:"submission"`
}

// Milter defaults, filled in for each table that leaves them out.
const (
	DefaultMilterTimeout = 30 * time.Second
	DefaultMilterOnError = "tempfail"
)

// fillMilterDefaults gives each [[inbound.milter]] table the defaults for
// the keys it leaves out (TOML arrays of tables have no per-element
// defaults of their own).
func (c *Config) fillMilterDefaults() {
	if len(c.Inbound.Milter) == 0 {
		c.Inbound.Milter = nil // "milter = []", as Marshal writes none
	}
	for i := range c.Inbound.Milter {
		m := &c.Inbound.Milter[i]
		if m.Timeout.Duration == 0 {
			m.Timeout = Duration{DefaultMilterTimeout}
		}
		if m.OnError == "" {
			m.OnError = DefaultMilterOnError
		}
	}
}

// milterKey names a key of the i-th [[inbound.milter]] table (1-based) in
// problems: "inbound.milter[2].address".
func milterKey(i int, key string) string {
	return "inbound.milter[" + strconv.Itoa(i) + "]." + key
}

// validateMilters checks the [[inbound.milter]] tables.
func (c *Config) validateMilters(add func(key, msg, hint string)) {
	seen := map[string]int{}
	for i, m := range c.Inbound.Milter {
		n := i + 1
		if err := checkMilterAddress(m.Address); err != nil {
			add(milterKey(n, "address"), err.Error(), `address = "inet:127.0.0.1:11332" or "unix:/run/rspamd/milter.sock"`)
		} else if j, dup := seen[m.Address]; dup {
			add(milterKey(n, "address"), fmt.Sprintf("%q is also milter %d", m.Address, j), "list each milter once")
		} else {
			seen[m.Address] = n
		}
		if d := m.Timeout.Duration; d < time.Second || d > 10*time.Minute {
			add(milterKey(n, "timeout"), fmt.Sprintf("%s is not between 1s and 10m", m.Timeout), `timeout = "30s"`)
		}
		switch m.OnError {
		case "tempfail", "accept":
		default:
			add(milterKey(n, "on_error"), fmt.Sprintf("unknown action %q", m.OnError),
				`on_error = "tempfail" (451, the sender retries) or "accept" (deliver unchecked)`)
		}
	}
}

// checkMilterAddress accepts "inet:host:port" and "unix:/path" (the
// milter package parses them again; config imports nothing of ours).
func checkMilterAddress(s string) error {
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case "inet":
		host, port, err := net.SplitHostPort(rest)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not inet:host:port", s)
		}
		return nil
	case "unix":
		if strings.HasPrefix(rest, "/") {
			return nil
		}
	}
	return fmt.Errorf("%q is neither inet:host:port nor unix:/path", s)
}

// isTableArray reports whether a field is a list of tables, written as
// [[section.key]] tables.
func isTableArray(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct
}
