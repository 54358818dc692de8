package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/mailstore"
)

func runAdminUser(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, "user", []verb{
		{"add", "[--password-stdin] [--admin] [--quota SIZE] [--messages N] ADDRESS", "add a user in an existing domain", userAdd},
		{"list", "[DOMAIN]", "list users", userList},
		{"passwd", "[--password-stdin] ADDRESS", "set a user's password", userPasswd},
		{"quota", "[--messages N] ADDRESS [SIZE]", "set a user's quota (2GiB, 500MB; 0 or unlimited) and/or message count limit", userQuota},
		{"disable", "ADDRESS", "refuse the user's logins (mail is still accepted)", userSetDisabled(true)},
		{"enable", "ADDRESS", "allow the user's logins again", userSetDisabled(false)},
		{"remove", "[--keep-mail] ADDRESS", "remove a user and their mail", userRemove},
		{"send-as", "add|list|remove ...", "addresses a user may send as besides their own and aliases", userSendAs},
		{"profile", "--apple [--with-password] [--name NAME] ADDRESS", "write the user's Apple configuration profile (.mobileconfig) to stdout", userProfile},
		{"role", "ADDRESS admin|user", "make a user an administrator of the web console, or not", userRole},
		{"app-password", "add|list|revoke ...", "per-device passwords for IMAP, POP3, SMTP and ManageSieve", userAppPassword},
		{"2fa-off", "ADDRESS", "turn off a user's two-factor web login (lost phone and recovery codes)", userTOTPOff},
	}, args)
}

// parseQuota reads "2GiB", "500MB", "0", "unlimited" or "none".
func parseQuota(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unlimited", "none":
		return 0, nil
	}
	n, err := config.ParseByteSize(s)
	if err != nil {
		return 0, usageError("bad quota %q: want a size like 2GiB or 500MB, or 0/unlimited", s)
	}
	return int64(n), nil
}

// parseMessageQuota reads a message count, "0", "unlimited" or "none".
func parseMessageQuota(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "unlimited", "none":
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, usageError("bad message quota %q: want a number of messages, or 0/unlimited", s)
	}
	return n, nil
}

func formatMessageQuota(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10) + " messages"
}

func formatQuota(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return config.ByteSize(n).String()
}

func userAdd(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "user", "add", "[--password-stdin] [--admin] [--quota SIZE] [--messages N] ADDRESS")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	admin := fs.Bool("admin", false, "give the user the admin role (the web console's administration pages)")
	quotaFlag := fs.String("quota", "unlimited", "mailbox quota, e.g. 2GiB or 500MB")
	messagesFlag := fs.String("messages", "unlimited", "most messages the account may hold")
	rest, err := verbArgs(fs, args, 1, 1, "ADDRESS")
	if err != nil {
		return err
	}
	quota, err := parseQuota(*quotaFlag)
	if err != nil {
		return err
	}
	messages, err := parseMessageQuota(*messagesFlag)
	if err != nil {
		return err
	}
	// Check what can be checked before asking for a password.
	addr, err := auth.NormalizeAddress(rest[0])
	if err != nil {
		return err
	}
	_, domain, _ := strings.Cut(addr, "@")
	if ok, err := env.auth.IsLocalDomain(ctx, domain); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s (add it first: posthouse admin domain add %s)", auth.ErrNoSuchDomain, domain, domain)
	}
	if _, err := env.auth.User(ctx, addr); err == nil {
		return fmt.Errorf("%w: user %s", auth.ErrExists, addr)
	}
	pw, err := readPassword(env, *fromStdin, "Password for "+rest[0])
	if err != nil {
		return err
	}
	u, err := env.auth.AddUser(ctx, rest[0], pw, quota)
	if err != nil {
		return err
	}
	if messages > 0 {
		if err := env.auth.SetMessageQuota(ctx, u.Address, messages); err != nil {
			return err
		}
	}
	role := ""
	if *admin {
		if err := env.auth.SetAdmin(ctx, u.Address, true); err != nil {
			return err
		}
		role = ", admin"
	}
	fmt.Fprintf(env.stdout, "added user %s (quota %s, %s%s)\n", u.Address, formatQuota(u.QuotaBytes), formatMessageQuota(messages), role)
	return nil
}

