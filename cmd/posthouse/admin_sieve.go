package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/posthouse/posthouse/sievestore"
)

func runAdminSieve(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, "sieve", []verb{
		{"list", "USER", "list the user's Sieve scripts", sieveList},
		{"get", "USER NAME", "print a script", sieveGet},
		{"put", "[--activate] USER NAME [FILE]", "store a script from FILE or stdin (checked first)", sievePut},
		{"activate", "USER [NAME]", "make NAME the active script; without NAME, none", sieveActivate},
		{"remove", "[--force] USER NAME", "remove a script (--force: also the active one)", sieveRemove},
	}, args)
}

func runAdminVacation(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, "vacation", []verb{
		{"set", "--subject S --message-file F [--from DATE] [--until DATE] [--days N] USER", "turn the user's out-of-office on (beside their own scripts)", vacationSet},
		{"show", "USER", "show the user's out-of-office", vacationShow},
		{"off", "USER", "turn the user's out-of-office off", vacationOff},
	}, args)
}

// sieveUser returns the account of the user named on the command line
// (auth's canonical address: the account's name) and the script store.
func sieveUser(ctx context.Context, env *adminEnv, user string) (string, *sievestore.Store, error) {
	u, err := env.auth.User(ctx, user)
	if err != nil {
		return "", nil, err
	}
	st, err := env.Sieve(ctx)
	if err != nil {
		return "", nil, err
	}
	return u.Address, st, nil
}

func sieveList(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, "sieve", "list", "USER"), args, 1, 1, "USER")
	if err != nil {
		return err
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	list, err := st.List(ctx, acct)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(env.stdout, "%s has no Sieve scripts\n", acct)
		return nil
	}
	return writeTable(env.stdout, list, []string{"NAME", "ACTIVE", "SIZE"}, func(s sievestore.Script) []string {
		active := "no"
		if s.Active {
			active = "yes"
		}
		return []string{s.Name, active, strconv.Itoa(s.Size)}
	})
}

func sieveGet(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, "sieve", "get", "USER NAME"), args, 2, 2, "USER NAME")
	if err != nil {
		return err
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	src, err := st.Get(ctx, acct, rest[1])
	if err != nil {
		return err
	}
	_, err = env.stdout.Write(src)
	return err
}

func sievePut(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "sieve", "put", "[--activate] USER NAME [FILE]")
	activate := fs.Bool("activate", false, "make it the active script")
	rest, err := verbArgs(fs, args, 2, 3, "USER NAME")
	if err != nil {
		return err
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	var r io.Reader = env.stdin
	from := "stdin"
	if len(rest) == 3 && rest[2] != "-" {
		f, err := os.Open(rest[2])
		if err != nil {
			return err
		}
		defer f.Close()
		r, from = f, rest[2]
	}
	// One byte past the limit, so that a longer script is refused as such.
	src, err := io.ReadAll(io.LimitReader(r, int64(st.MaxScriptBytes())+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", from, err)
	}
	if err := st.Put(ctx, acct, rest[1], src); err != nil {
		return fmt.Errorf("script %s from %s: %w", rest[1], from, err)
	}
	fmt.Fprintf(env.stdout, "stored script %s for %s (%d bytes)\n", rest[1], acct, len(src))
	if *activate {
		if err := st.SetActive(ctx, acct, rest[1]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "script %s is active\n", rest[1])
	}
	return nil
}

func sieveActivate(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, "sieve", "activate", "USER [NAME]"), args, 1, 2, "USER")
	if err != nil {
		return err
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	name := ""
	if len(rest) == 2 {
		name = rest[1]
	}
	if err := st.SetActive(ctx, acct, name); err != nil {
		return err
	}
	if name == "" {
		fmt.Fprintf(env.stdout, "no script of %s is active\n", acct)
	} else {
		fmt.Fprintf(env.stdout, "script %s of %s is active\n", name, acct)
	}
	return nil
}

