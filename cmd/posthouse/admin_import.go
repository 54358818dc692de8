package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/posthouse/posthouse/mailfile"
	"github.com/posthouse/posthouse/mailimport"
	"github.com/posthouse/posthouse/mailstore"
)

func runAdminImport(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin import", "posthouse admin import [--mailbox NAME] [--mboxo] USER SOURCE\n\n"+
		"SOURCE is an mbox file, a Maildir tree, or a directory of mbox files and\n"+
		"Maildirs (Thunderbird, Google Takeout, Apple Mail exports). Running it\n"+
		"again imports nothing twice.", env.stdout)
	mailbox := fs.String("mailbox", "", "put everything into (a tree: below) this mailbox")
	mboxo := fs.Bool("mboxo", false, `un-escape only ">From " lines (mboxo) instead of every ">+From " (mboxrd)`)
	rest, err := verbArgs(fs, args, 2, 2, "USER SOURCE")
	if err != nil {
		return err
	}
	if _, err := os.Stat(rest[1]); err != nil {
		return usageError("import: %v", err)
	}
	opts := mailimport.PathOptions{Under: *mailbox}
	if *mboxo {
		opts.MboxFormat = mailfile.MboxO
	}
	return runImporter(ctx, env, rest[0], "import", func(ctx context.Context, im *mailimport.Importer, _ *mailimport.Ledger, _ string) error {
		return im.ImportPath(ctx, rest[1], opts)
	})
}

// runImporter opens the user's account and the ledger, runs fn with an
// Importer that draws a progress bar, and prints the summary. Ctrl-C stops
// after the message being stored.
func runImporter(ctx context.Context, env *adminEnv, user, label string, fn func(context.Context, *mailimport.Importer, *mailimport.Ledger, string) error) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	u, err := env.auth.User(ctx, user)
	if err != nil {
		return err
	}
	acct, err := openAccount(ctx, env, u.Address)
	if err != nil {
		return err
	}
	defer acct.Close()
	ledger, err := mailimport.OpenLedger(ctx, filepath.Join(env.cfg.DataDir, mailimport.LedgerFile))
	if err != nil {
		return err
	}
	defer ledger.Close()
	bar := newProgressBar(env, label)
	im, err := mailimport.New(ctx, acct, ledger, mailimport.Options{Logger: env.log, Progress: bar.update})
	if err != nil {
		return err
	}
	start := time.Now()
	err = fn(ctx, im, ledger, u.Address)
	bar.finish()
	printSummary(env.stdout, im.Summary(), time.Since(start))
	if err != nil {
		return fmt.Errorf("%s: %w", label, err)
	}
	return nil
}

func openAccount(ctx context.Context, env *adminEnv, address string) (mailstore.Account, error) {
	st, err := env.Store(ctx)
	if err != nil {
		return nil, err
	}
	return st.Open(ctx, address)
}
