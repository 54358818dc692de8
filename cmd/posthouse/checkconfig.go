package main

import (
	"context"
	"fmt"
	"io"

	"github.com/posthouse/posthouse/dnscheck"
)

func runCheckConfig(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("posthouse check-config", "posthouse check-config [--config FILE] [--quiet]", stdout)
	cfgPath := configFlag(fs)
	quiet := fs.Bool("quiet", false, "print nothing when the configuration is valid")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("check-config takes no arguments (did you mean --config %s?)", rest[0])
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *quiet {
		return nil
	}
	out, err := cfg.Marshal()
	if err != nil {
		return err
	}
	source := cfg.Source
	if source == "" {
		source = "no file, built-in defaults"
	}
	for _, w := range dnscheck.ClientSetupWarnings(cfg) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "# Effective configuration (%s, with POSTHOUSE_* overrides). It is valid.\n", source)
	_, err = stdout.Write(out)
	return err
}
