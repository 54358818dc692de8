package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/posthouse/posthouse/mailimport"
	"github.com/posthouse/posthouse/migrate"
)

func runAdminMigrate(ctx context.Context, env *adminEnv, args []string) error {
	fs := newFlagSet("posthouse admin migrate", "posthouse admin migrate --from imaps://host[:port] --login LOGIN [--password-stdin] [--parallel N] [--insecure] USER\n\n"+
		"Copies every folder of a remote IMAP account (flags, keywords, internal\n"+
		"dates) into USER. imap:// uses STARTTLS. Interrupted, it resumes where it\n"+
		"stopped; run again, it copies only what is new.", env.stdout)
	from := fs.String("from", "", "the remote server: imaps://host[:port] or imap://host[:port] (STARTTLS)")
	login := fs.String("login", "", "the remote login name")
	pwStdin := fs.Bool("password-stdin", false, "read the remote password from stdin (first line)")
	parallel := fs.Int("parallel", migrate.DefaultParallel, "folders copied at once")
	insecure := fs.Bool("insecure", false, "do not verify the server's certificate (self-signed test servers only)")
	rest, err := verbArgs(fs, args, 1, 1, "USER")
	if err != nil {
		return err
	}
	if *from == "" || *login == "" {
		return usageError("migrate: --from and --login are required")
	}
	if *parallel < 1 || *parallel > 32 {
		return usageError("migrate: --parallel must be 1 to 32")
	}
	if err := migrate.CheckSource(*from); err != nil {
		return usageError("%v", err)
	}
	opts := migrate.Options{Source: *from, Login: *login, Parallel: *parallel, Logger: env.log}
	if *insecure {
		opts.TLSConfig = &tls.Config{InsecureSkipVerify: true} // the operator asked, for a self-signed server
	}
	if opts.Password, err = readRemotePassword(env, *pwStdin, "Password for "+*login); err != nil {
		return err
	}
	return runImporter(ctx, env, rest[0], "migrate", func(ctx context.Context, im *mailimport.Importer, l *mailimport.Ledger, acct string) error {
		return migrate.Run(ctx, im, l, acct, opts)
	})
}

// readRemotePassword reads another server's password: the first line of
// stdin, or typed once at a terminal without echo.
func readRemotePassword(env *adminEnv, fromStdin bool, prompt string) (string, error) {
	if fromStdin {
		line, err := bufio.NewReaderSize(io.LimitReader(env.stdin, maxPasswordLen+2), maxPasswordLen+2).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", usageError("migrate: no password on stdin")
		}
		return pw, nil
	}
	f, ok := env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError("no terminal to ask for the password: pipe it in with --password-stdin")
	}
	fd := int(f.Fd())
	restore := echoOff(fd)
	defer restore()
	fmt.Fprintf(env.stderr, "%s: ", prompt)
	pw, err := term.ReadPassword(fd)
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(pw) == 0 {
		return "", usageError("migrate: empty password")
	}
	return string(pw), nil
}
