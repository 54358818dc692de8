package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/posthouse/posthouse/auth"
)

// userRole runs `posthouse admin user role ADDRESS admin|user`.
func userRole(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, "user", "role", "ADDRESS admin|user"), args, 2, 2, "ADDRESS and admin or user")
	if err != nil {
		return err
	}
	var admin bool
	switch rest[1] {
	case "admin":
		admin = true
	case "user":
	default:
		return usageError("bad role %q: want admin or user", rest[1])
	}
	if err := env.auth.SetAdmin(ctx, rest[0], admin); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s is now %s\n", rest[0], map[bool]string{true: "an admin", false: "a user"}[admin])
	return nil
}

// userTOTPOff runs `posthouse admin user 2fa-off ADDRESS`.
func userTOTPOff(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, "user", "2fa-off", "ADDRESS"), args, 1, 1, "ADDRESS")
	if err != nil {
		return err
	}
	if err := env.auth.DisableTOTP(ctx, rest[0]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "two-factor login is off for %s; their recovery codes are void\n", rest[0])
	return nil
}

// appPasswordNoun is the nested command of `posthouse admin user app-password`.
const appPasswordNoun = "user app-password"

// userAppPassword runs `posthouse admin user app-password <verb>`.
func userAppPassword(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, appPasswordNoun, []verb{
		{"add", "USER NAME", "make an app password for one device and print it (shown once)", appPasswordAdd},
		{"list", "USER", "list a user's app passwords with their last use", appPasswordList},
		{"revoke", "USER ID", "revoke one app password (its next login fails)", appPasswordRevoke},
	}, args)
}

func appPasswordAdd(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, appPasswordNoun, "add", "USER NAME"), args, 2, 2, "USER and NAME")
	if err != nil {
		return err
	}
	ap, secret, err := env.auth.CreateAppPassword(ctx, rest[0], rest[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "app password %d (%s) for %s:\n\n    %s\n\nIt is shown only now. Use it in place of the account password on that device.\n",
		ap.ID, ap.Name, rest[0], secret)
	return nil
}

func appPasswordList(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, appPasswordNoun, "list", "USER"), args, 1, 1, "USER")
	if err != nil {
		return err
	}
	aps, err := env.auth.AppPasswords(ctx, rest[0])
	if err != nil {
		return err
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02T15:04:05Z")
	}
	return writeTable(env.stdout, aps, []string{"ID", "CREATED", "LAST-USED", "FROM", "NAME"}, func(ap auth.AppPassword) []string {
		from := ap.LastRemote
		if from == "" {
			from = "-"
		}
		return []string{strconv.FormatInt(ap.ID, 10), stamp(ap.Created), stamp(ap.LastUsed), from, ap.Name}
	})
}

func appPasswordRevoke(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, appPasswordNoun, "revoke", "USER ID"), args, 2, 2, "USER and ID")
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(rest[1], 10, 64)
	if err != nil || id <= 0 {
		return usageError("bad app password id %q: want the number 'posthouse admin user app-password list' shows", rest[1])
	}
	if err := env.auth.RevokeAppPassword(ctx, rest[0], id); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "revoked app password %d of %s\n", id, rest[0])
	return nil
}
