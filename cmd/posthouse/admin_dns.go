package main

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/posthouse/posthouse/dns"
)

func runAdminDNS(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin dns", "posthouse admin dns DOMAIN", env.stdout)
	rest, err := verbArgs(fs, args, 1, 1, "DOMAIN")
	if err != nil {
		return err
	}
	domain := rest[0]
	keys, err := dkimKeys(ctx, env, domain)
	if err != nil {
		return err
	}
	if local, err := env.auth.IsLocalDomain(ctx, domain); err == nil && !local {
		fmt.Fprintf(env.stderr, "note: %s is not a local domain yet ('posthouse admin domain add %s')\n", domain, domain)
	}
	ports := dns.Ports{
		Submissions: listenPort(env.cfg.Listen.Submissions),
		Submission:  listenPort(env.cfg.Listen.Submission),
		IMAPS:       listenPort(env.cfg.Listen.IMAPS),
		IMAP:        listenPort(env.cfg.Listen.IMAP),
		POP3S:       listenPort(env.cfg.Listen.POP3S),
		POP3:        listenPort(env.cfg.Listen.POP3),
		ManageSieve: listenPort(env.cfg.Listen.ManageSieve),
	}
	for _, w := range clientSetupWarnings(env.cfg) {
		fmt.Fprintf(env.stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(env.stdout, "; DNS records for %s, served by %s\n", domain, env.cfg.Hostname)
	zoneKeys := make([]dns.DKIMKey, len(keys))
	for i, k := range keys {
		zoneKeys[i] = dns.DKIMKey{Algorithm: k.Algorithm, Selector: k.Selector, Zone: k.ZoneRecord()}
	}
	for _, r := range dns.Records(domain, env.cfg.Hostname, zoneKeys, ports) {
		if r.Comment != "" {
			fmt.Fprintf(env.stdout, "\n; %s\n", r.Comment)
		}
		if r.Zone != "" {
			fmt.Fprintln(env.stdout, r.Zone)
		}
	}
	return nil
}

// listenPort returns the port of a [listen] address, 0 when disabled.
func listenPort(addr string) int {
	if addr == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
