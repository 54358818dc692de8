package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/mailstore"
)

func runAdminDomain(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, "domain", []verb{
		{"add", "DOMAIN", "add a domain", domainAdd},
		{"list", "", "list domains", domainList},
		{"remove", "[--force] [--keep-mail] DOMAIN", "remove a domain (--force: with its users, aliases and mail)", domainRemove},
	}, args)
}

func domainAdd(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "domain", "add", "DOMAIN")
	rest, err := verbArgs(fs, args, 1, 1, "DOMAIN")
	if err != nil {
		return err
	}
	if err := env.auth.AddDomain(ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "added domain %s\n", rest[0])
	return nil
}

func domainList(ctx context.Context, env *adminEnv, args []string) error {
	if _, err := verbArgs(verbFlags(env, "domain", "list", ""), args, 0, 0, ""); err != nil {
		return err
	}
	domains, err := env.auth.Domains(ctx)
	if err != nil {
		return err
	}
	return writeTable(env.stdout, domains, []string{"DOMAIN", "CREATED"}, func(d auth.Domain) []string {
		return []string{d.Name, d.Created.UTC().Format("2006-01-02T15:04:05Z")}
	})
}

func domainRemove(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "domain", "remove", "[--force] [--keep-mail] DOMAIN")
	force := fs.Bool("force", false, "also remove the domain's users and aliases, and the users' mail")
	keepMail := fs.Bool("keep-mail", false, "with --force: keep the users' mail on disk")
	rest, err := verbArgs(fs, args, 1, 1, "DOMAIN")
	if err != nil {
		return err
	}
	var users []string
	if *force {
		us, err := env.auth.Users(ctx, rest[0])
		if err != nil {
			return err
		}
		for _, u := range us {
			users = append(users, u.Address)
		}
	}
	if err := env.auth.RemoveDomain(ctx, rest[0], *force); err != nil {
		if errors.Is(err, auth.ErrDomainNotEmpty) {
			return fmt.Errorf("%w (remove them first, or use --force to remove them with their mail)", err)
		}
		return err
	}
	fmt.Fprintf(env.stdout, "removed domain %s", rest[0])
	if len(users) > 0 {
		fmt.Fprintf(env.stdout, " and %d user(s)", len(users))
	}
	fmt.Fprintln(env.stdout)
	if *keepMail || len(users) == 0 {
		return nil
	}
	store, err := env.Store(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := store.Remove(ctx, u); err != nil && !errors.Is(err, mailstore.ErrNoSuchAccount) {
			return fmt.Errorf("remove mail of %s: %w", u, err)
		}
	}
	return nil
}
