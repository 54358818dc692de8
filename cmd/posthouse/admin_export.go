package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/posthouse/posthouse/mailimport"
)

func runAdminExport(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin export", "posthouse admin export [--format maildir|mbox] USER DIR\n\n"+
		"DIR must not exist or be empty. maildir: a Maildir++ tree (flags in file\n"+
		"names, keywords in dovecot-keywords, dates as modification times); mbox:\n"+
		"one mboxrd file per mailbox. 'posthouse admin import' reads both back.", env.stdout)
	format := fs.String("format", "maildir", "maildir or mbox")
	rest, err := verbArgs(fs, args, 2, 2, "USER DIR")
	if err != nil {
		return err
	}
	f := mailimport.Format(*format)
	if f != mailimport.FormatMaildir && f != mailimport.FormatMbox {
		return usageError("export: --format must be maildir or mbox, not %q", *format)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	u, err := env.auth.User(ctx, rest[0])
	if err != nil {
		return err
	}
	acct, err := openAccount(ctx, env, u.Address)
	if err != nil {
		return err
	}
	defer acct.Close()
	bar := newProgressBar(env, "export")
	start := time.Now()
	sum, err := mailimport.Export(ctx, acct, rest[1], f, bar.update)
	bar.finish()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(env.stdout, "exported %d messages (%s) in %d mailboxes to %s (%s) in %s\n",
		sum.Messages, formatBytes(sum.Bytes), len(sum.Mailboxes), rest[1], f, time.Since(start).Round(time.Millisecond))
	return nil
}
