package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/posthouse/posthouse/auth"
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
	rest, err := verbArgs(fs, args, 2, -1, "ADDRESS and at least one TARGET")
	if err != nil {
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
	domain, err := listVerbArgs(env, "alias", args)
	if err != nil {
		return err
	}
	aliases, err := env.auth.Aliases(ctx, domain)
	if err != nil {
		return err
	}
	return writeTable(env.stdout, aliases, []string{"ALIAS", "TARGETS"}, func(a auth.Alias) []string {
		return []string{a.Address, strings.Join(a.Targets, ",")}
	})
}

func aliasRemove(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "alias", "remove", "ADDRESS")
	rest, err := verbArgs(fs, args, 1, 1, "ADDRESS")
	if err != nil {
		return err
	}
	if err := env.auth.RemoveAlias(ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "removed alias %s\n", rest[0])
	return nil
}
