package milter

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// maxAddressLen bounds a milter address (a Unix socket path is at most 108
// bytes on Linux; a host:port fits easily).
const maxAddressLen = 512

// ParseAddress parses a milter address in the form Postfix's smtpd_milters
// uses: "inet:host:port" (host a name, an IPv4 address or a bracketed
// IPv6 address) or "unix:/path/to/socket". It returns the network and
// address for net.Dial.
func ParseAddress(s string) (network, address string, err error) {
	if len(s) > maxAddressLen {
		return "", "", fmt.Errorf("milter address longer than %d bytes", maxAddressLen)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", "", fmt.Errorf("milter address %q contains spaces or control characters", s)
	}
	kind, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("milter address %q: want inet:host:port or unix:/path", s)
	}
	switch strings.ToLower(kind) {
	case "inet":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return "", "", fmt.Errorf("milter address %q: want inet:host:port", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("milter address %q: port %q is not a number between 1 and 65535", s, port)
		}
		if host == "" {
			return "", "", fmt.Errorf("milter address %q: the host is missing", s)
		}
		return "tcp", net.JoinHostPort(host, port), nil
	case "unix":
		if !strings.HasPrefix(rest, "/") {
			return "", "", fmt.Errorf("milter address %q: want an absolute socket path, unix:/path", s)
		}
		return "unix", rest, nil
	}
	return "", "", errors.New("milter address " + strconv.Quote(s) + ": want inet:host:port or unix:/path")
}
