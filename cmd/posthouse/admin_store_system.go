package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/internal/pgdb"
	"github.com/posthouse/posthouse/junk"
	"github.com/posthouse/posthouse/queue"
	"github.com/posthouse/posthouse/sievestore"
	"github.com/posthouse/posthouse/srs"
)

// storeCopySystem copies what data_dir keeps besides the mailboxes into
// the PostgreSQL database at dsn, where the postgres backend looks for
// it: the user database (users.sqlite: domains, users with their password
// hashes, roles, quotas and second factor, app passwords, aliases, send-as
// grants), the Sieve scripts and out-of-office settings (sieve.sqlite), the
// DKIM keys (queue.sqlite), the junk filter's statistics (junk.sqlite) and
// the SRS key (srs.key). Greylist and web sessions are not copied: they
// are disposable. Each part says what it
// copied, or that the target had everything already: what the target holds
// is never replaced, so running it again changes nothing. A file data_dir
// does not have is skipped (and not created).
func storeCopySystem(ctx context.Context, env *adminEnv, dsn string) error {
	pool, err := pgdb.Open(ctx, dsn)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer pool.Close()
	out := env.stdout
	have := func(name string) (string, bool) {
		p := filepath.Join(env.cfg.DataDir, name)
		_, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(out, "%s: not in data_dir, nothing to copy\n", name)
		}
		return p, err == nil
	}
	unchanged := func(what string, kept int) {
		fmt.Fprintf(out, "%s: nothing to copy, the target has it all already (%d kept)\n", what, kept)
	}

	if path, ok := have("users.sqlite"); ok {
		src, err := auth.Open(ctx, path, auth.Options{Logger: env.log})
		if err != nil {
			return fmt.Errorf("store copy: users: %w", err)
		}
		defer src.Close()
		dst, err := auth.OpenPostgres(ctx, pool, auth.Options{Logger: env.log})
		if err != nil {
			return fmt.Errorf("store copy: users: %w", err)
		}
		defer dst.Close()
		res, err := src.CopyTo(ctx, dst)
		if err != nil {
			return fmt.Errorf("store copy: %w", err)
		}
		if !res.Changed() {
			unchanged("user database", res.Kept)
		} else {
			fmt.Fprintf(out, "user database: copied %d domains, %d users (%d app passwords), %d aliases, %d send-as grants; %d kept as the target had them\n",
				res.Domains, res.Users, res.AppPasswords, res.Aliases, res.SendAs, res.Kept)
		}
	}

	if path, ok := have("sieve.sqlite"); ok {
		src, err := sievestore.Open(ctx, path, sievestore.Options{Logger: env.log})
		if err != nil {
			return fmt.Errorf("store copy: sieve: %w", err)
		}
		defer src.Close()
		dst, err := sievestore.OpenPostgres(ctx, pool, sievestore.Options{Logger: env.log})
		if err != nil {
			return fmt.Errorf("store copy: sieve: %w", err)
		}
		defer dst.Close()
		res, err := src.CopyTo(ctx, dst)
		if err != nil {
			return fmt.Errorf("store copy: %w", err)
		}
		if !res.Changed() {
			unchanged("Sieve scripts", res.Kept)
		} else {
			fmt.Fprintf(out, "Sieve scripts: copied %d scripts, %d out-of-office settings, %d tracked responses; %d kept as the target had them\n",
				res.Scripts, res.Vacations, res.Tracked, res.Kept)
		}
	}

	if _, ok := have("queue.sqlite"); ok {
		// Opened as admin opens it beside a server; only its keys are read.
		opts := queueOptions(env.cfg)
		opts.Logger, opts.Shared = env.log, true
		q, err := queue.Open(ctx, opts)
		if err != nil {
			return fmt.Errorf("store copy: DKIM keys: %w", err)
		}
		defer q.Close()
		dst, err := dkim.OpenPostgresKeys(ctx, pool, nil)
		if err != nil {
			return fmt.Errorf("store copy: DKIM keys: %w", err)
		}
		defer dst.Close()
		copied, kept, err := q.DKIM().CopyTo(ctx, dst)
		if err != nil {
			return fmt.Errorf("store copy: %w", err)
		}
		if copied == 0 {
			unchanged("DKIM keys", kept)
		} else {
			fmt.Fprintf(out, "DKIM keys: copied %d; %d kept as the target had them\n", copied, kept)
		}
	}

	if path, ok := have("junk.sqlite"); ok {
		src, err := junk.OpenDB(ctx, path, junk.DBOptions{})
		if err != nil {
			return fmt.Errorf("store copy: junk statistics: %w", err)
		}
		defer src.Close()
		dst, err := junk.OpenDBPostgres(ctx, pool, junk.DBOptions{})
		if err != nil {
			return fmt.Errorf("store copy: junk statistics: %w", err)
		}
		defer dst.Close()
		res, err := src.CopyTo(ctx, dst)
		if err != nil {
			return fmt.Errorf("store copy: %w", err)
		}
		if res.Accounts == 0 {
			unchanged("junk filter statistics", res.Kept)
		} else {
			fmt.Fprintf(out, "junk filter statistics: copied %d accounts (%d features); %d kept as the target had them\n", res.Accounts, res.Tokens, res.Kept)
		}
	}

	if path, ok := have("srs.key"); ok {
		key, err := srs.ReadKey(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store copy: %w", err)
		}
		got, stored, err := srs.LoadKeyPostgres(ctx, pool, key)
		switch {
		case err != nil:
			return fmt.Errorf("store copy: %w", err)
		case stored:
			fmt.Fprintln(out, "SRS key: copied")
		case bytes.Equal(got, key):
			unchanged("SRS key", 1)
		default:
			fmt.Fprintln(out, "SRS key: the target has another key, kept; bounces to addresses this node rewrote before will not verify")
		}
	}
	return nil
}
