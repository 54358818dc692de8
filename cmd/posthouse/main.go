package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/posthouse/posthouse/config"
)

// Exit codes (see the package doc).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
	exitExists   = 4
	exitRefused  = 5
)

// exitError carries an exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake in the command line: exit code 2.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// command is a top-level subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the mail server (SMTP, submission, POP3, IMAP)", runServe},
		{"admin", "manage domains, users and aliases (works while serve runs)", runAdmin},
		{"check-config", "validate the configuration and print the effective values", runCheckConfig},
		{"version", "print the version", runVersion},
	}
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		topUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		topUsage(stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(ctx, args[1:], stdin, stdout, stderr)
			return report(stderr, err)
		}
	}
	fmt.Fprintf(stderr, "posthouse: unknown command %q (run 'posthouse --help')\n", name)
	return exitUsage
}

// report prints err as "posthouse: …" and returns its exit code.
func report(stderr io.Writer, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	} else {
		code = adminExitCode(err)
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		// Configuration problems are one per line, each with file:line.
		for _, p := range ce.Problems {
			fmt.Fprintf(stderr, "posthouse: %s\n", p.String())
		}
		return code
	}
	fmt.Fprintf(stderr, "posthouse: %v\n", err)
	return code
}

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: posthouse <command> [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'posthouse <command> --help' for a command's flags.\n")
	fmt.Fprintf(w, "The configuration file is --config FILE, else $%s, else none (built-in defaults);\n", config.EnvConfigFile)
	fmt.Fprintf(w, "POSTHOUSE_<SECTION>_<KEY> variables override it (POSTHOUSE_DATA_DIR, POSTHOUSE_LISTEN_SMTP, ...).\n")
}

// newFlagSet returns a FlagSet that reports errors instead of exiting and
// prints its usage on -h/--help to stdout.
func newFlagSet(name, usage string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error too; parseFlags
	// prints it only for -h/--help.
	fs.Usage = func() {}
	usagePrinters.Store(fs, func() {
		fmt.Fprintf(stdout, "Usage: %s\n", usage)
		var flags []string
		fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f.Name) })
		if len(flags) > 0 {
			sort.Strings(flags)
			fmt.Fprintf(stdout, "\nFlags:\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
		}
	})
	return fs
}

// usagePrinters holds each FlagSet's help printer (*flag.FlagSet → func()).
var usagePrinters sync.Map

// parseFlags parses flags placed anywhere among the arguments (flags after
// positional arguments too, as administrators type them); "--" ends flags.
// It returns the positional arguments. -h/--help prints usage and returns
// flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				if p, ok := usagePrinters.Load(fs); ok {
					p.(func())()
				}
				return nil, flag.ErrHelp
			}
			return nil, usageError("%s: %v (see '%s --help')", fs.Name(), err, fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// fs.Parse stops at the first non-flag or after "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// configFlag adds --config to fs.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "configuration `FILE` (default $"+config.EnvConfigFile+", else built-in defaults)")
}

// loadConfig reads the configuration named by --config or $POSTHOUSE_CONFIG.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		path = os.Getenv(config.EnvConfigFile)
	}
	return config.Load(path)
}

// joinWords is for messages listing choices.
func joinWords(words []string) string {
	return strings.Join(words, ", ")
}
