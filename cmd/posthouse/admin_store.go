package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/backend"
)

func runAdminStore(ctx context.Context, env *adminEnv, args []string) error {
	if len(args) == 0 || args[0] != "copy" {
		fs := newFlagSet("posthouse admin store", storeCopyUsage, env.stdout)
		if _, err := parseFlags(fs, args); err != nil {
			return err
		}
		return usageError("store: the only verb is copy")
	}
	return storeCopy(ctx, env, args[1:])
}

const storeCopyUsage = "posthouse admin store copy --to postgres://… [--force] [USER…]\n\n" +
	"Copies every account of data_dir's Maildir store (or only the USERs named) into\n" +
	"the PostgreSQL mail store at --to, keeping mailboxes, subscriptions, UIDVALIDITY,\n" +
	"UIDs, UIDNEXT, flags, keywords, modseqs, internal dates, EMAILIDs and the expunge\n" +
	"history QRESYNC answers from; clients need not resynchronise. Stop posthouse serve\n" +
	"first: an account that changes while it is copied is not committed. Each account\n" +
	"is one transaction; run it again after an interruption: accounts already copied\n" +
	"are skipped, an account the target holds with other messages is refused unless\n" +
	"--force replaces it. Without USERs it first copies the user database (domains,\n" +
	"users with password hashes, roles, quotas, 2FA, app passwords; aliases; send-as\n" +
	"grants), Sieve scripts and out-of-office settings, DKIM keys, junk filter\n" +
	"statistics and the SRS key, keeping what the target has already. Then set\n" +
	"[store] backend = \"postgres\" and dsn."

func storeCopy(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin store copy", storeCopyUsage, env.stdout)
	to := fs.String("to", "", "the target PostgreSQL database (postgres://… or key=value DSN)")
	force := fs.Bool("force", false, "replace accounts the target already holds with other messages")
	users, err := verbArgs(fs, args, 0, -1, "USER")
	if err != nil {
		return err
	}
	if *to == "" {
		return usageError("store copy: --to is required")
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The source is data_dir's Maildir store whatever [store] backend
	// says: after the switch to postgres it is still there to copy from.
	storeLog := env.log.With("proto", "mailstore")
	srcStore, err := backend.Open(ctx, backend.Options{Backend: backend.Maildir, DataDir: env.cfg.DataDir, Logger: storeLog})
	if err != nil {
		return fmt.Errorf("store copy: open %s: %w", env.cfg.DataDir, err)
	}
	defer srcStore.Close()
	dstStore, err := backend.Open(ctx, backend.Options{Backend: backend.Postgres, DSN: *to, Logger: storeLog})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer dstStore.Close()
	src, ok1 := srcStore.(mailstore.Exporter)
	dst, ok2 := dstStore.(mailstore.Importer)
	if !ok1 || !ok2 {
		return fmt.Errorf("store copy: the %s backend cannot be read whole or the %s backend cannot import", backend.Maildir, backend.Postgres)
	}

	if len(users) == 0 {
		if err := storeCopySystem(ctx, env, *to); err != nil {
			return err
		}
		if users, err = src.Accounts(ctx); err != nil {
			return fmt.Errorf("store copy: %w", err)
		}
	}
	res, err := copyAccounts(ctx, env, src, dst, users, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%d accounts copied (%d messages, %s, %.0f messages/s), %d already copied, %d failed\n",
		res.copied, res.messages, formatBytes(res.bytes), res.rate(), res.skipped, res.failed)
	if res.failed > 0 {
		return fmt.Errorf("store copy: %d accounts not copied (see above); fix and run again", res.failed)
	}
	return nil
}

// copySummary counts what copyAccounts did.
type copySummary struct {
	copied, skipped, failed int
	messages, bytes         int64
	dur                     time.Duration
}

func (c copySummary) rate() float64 {
	if c.dur <= 0 {
		return 0
	}
	return float64(c.messages) / c.dur.Seconds()
}

// copyAccounts copies each named account from src into dst, one
// transaction each, printing a line per account (and progress lines on
// stderr). An account that fails is reported and the others go on; a
// cancelled ctx stops the copy.
func copyAccounts(ctx context.Context, env *adminEnv, src mailstore.Exporter, dst mailstore.Importer, users []string, force bool) (copySummary, error) {
	var sum copySummary
	for _, user := range users {
		if err := ctx.Err(); err != nil {
			return sum, fmt.Errorf("store copy: interrupted: %w", err)
		}
		start := time.Now()
		ex, err := src.Export(ctx, strings.ToLower(user))
		if err != nil {
			sum.failed++
			fmt.Fprintf(env.stdout, "FAILED %s: %v\n", user, err)
			continue
		}
		acc := ex.Account()
		lastLine := time.Now()
		res, err := dst.Import(ctx, ex, mailstore.ImportOptions{
			Force: force,
			Progress: func(mailbox string, n int64) {
				if time.Since(lastLine) < time.Second && n < acc.Messages {
					return
				}
				lastLine = time.Now()
				fmt.Fprintf(env.stderr, "  %s: %d/%d messages (%s)\n", acc.Name, n, acc.Messages, mailbox)
			},
		})
		ex.Close()
		dur := time.Since(start)
		switch {
		case errors.Is(err, context.Canceled):
			return sum, fmt.Errorf("store copy: interrupted during %s (not committed): %w", acc.Name, err)
		case err != nil:
			sum.failed++
			fmt.Fprintf(env.stdout, "FAILED %s: %v\n", acc.Name, err)
		case res.Skipped:
			sum.skipped++
			fmt.Fprintf(env.stdout, "skipped %s: already copied (%d messages)\n", acc.Name, acc.Messages)
		default:
			sum.copied++
			sum.messages += res.Messages
			sum.bytes += res.Bytes
			sum.dur += dur
			fmt.Fprintf(env.stdout, "copied %s: %d mailboxes, %d messages, %s in %s\n",
				acc.Name, len(acc.Mailboxes), res.Messages, formatBytes(res.Bytes), dur.Round(time.Millisecond))
		}
	}
	return sum, nil
}
