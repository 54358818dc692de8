package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/posthouse/posthouse/dns"
	"github.com/posthouse/posthouse/dnscheck"
)

func runAdminDNS(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin dns", "posthouse admin dns [--check] DOMAIN", env.stdout)
	check := fs.Bool("check", false, "look the records up through [dns] resolver and say which are right, missing or wrong")
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
	for _, w := range dnscheck.ClientSetupWarnings(env.cfg) {
		fmt.Fprintf(env.stderr, "warning: %s\n", w)
	}
	zoneKeys := dnscheck.ZoneKeys(keys)
	if *check {
		r, err := dns.New(dns.Options{Server: env.cfg.DNS.Resolver})
		if err != nil {
			return err
		}
		results := dnscheck.Run(ctx, r, dnscheck.Params{Domain: domain, Hostname: env.cfg.Hostname, Keys: zoneKeys, Ports: dnscheck.Ports(env.cfg)})
		if err := writeTable(env.stdout, results, []string{"STATUS", "KIND", "NAME", "FOUND"}, func(r dnscheck.Result) []string {
			return []string{string(r.Status), r.Kind, r.Name, strings.Join(r.Found, " | ")}
		}); err != nil {
			return err
		}
		for _, r := range results {
			if r.Status != dnscheck.Missing && r.Status != dnscheck.Wrong {
				continue
			}
			note := ""
			if r.Note != "" {
				note = ": " + r.Note
			}
			fmt.Fprintf(env.stdout, "\n; %s %s is %s%s\n", r.Kind, r.Name, r.Status, note)
			if r.Want != "" {
				fmt.Fprintln(env.stdout, r.Want)
			}
		}
		return nil
	}
	fmt.Fprintf(env.stdout, "; DNS records for %s, served by %s\n", domain, env.cfg.Hostname)
	for _, r := range dns.Records(domain, env.cfg.Hostname, zoneKeys, dnscheck.Ports(env.cfg)) {
		if r.Comment != "" {
			fmt.Fprintf(env.stdout, "\n; %s\n", r.Comment)
		}
		if r.Zone != "" {
			fmt.Fprintln(env.stdout, r.Zone)
		}
	}
	return nil
}
