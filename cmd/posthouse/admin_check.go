package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/posthouse/posthouse/mailstore"
)

// runAdminCheck verifies users' mail storage against its index and, with
// --repair, fixes what it finds. Checking only reads, so it is the default:
// an administrator looks before letting a tool change mail, as with fsck -n.
// Both work beside a running server: repairs go through the store (SQLite
// locks), never by editing files behind it.
//
// Exit status: 0 when everything is (or, after --repair, is now) sound, 1
// when a problem remains.
func runAdminCheck(ctx context.Context, env *adminEnv, args []string) error {
	flags := newFlagSet("posthouse admin check",
		"posthouse admin check [--repair] [USER...]\n\n"+
			"Checks each USER's mail (default: every user): the index's integrity (PRAGMA\n"+
			"integrity_check), every indexed message has its file, every message file is\n"+
			"indexed, and the mailbox counters behind quotas equal their messages' sums.\n"+
			"It only reads unless --repair is given; then a damaged index is moved aside\n"+
			"(index.sqlite.corrupt-<time>) and rebuilt from the Maildir, keeping UIDs and\n"+
			"flags where it still can; lost files are expunged from the index; unindexed\n"+
			"files are indexed; counters are recomputed. Works while the server runs.",
		env.stdout)
	repair := flags.Bool("repair", false, "fix what the check finds")
	users, err := verbArgs(flags, args, 0, -1, "")
	if err != nil {
		return err
	}
	st, err := env.Store(ctx)
	if err != nil {
		return err
	}
	checker, ok := st.(mailstore.Checker)
	if !ok {
		return fmt.Errorf("admin check: the %q store backend has no check", env.cfg.Store.Backend)
	}
	explicit := len(users) > 0
	if !explicit {
		all, err := env.auth.Users(ctx, "")
		if err != nil {
			return err
		}
		for _, u := range all {
			users = append(users, u.Address)
		}
	}
	var bad, checked int
	for _, u := range users {
		rep, err := checker.CheckAccount(ctx, u, *repair)
		if errors.Is(err, mailstore.ErrNoSuchAccount) {
			if explicit {
				fmt.Fprintf(env.stdout, "%s: no mail stored\n", u)
			}
			continue
		}
		checked++
		if err != nil {
			bad++
			fmt.Fprintf(env.stdout, "%s: FAILED: %v\n", u, err)
			continue
		}
		remaining := rep.Problems
		if *repair {
			remaining = rep.Remaining
		}
		switch {
		case len(rep.Problems) == 0:
			fmt.Fprintf(env.stdout, "%s: ok (%d mailboxes, %d messages)\n", u, rep.Mailboxes, rep.Messages)
			continue
		case len(remaining) == 0:
			fmt.Fprintf(env.stdout, "%s: repaired (%d mailboxes, %d messages)\n", u, rep.Mailboxes, rep.Messages)
		default:
			bad++
			fmt.Fprintf(env.stdout, "%s: %d problem(s)\n", u, len(remaining))
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(env.stdout, "  found: %s\n", p)
		}
		for _, r := range rep.Repaired {
			fmt.Fprintf(env.stdout, "  repaired: %s\n", r)
		}
		if *repair {
			for _, p := range rep.Remaining {
				fmt.Fprintf(env.stdout, "  remains: %s\n", p)
			}
		}
	}
	fmt.Fprintf(env.stdout, "%d account(s) checked, %d with problems", checked, bad)
	if bad > 0 && !*repair {
		fmt.Fprintf(env.stdout, " (run again with --repair to fix them)")
	}
	fmt.Fprintln(env.stdout)
	if bad > 0 {
		return &exitError{code: exitFailure, err: fmt.Errorf("admin check: %d account(s) with problems", bad)}
	}
	return nil
}