func userList(ctx context.Context, env *adminEnv, args []string) error {
	domain, err := listVerbArgs(env, "user", args)
	if err != nil {
		return err
	}
	users, err := env.auth.Users(ctx, domain)
	if err != nil {
		return err
	}
	return writeTable(env.stdout, users, []string{"ADDRESS", "QUOTA", "STATUS", "CREATED", "ROLE", "2FA"}, func(u auth.User) []string {
		status := "active"
		if u.Disabled {
			status = "disabled"
		}
		role, twoFA := "user", "off"
		if u.Admin {
			role = "admin"
		}
		if u.TOTP {
			twoFA = "on"
		}
		return []string{u.Address, formatQuota(u.QuotaBytes), status, u.Created.UTC().Format("2006-01-02T15:04:05Z"), role, twoFA}
	})
}

func userPasswd(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "user", "passwd", "[--password-stdin] ADDRESS")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	rest, err := verbArgs(fs, args, 1, 1, "ADDRESS")
	if err != nil {
		return err
	}
	if _, err := env.auth.User(ctx, rest[0]); err != nil {
		return err
	}
	pw, err := readPassword(env, *fromStdin, "New password for "+rest[0])
	if err != nil {
		return err
	}
	if err := env.auth.SetPassword(ctx, rest[0], pw); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "password changed for %s\n", rest[0])
	return nil
}

func userQuota(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "user", "quota", "[--messages N] ADDRESS [SIZE]")
	messagesFlag := fs.String("messages", "", "most messages the account may hold (0 or unlimited lifts it)")
	rest, err := verbArgs(fs, args, 1, 2, "ADDRESS")
	if err != nil {
		return err
	}
	if len(rest) < 2 && *messagesFlag == "" {
		return usageError("%s: missing SIZE or --messages", fs.Name())
	}
	var quota, messages int64
	if len(rest) == 2 {
		if quota, err = parseQuota(rest[1]); err != nil {
			return err
		}
	}
	if *messagesFlag != "" {
		if messages, err = parseMessageQuota(*messagesFlag); err != nil {
			return err
		}
	}
	if len(rest) == 2 {
		if err := env.auth.SetQuota(ctx, rest[0], quota); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "quota of %s is %s\n", rest[0], formatQuota(quota))
	}
	if *messagesFlag != "" {
		if err := env.auth.SetMessageQuota(ctx, rest[0], messages); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "message quota of %s is %s\n", rest[0], formatMessageQuota(messages))
	}
	return nil
}

func userSetDisabled(disabled bool) func(context.Context, *adminEnv, []string) error {
	name := "enable"
	if disabled {
		name = "disable"
	}
	return func(ctx context.Context, env *adminEnv, args []string) error {
		fs := verbFlags(env, "user", name, "ADDRESS")
		rest, err := verbArgs(fs, args, 1, 1, "ADDRESS")
		if err != nil {
			return err
		}
		if err := env.auth.SetDisabled(ctx, rest[0], disabled); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%sd user %s\n", name, rest[0])
		return nil
	}
}

func userRemove(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "user", "remove", "[--keep-mail] ADDRESS")
	keepMail := fs.Bool("keep-mail", false, "keep the user's mail on disk")
	rest, err := verbArgs(fs, args, 1, 1, "ADDRESS")
	if err != nil {
		return err
	}
	u, err := env.auth.User(ctx, rest[0])
	if err != nil {
		return err
	}
	// The login goes first, so nothing new arrives while the mail goes.
	if err := env.auth.RemoveUser(ctx, u.Address); err != nil {
		return err
	}
	// Their Sieve scripts, out-of-office and tracking go with the login,
	// whether or not the mail stays.
	st, err := env.Sieve(ctx)
	if err == nil {
		err = st.DeleteAccount(ctx, u.Address)
	}
	if err != nil {
		return fmt.Errorf("user %s removed, but not their Sieve scripts: %w", u.Address, err)
	}
	if *keepMail {
		fmt.Fprintf(env.stdout, "removed user %s (mail kept)\n", u.Address)
		return nil
	}
	store, err := env.Store(ctx)
	if err != nil {
		return err
	}
	if err := store.Remove(ctx, u.Address); err != nil && !errors.Is(err, mailstore.ErrNoSuchAccount) {
		return fmt.Errorf("user %s removed, but not their mail: %w", u.Address, err)
	}
	fmt.Fprintf(env.stdout, "removed user %s and their mail\n", u.Address)
	return nil
}
