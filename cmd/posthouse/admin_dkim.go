package main

import (
	"context"
	"fmt"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/queue"
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
	rest, err := verbArgs(fs, args, 1, 1, "DOMAIN")
	if err != nil {
		return err
	}
	if *algorithm != dkim.AlgorithmRSA && *algorithm != dkim.AlgorithmEd25519 {
		return usageError("--algorithm: want rsa or ed25519, not %q", *algorithm)
	}
	return withAdminQueue(ctx, env, func(q *queue.Queue) error {
		k, err := q.DKIM().Generate(ctx, rest[0], *selector, *algorithm)
		if err != nil {
			return queueExit(err)
		}
		fmt.Fprintf(env.stderr, "Generated a new %s key for %s, selector %s. Mail from %s is signed with it from now on.\nPublish this DNS record:\n\n",
			k.Algorithm, k.Domain, k.Selector, k.Domain)
		fmt.Fprintln(env.stdout, k.ZoneRecord())
		return nil
	})
}

func dkimList(ctx context.Context, env *adminEnv, args []string) error {
	domain, err := listVerbArgs(env, "dkim", args)
	if err != nil {
		return err
	}
	keys, err := dkimKeys(ctx, env, domain)
	if err != nil {
		return err
	}
	return writeTable(env.stdout, keys, []string{"DOMAIN", "SELECTOR", "ALGORITHM", "CREATED", "DNS-NAME"}, func(k dkim.Key) []string {
		return []string{k.Domain, k.Selector, k.Algorithm, fmtTime(k.Created), k.TXTName()}
	})
}

// dkimKeys lists the signing keys of domain ("" for all) from the queue's
// key store.
func dkimKeys(ctx context.Context, env *adminEnv, domain string) (keys []dkim.Key, err error) {
	err = withAdminQueue(ctx, env, func(q *queue.Queue) error {
		keys, err = q.DKIM().List(ctx, domain)
		return err
	})
	return keys, err
}

func dkimRemove(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "dkim", "remove", "DOMAIN SELECTOR")
	rest, err := verbArgs(fs, args, 2, 2, "DOMAIN and SELECTOR")
	if err != nil {
		return err
	}
	return withAdminQueue(ctx, env, func(q *queue.Queue) error {
		if err := q.DKIM().Remove(ctx, rest[0], rest[1]); err != nil {
			return queueExit(err)
		}
		fmt.Fprintf(env.stdout, "removed DKIM key %s for %s; mail already queued keeps its signature\n", rest[1], rest[0])
		return nil
	})
}
