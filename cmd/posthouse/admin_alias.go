package main

import (
	"context"
	"fmt"
	"strings"
)

func runAdminAlias(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, "alias", []verb{
		{"add", "ADDRESS TARGET...", "make ADDRESS (or @domain) deliver to the targets", aliasAdd},
		{"list", "[DOMAIN]", "list aliases", aliasList},
		{"remove", "ADDRESS", "remove an alias", aliasRemove},
	}, args)
}

func aliasAdd(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "alias", "add", "ADDRESS TARGET...")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 2, -1, "ADDRESS and at least one TARGET"); err != nil {
		return err
	}
	// Targets may be given as separate arguments or comma-separated.
	var targets []string
	for _, a := range rest[1:] {
		for _, t := range strings.Split(a, ",") {
			if t = strings.TrimSpace(t); t != "" {
				targets = append(targets, t)
			}
		}
	}
	if err := env.auth.AddAlias(ctx, rest[0], targets); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "added alias %s -> %s\n", rest[0], strings.Join(targets, ","))
	return nil
}

func aliasList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "alias", "list", "[DOMAIN]")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 0, 1, ""); err != nil {
		return err
	}
	domain := ""
	if len(rest) == 1 {
		domain = rest[0]
	}
	aliases, err := env.auth.Aliases(ctx, domain)
	if err != nil {
		return err
	}
	t := newTable(env.stdout, "ALIAS", "TARGETS")
	for _, a := range aliases {
		t.row(a.Address, strings.Join(a.Targets, ","))
	}
	return t.flush()
}

func aliasRemove(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "alias", "remove", "ADDRESS")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 1, 1, "ADDRESS"); err != nil {
		return err
	}
	if err := env.auth.RemoveAlias(ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "removed alias %s\n", rest[0])
	return nil
}