func sieveRemove(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "sieve", "remove", "[--force] USER NAME")
	force := fs.Bool("force", false, "remove the active script too (none is active then)")
	rest, err := verbArgs(fs, args, 2, 2, "USER NAME")
	if err != nil {
		return err
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	err = st.Delete(ctx, acct, rest[1])
	if errors.Is(err, sievestore.ErrActive) && *force {
		if err = st.SetActive(ctx, acct, ""); err == nil {
			err = st.Delete(ctx, acct, rest[1])
		}
	}
	if errors.Is(err, sievestore.ErrActive) {
		return fmt.Errorf("%w (use --force, or activate another first)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "removed script %s of %s\n", rest[1], acct)
	return nil
}

// parseDate reads YYYY-MM-DD (local midnight; with end, the midnight that
// ends the day) or an RFC 3339 time.
func parseDate(s string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, time.Local)
	if err != nil {
		return time.Time{}, usageError("bad date %q: want YYYY-MM-DD or 2006-01-02T15:04:05Z07:00", s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

func vacationSet(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "vacation", "set", "--subject S --message-file F [--from DATE] [--until DATE] [--days N] USER")
	subject := fs.String("subject", "", "the responses' subject (required)")
	file := fs.String("message-file", "", "file with the response's text, - for stdin (required)")
	fromFlag := fs.String("from", "", "first day (YYYY-MM-DD) or time (RFC 3339); default now")
	untilFlag := fs.String("until", "", "last day, included (YYYY-MM-DD), or end time (RFC 3339); default none")
	days := fs.Int("days", 0, "days before the same sender is answered again (default 7, at least 1)")
	rest, err := verbArgs(fs, args, 1, 1, "USER")
	if err != nil {
		return err
	}
	if *subject == "" || *file == "" {
		return usageError("%s: --subject and --message-file are required", fs.Name())
	}
	if *days < 0 {
		return usageError("%s: --days must not be negative", fs.Name())
	}
	v := sievestore.Vacation{Subject: *subject, Period: time.Duration(*days) * 24 * time.Hour}
	if *fromFlag != "" {
		if v.Start, err = parseDate(*fromFlag, false); err != nil {
			return err
		}
	}
	if *untilFlag != "" {
		if v.End, err = parseDate(*untilFlag, true); err != nil {
			return err
		}
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	var r io.Reader = env.stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	msg, err := io.ReadAll(io.LimitReader(r, int64(st.MaxScriptBytes())+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", *file, err)
	}
	v.Message = strings.TrimRight(string(msg), "\r\n") + "\n"
	if err := st.SetVacation(ctx, acct, v); err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	fmt.Fprintf(env.stdout, "out-of-office set for %s (%s)\n", acct, vacationWhen(&v))
	return nil
}

// vacationWhen says when an out-of-office applies.
func vacationWhen(v *sievestore.Vacation) string {
	const layout = "2006-01-02 15:04 MST"
	switch {
	case v.Start.IsZero() && v.End.IsZero():
		return "from now on"
	case v.End.IsZero():
		return "from " + v.Start.Local().Format(layout)
	case v.Start.IsZero():
		return "until " + v.End.Local().Format(layout)
	}
	return "from " + v.Start.Local().Format(layout) + " until " + v.End.Local().Format(layout)
}

func vacationShow(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, "vacation", "show", "USER"), args, 1, 1, "USER")
	if err != nil {
		return err
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	v, err := st.Vacation(ctx, acct)
	if err != nil {
		return err
	}
	now := time.Now()
	state := "on"
	switch {
	case !v.Start.IsZero() && now.Before(v.Start):
		state = "scheduled"
	case !v.End.IsZero() && !now.Before(v.End):
		state = "ended"
	}
	period := "7 days (default)"
	if v.Period > 0 {
		period = fmt.Sprintf("%d days", int(v.Period/(24*time.Hour)))
	}
	fmt.Fprintf(env.stdout, "User:    %s\nState:   %s (%s)\nSubject: %s\nRepeat:  once per sender every %s\nSet:     %s\n\n%s",
		acct, state, vacationWhen(v), v.Subject, period, v.Modified.Local().Format(time.RFC3339), v.Message)
	return nil
}

func vacationOff(ctx context.Context, env *adminEnv, args []string) error {
	rest, err := verbArgs(verbFlags(env, "vacation", "off", "USER"), args, 1, 1, "USER")
	if err != nil {
		return err
	}
	acct, st, err := sieveUser(ctx, env, rest[0])
	if err != nil {
		return err
	}
	if err := st.DeleteVacation(ctx, acct); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "out-of-office off for %s\n", acct)
	return nil
}
