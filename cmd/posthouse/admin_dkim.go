package main

import (
	"context"
	"fmt"

	"github.com/posthouse/posthouse/dkim"
)

func runAdminDKIM(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, "dkim", []verb{
		{"generate", "[--selector S] [--algorithm rsa|ed25519] DOMAIN", "make a key and print its DNS record", dkimGenerate},
		{"list", "[DOMAIN]", "list keys", dkimList},
		{"remove", "DOMAIN SELECTOR", "delete a key (unpublish its DNS record a few days later)", dkimRemove},
	}, args)
}

func dkimGenerate(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "dkim", "generate", "[--selector S] [--algorithm rsa|ed25519] DOMAIN")
	selector := fs.String("selector", "", "DNS selector (default: algorithm and month, e.g. rsa202611)")
	algorithm := fs.String("algorithm", dkim.AlgorithmRSA, "rsa (RSA-2048, understood everywhere) or ed25519 (RFC 8463; add it beside an RSA key)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 1, 1, "DOMAIN"); err != nil {
		return err
	}
	if *algorithm != dkim.AlgorithmRSA && *algorithm != dkim.AlgorithmEd25519 {
		return usageError("--algorithm: want rsa or ed25519, not %q", *algorithm)
	}
	q, err := openAdminQueue(ctx, env)
	if err != nil {
		return err
	}
	defer q.Close()
	k, err := q.DKIM().Generate(ctx, rest[0], *selector, *algorithm)
	if err != nil {
		return queueExit(err)
	}
	fmt.Fprintf(env.stderr, "Generated a new %s key for %s, selector %s. Mail from %s is signed with it from now on.\nPublish this DNS record:\n\n",
		k.Algorithm, k.Domain, k.Selector, k.Domain)
	fmt.Fprintln(env.stdout, k.ZoneRecord())
	return nil
}

func dkimList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "dkim", "list", "[DOMAIN]")
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
	q, err := openAdminQueue(ctx, env)
	if err != nil {
		return err
	}
	defer q.Close()
	keys, err := q.DKIM().List(ctx, domain)
	if err != nil {
		return err
	}
	t := newTable(env.stdout, "DOMAIN", "SELECTOR", "ALGORITHM", "CREATED", "DNS-NAME")
	for _, k := range keys {
		t.row(k.Domain, k.Selector, k.Algorithm, fmtTime(k.Created), k.TXTName())
	}
	return t.flush()
}

func dkimRemove(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "dkim", "remove", "DOMAIN SELECTOR")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 2, 2, "DOMAIN and SELECTOR"); err != nil {
		return err
	}
	q, err := openAdminQueue(ctx, env)
	if err != nil {
		return err
	}
	defer q.Close()
	if err := q.DKIM().Remove(ctx, rest[0], rest[1]); err != nil {
		return queueExit(err)
	}
	fmt.Fprintf(env.stdout, "removed DKIM key %s for %s; mail already queued keeps its signature\n", rest[1], rest[0])
	return nil
}
