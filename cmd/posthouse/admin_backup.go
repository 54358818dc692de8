package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/posthouse/posthouse/backup"
)

// runAdminBackup is `posthouse admin backup [flags] DIR` and
// `posthouse admin backup verify DIR` (package backup does the work).
func runAdminBackup(ctx context.Context, env *adminEnv, args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		return backupVerify(ctx, env, args[1:])
	}
	fs := newFlagSet("posthouse admin backup",
		"posthouse admin backup [--copy] [--keep N] DIR\n       posthouse admin backup verify DIR\n\n"+
			"Saves a snapshot of data_dir, the configuration file and the certificate files it\n"+
			"names into a new dated subdirectory of DIR, while the server runs. Message files\n"+
			"the previous snapshot in DIR holds are hard-linked to it, others hard-linked to\n"+
			"data_dir's when DIR is on the same file system, else copied.", env.stdout)
	copyAll := fs.Bool("copy", false, "copy message files rather than hard-link them to data_dir's")
	keep := fs.Int("keep", 0, "keep only the newest N snapshots in DIR (0: keep all)")
	rest, err := verbArgs(fs, args, 1, 1, "DIR")
	if err != nil {
		return err
	}
	if *keep < 0 {
		return usageError("--keep: must be 0 or more")
	}
	cfg := env.cfg
	res, err := backup.Run(ctx, backup.Options{
		DataDir: cfg.DataDir,
		Dir:     rest[0],
		External: []backup.External{
			{Path: cfg.Source, Role: "config"},
			{Path: cfg.TLS.CertFile, Role: "tls.cert_file"},
			{Path: cfg.TLS.KeyFile, Role: "tls.key_file"},
			{Path: cfg.TLS.ACMECAFile, Role: "tls.acme_ca_file"},
		},
		Copy:   *copyAll,
		Keep:   *keep,
		Logger: env.log,
	})
	if err != nil {
		return err
	}
	w := env.stdout
	fmt.Fprintf(w, "snapshot: %s\n", res.Snapshot)
	if res.Previous != "" {
		fmt.Fprintf(w, "previous: %s\n", res.Previous)
	}
	fmt.Fprintf(w, "databases: %d\n", res.Databases)
	fmt.Fprintf(w, "message files: %d (%d linked to the previous snapshot, %d linked to data_dir, %d copied)\n",
		res.Messages, res.Reused, res.Linked, res.Copied)
	fmt.Fprintf(w, "other files: %d, outside data_dir: %d\n", res.Files, res.Externals)
	if res.Expunged > 0 {
		fmt.Fprintf(w, "expunged while saving: %d (left out)\n", res.Expunged)
	}
	fmt.Fprintf(w, "size: %s, copied: %s, time: %s\n", fmtBytes(res.Bytes), fmtBytes(res.CopiedBytes), res.Duration.Round(time.Millisecond))
	for _, p := range res.Pruned {
		fmt.Fprintf(w, "removed old snapshot: %s\n", p)
	}
	if cfg.Source == "" {
		fmt.Fprintf(w, "note: no configuration file was given (--config); none saved\n")
	}
	return nil
}

func backupVerify(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin backup verify", "posthouse admin backup verify DIR\n\n"+
		"Checks a snapshot (DIR itself, or the newest in DIR): every file against the\n"+
		"manifest's checksums, every database with PRAGMA integrity_check, and that every\n"+
		"message file a database references is there.", env.stdout)
	rest, err := verbArgs(fs, args, 1, 1, "DIR")
	if err != nil {
		return err
	}
	v, err := backup.Verify(ctx, rest[0])
	if v != nil {
		for _, p := range v.Problems {
			fmt.Fprintf(env.stdout, "problem: %s\n", p)
		}
		if err == nil {
			fmt.Fprintf(env.stdout, "ok: %s: %d databases, %d files, %s\n", v.Snapshot, v.Databases, v.Files, fmtBytes(v.Bytes))
		}
	}
	return err
}

// runAdminRestore is `posthouse admin restore [flags] DIR`.
func runAdminRestore(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin restore",
		"posthouse admin restore [--data-dir DIR] [--config-to FILE] [--force] BACKUP\n\n"+
			"Restores a snapshot (BACKUP itself, or the newest in BACKUP) into data_dir, which\n"+
			"must be empty (or missing). Stop the server first. Mailboxes keep UIDVALIDITY,\n"+
			"UIDs, flags and modseqs, so mail clients do not download anything again.", env.stdout)
	dataDir := fs.String("data-dir", "", "restore into this directory instead of the configuration's data_dir")
	configTo := fs.String("config-to", "", "write the saved configuration file here")
	force := fs.Bool("force", false, "delete what data_dir holds first (and replace the --config-to file)")
	rest, err := verbArgs(fs, args, 1, 1, "BACKUP")
	if err != nil {
		return err
	}
	if *dataDir == "" {
		*dataDir = env.cfg.DataDir
	}
	res, err := backup.Restore(ctx, backup.RestoreOptions{Dir: rest[0], DataDir: *dataDir, Force: *force, ConfigTo: *configTo})
	if errors.Is(err, backup.ErrNotEmpty) {
		return &exitError{code: exitRefused, err: err}
	}
	if err != nil {
		return err
	}
	w := env.stdout
	fmt.Fprintf(w, "restored: %s into %s: %d files, %s, %s\n", res.Snapshot, *dataDir, res.Files, fmtBytes(res.Bytes), res.Duration.Round(time.Millisecond))
	for _, e := range res.External {
		switch {
		case e.Role == "config" && res.ConfigWritten != "":
			fmt.Fprintf(w, "configuration written to %s (saved from %s)\n", res.ConfigWritten, e.Source)
		default:
			fmt.Fprintf(w, "%s %s was saved as %s/%s (not restored: copy it into place if needed)\n", e.Role, e.Source, res.Snapshot, e.Path)
		}
	}
	return nil
}

// fmtBytes prints a size in the largest binary unit that keeps it at or
// above 1.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// opensNoDatabase names the admin commands that run without opening (or
// creating) data_dir and the system database: backup reads them as files,
// restore needs data_dir empty.
func opensNoDatabase(command string) bool {
	return command == "backup" || command == "restore"
}
