package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/term"

	"github.com/posthouse/posthouse/auth"
	"github.com/posthouse/posthouse/config"
	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/backend"
	"github.com/posthouse/posthouse/sieve"
	"github.com/posthouse/posthouse/sievestore"
)

// adminEnv is what an admin subcommand works with. The system database is
// open; the mailstore opens on first use. Both are safe to use while
// `posthouse serve` runs on the same data_dir (SQLite WAL, busy timeout).
type adminEnv struct {
	cfg  *config.Config
	auth *auth.DB // nil only while printing help
	// pool is the PostgreSQL pool of the postgres backend (openUserDB), nil
	// otherwise.
	pool   *pgxpool.Pool
	log    *slog.Logger
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	storeOnce sync.Once
	store     mailstore.Store
	storeErr  error

	sieveOnce sync.Once
	sieve     *sievestore.Store
	sieveErr  error
}

// Sieve opens the users' Sieve scripts on first use.
func (e *adminEnv) Sieve(ctx context.Context) (*sievestore.Store, error) {
	e.sieveOnce.Do(func() {
		e.sieve, e.sieveErr = openSieveStore(ctx, e.cfg, e.pool, e.log)
		if e.sieveErr != nil {
			e.sieveErr = fmt.Errorf("open sieve scripts: %w", e.sieveErr)
		}
	})
	return e.sieve, e.sieveErr
}

// Store opens the mailstore on first use.
func (e *adminEnv) Store(ctx context.Context) (mailstore.Store, error) {
	e.storeOnce.Do(func() {
		var q quotas
		if e.auth != nil {
			q = e.auth
		}
		opts := storeOptions(e.cfg, e.log, q)
		opts.Pool = e.pool
		e.store, e.storeErr = backend.Open(ctx, opts)
		if e.storeErr != nil {
			e.storeErr = fmt.Errorf("open mailstore: %w", e.storeErr)
		}
	})
	return e.store, e.storeErr
}

func (e *adminEnv) close() {
	if e.sieve != nil {
		if err := e.sieve.Close(); err != nil {
			e.log.Error("close sieve scripts", "err", err)
		}
	}
	if e.store != nil {
		if err := e.store.Close(); err != nil {
			e.log.Error("close mailstore", "err", err)
		}
	}
	if e.auth != nil {
		if err := e.auth.Close(); err != nil {
			e.log.Error("close user database", "err", err)
		}
	}
	if e.pool != nil {
		e.pool.Close()
	}
}

// adminCommand is one noun of `posthouse admin`.
type adminCommand struct {
	name, summary string
	run           func(ctx context.Context, env *adminEnv, args []string) error
}

// adminCommands are the nouns of `posthouse admin`, each in its own
// admin_<noun>.go, in the order help lists them. run gets the arguments
// after the noun; it prints its usage on -h/--help (newFlagSet/parseFlags
// do) before touching env.auth, which is nil when help is all that was
// asked.
func adminCommands() []adminCommand {
	return []adminCommand{
		{"alias", "add, list and remove aliases (address → addresses; @domain is the catch-all)", runAdminAlias},
		{"backup", "save a snapshot of data_dir and the configuration (verify checks one)", runAdminBackup},
		{"check", "verify users' mail against its index; --repair fixes what it finds", runAdminCheck},
		{"dkim", "generate, list and remove DKIM signing keys", runAdminDKIM},
		{"dns", "print the DNS records a domain needs (MX, SPF, DKIM, DMARC, client setup)", runAdminDNS},
		{"domain", "add, list and remove the domains we receive mail for", runAdminDomain},
		{"export", "write a user's mail to a Maildir tree or mbox files", runAdminExport},
		{"import", "import mbox files or Maildir trees into a user's mailboxes (once)", runAdminImport},
		{"migrate", "copy a user's mail from another IMAP server (resumable)", runAdminMigrate},
		{"queue", "list, show, retry and remove outbound messages", runAdminQueue},
		{"restore", "restore a snapshot into an empty data_dir", runAdminRestore},
		{"sieve", "list, get, put, activate and remove users' Sieve scripts (filter rules)", runAdminSieve},
		{"status", "one-screen summary: listeners, queue, disk space, certificate, accounts", runAdminStatus},
		{"store", "copy data_dir's Maildir accounts into a PostgreSQL mail store (store copy --to)", runAdminStore},
		{"user", "add, list, change and remove users (mailboxes)", runAdminUser},
		{"vacation", "set, show and turn off a user's out-of-office response", runAdminVacation},
	}
}

func adminUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: posthouse admin [--config FILE] <command> <verb> [flags] [arguments]\n\nCommands:\n")
	for _, c := range adminCommands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Run 'posthouse admin <command> --help' for its verbs. Admin works on the
same data_dir as a running server. Passwords are read from a terminal prompt
or with --password-stdin, never from the command line.

Exit codes: 0 ok, 1 failure, 2 usage or invalid input, 3 no such domain/user/
alias, 4 already exists, 5 refused (domain not empty: use --force).
`)
}

func runAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	// --config may come anywhere before "--": take it out first.
	var cfgPath string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		switch {
		case a == "--config" || a == "-config":
			if i+1 >= len(args) {
				return usageError("--config needs a file name")
			}
			cfgPath = args[i+1]
			i++
		case strings.HasPrefix(a, "--config="), strings.HasPrefix(a, "-config="):
			cfgPath = a[strings.IndexByte(a, '=')+1:]
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) == 0 {
		adminUsage(stderr)
		return &exitError{code: exitUsage, err: errors.New("admin: missing command")}
	}
	if rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help" || rest[0] == "help" {
		adminUsage(stdout)
		return nil
	}
	cmds := adminCommands()
	i := slices.IndexFunc(cmds, func(c adminCommand) bool { return c.name == rest[0] })
	if i < 0 {
		return usageError("admin: unknown command %q (run 'posthouse admin --help')", rest[0])
	}

	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	env := &adminEnv{
		cfg:    cfg,
		log:    newLogger(config.Log{Level: "warn", Format: cfg.Log.Format}, stderr),
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
	}
	defer env.close()
	if !wantsHelp(rest[1:]) && !opensNoDatabase(cmds[i].name) {
		privateUmask()
		if err := os.MkdirAll(cfg.DataDir, privateDirMode); err != nil {
			return fmt.Errorf("data_dir: %w", err)
		}
		env.auth, env.pool, err = openUserDB(ctx, cfg, auth.Options{Logger: env.log})
		if err != nil {
			return fmt.Errorf("open user database: %w", err)
		}
	}
	return cmds[i].run(ctx, env, rest[1:])
}

// wantsHelp reports whether args ask for help (before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help", "help":
			return true
		}
	}
	return false
}

// adminExitCode maps the sentinels admin commands return to exit codes.
func adminExitCode(err error) int {
	switch {
	case errors.Is(err, auth.ErrInvalidAddress), errors.Is(err, auth.ErrInvalidDomain),
		errors.Is(err, auth.ErrEmptyPassword), errors.Is(err, auth.ErrAliasLoop),
		errors.Is(err, mailstore.ErrBadAccountName), errors.Is(err, auth.ErrInvalidName),
		errors.Is(err, sievestore.ErrBadName), errors.Is(err, sievestore.ErrQuota), errors.As(err, new(*sieve.Error)):
		return exitUsage
	case errors.Is(err, auth.ErrNoSuchDomain), errors.Is(err, auth.ErrNoSuchUser),
		errors.Is(err, auth.ErrNoSuchAlias), errors.Is(err, auth.ErrNoSuchGrant), errors.Is(err, mailstore.ErrNoSuchAccount),
		errors.Is(err, auth.ErrNoSuchAppPassword),
		errors.Is(err, sievestore.ErrNotFound):
		return exitNotFound
	case errors.Is(err, auth.ErrExists), errors.Is(err, sievestore.ErrExists):
		return exitExists
	case errors.Is(err, auth.ErrDomainNotEmpty), errors.Is(err, sievestore.ErrActive), errors.Is(err, auth.ErrTooManyAppPasswords):
		return exitRefused
	}
	return exitFailure
}

// verb is one verb of an admin command.
type verb struct {
	name, args, summary string
	run                 func(ctx context.Context, env *adminEnv, args []string) error
}

// dispatchVerb runs the verb named by args[0].
func dispatchVerb(ctx context.Context, env *adminEnv, noun string, verbs []verb, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: posthouse admin %s <verb> [flags] [arguments]\n\nVerbs:\n", noun)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, v := range verbs {
			fmt.Fprintf(tw, "  %s %s\t%s\n", v.name, v.args, v.summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun 'posthouse admin %s <verb> --help' for a verb's flags.\n", noun)
	}
	if len(args) == 0 {
		usage(env.stderr)
		return usageError("admin %s: missing verb", noun)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(env.stdout)
		return nil
	}
	for _, v := range verbs {
		if v.name == args[0] {
			return v.run(ctx, env, args[1:])
		}
	}
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	return usageError("admin %s: unknown verb %q (one of %s)", noun, args[0], joinWords(names))
}

// verbFlags is the FlagSet of "posthouse admin <noun> <verb>".
func verbFlags(env *adminEnv, noun string, v string, argsUsage string) *flag.FlagSet {
	return newFlagSet("posthouse admin "+noun+" "+v, "posthouse admin "+noun+" "+v+" "+argsUsage, env.stdout)
}

// verbArgs parses a verb's flags and returns its positional arguments,
// checking there are min to max of them (max < 0: no limit); what names the
// missing ones in the usage error.
func verbArgs(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, error) {
	rest, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(rest) < min {
		return nil, usageError("%s: missing %s", fs.Name(), what)
	}
	if max >= 0 && len(rest) > max {
		return nil, usageError("%s: unexpected argument %q", fs.Name(), rest[max])
	}
	return rest, nil
}

// listVerbArgs parses a "list [DOMAIN]" verb's arguments and returns the
// domain, "" for every domain.
func listVerbArgs(env *adminEnv, noun string, args []string) (string, error) {
	rest, err := verbArgs(verbFlags(env, noun, "list", "[DOMAIN]"), args, 0, 1, "")
	if err != nil || len(rest) == 0 {
		return "", err
	}
	return rest[0], nil
}

// maxPasswordLen bounds a password read from stdin.
const maxPasswordLen = 1024

// readPassword gets a new password: one line from stdin with
// --password-stdin, else typed twice at a terminal without echo.
func readPassword(env *adminEnv, fromStdin bool, prompt string) (string, error) {
	if fromStdin {
		r := bufio.NewReaderSize(io.LimitReader(env.stdin, maxPasswordLen+2), maxPasswordLen+2)
		line, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		if len(line) > maxPasswordLen && !strings.HasSuffix(line, "\n") {
			return "", &exitError{code: exitUsage, err: fmt.Errorf("password longer than %d bytes", maxPasswordLen)}
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", fmt.Errorf("%w: nothing on stdin", auth.ErrEmptyPassword)
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
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(first) == 0 {
		return "", auth.ErrEmptyPassword
	}
	fmt.Fprintf(env.stderr, "Again: ")
	second, err := term.ReadPassword(fd)
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(first) != string(second) {
		return "", usageError("the passwords do not match")
	}
	return string(first), nil
}

// writeTable writes aligned columns: the header line, then the cells of
// each item on a line. Columns are separated by at least two spaces and
// cells never contain spaces (an empty cell prints as "-"), so
// `awk '{print $1}'` and `cut` both work.
func writeTable[T any](w io.Writer, items []T, header []string, cells func(T) []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells []string) {
		for i, c := range cells {
			if c == "" {
				cells[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row(header)
	for _, it := range items {
		row(cells(it))
	}
	return tw.Flush()
}
