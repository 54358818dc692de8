package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// sendAsNoun is the nested command of `posthouse admin user send-as`.
const sendAsNoun = "user send-as"

// userSendAs runs `posthouse admin user send-as <verb>`: the addresses a
// user may use as sender on submission besides their own and their
// aliases' (auth.CanSendAs).
func userSendAs(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, sendAsNoun, []verb{
		{"add", "USER ADDRESS", "let USER send as ADDRESS (@domain: any address of the domain)", sendAsAdd},
		{"list", "[USER]", "list grants; for USER also their own and alias addresses", sendAsList},
		{"remove", "USER ADDRESS", "withdraw a grant", sendAsRemove},
	}, args)
}

func sendAsAdd(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, sendAsNoun, "add", "USER ADDRESS"), args, 2, 2, "USER and ADDRESS")
	if err != nil {
		return err
	}
	if err := env.auth.AddSendAs(ctx, rest[0], rest[1]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s may send as %s\n", rest[0], rest[1])
	return nil
}

func sendAsRemove(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, sendAsNoun, "remove", "USER ADDRESS"), args, 2, 2, "USER and ADDRESS")
	if err != nil {
		return err
	}
	if err := env.auth.RemoveSendAs(ctx, rest[0], rest[1]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s may no longer send as %s\n", rest[0], rest[1])
	return nil
}

// sendAsRow is one line of `send-as list`.
type sendAsRow struct{ user, address, via string }

// sendAsList prints every grant, or everything one user may send as:
// their own address (and its +tag forms), the aliases that reach them,
// and their grants.
func sendAsList(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, sendAsNoun, "list", "[USER]"), args, 0, 1, "")
	if err != nil {
		return err
	}
	var rows []sendAsRow
	user := ""
	if len(rest) == 1 {
		u, err := env.auth.User(ctx, rest[0])
		if err != nil {
			return err
		}
		user = u.Address
		rows = append(rows, sendAsRow{user, user, "own"})
		aliases, err := env.auth.Aliases(ctx, "")
		if err != nil {
			return err
		}
		for _, a := range aliases {
			if strings.HasPrefix(a.Address, "@") {
				continue // a catch-all grants nothing
			}
			if res, err := env.auth.Resolve(ctx, a.Address); err == nil && slices.Contains(res.Local, user) {
				rows = append(rows, sendAsRow{user, a.Address, "alias"})
			}
		}
	}
	grants, err := env.auth.SendAsGrants(ctx, user)
	if err != nil {
		return err
	}
	for _, g := range grants {
		rows = append(rows, sendAsRow{g.User, g.Address, "grant"})
	}
	if len(rows) == 0 {
		fmt.Fprintln(env.stdout, "no send-as grants")
		return nil
	}
	return writeTable(env.stdout, rows, []string{"USER", "ADDRESS", "VIA"}, func(r sendAsRow) []string {
		return []string{r.user, r.address, r.via}
	})
}
