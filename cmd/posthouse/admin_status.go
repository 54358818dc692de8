package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/posthouse/posthouse/certs"
	"github.com/posthouse/posthouse/diskspace"
	"github.com/posthouse/posthouse/queue"
)

// runAdminStatus prints a one-screen summary: listeners, queue, disk
// space against the reserve, certificate expiry, and how many domains,
// users and aliases there are. It only reads, and works beside a running
// server.
func runAdminStatus(ctx context.Context, env *adminEnv, args []string) error {
	flags := newFlagSet("posthouse admin status", "posthouse admin status", env.stdout)
	if _, err := verbArgs(flags, args, 0, 0, ""); err != nil {
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "hostname\t%s\n", env.cfg.Hostname)
	fmt.Fprintf(tw, "data_dir\t%s\n", env.cfg.DataDir)
	statusDisk(tw, env)
	if err := statusQueue(ctx, tw, env, now); err != nil {
		fmt.Fprintf(tw, "queue\tunreadable: %v\n", err)
	}
	statusCerts(tw, env, now)
	statusDirectory(ctx, tw, env)
	fmt.Fprintf(tw, "listeners\t\n")
	for _, l := range env.cfg.Listeners() {
		if l.Addr == "" {
			continue
		}
		state := probeListener(l.Addr)
		if env.cfg.Listen.Proxied(l.Name) {
			state += " (PROXY protocol)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", l.Name, l.Addr, state)
	}
	return tw.Flush()
}

func statusDisk(w io.Writer, env *adminEnv) {
	u, err := diskspace.Stat(env.cfg.DataDir)
	if err != nil {
		fmt.Fprintf(w, "disk\tunreadable: %v\n", err)
		return
	}
	reserve := spaceReserve(env.cfg).Of(u.Total)
	state := "ok"
	if u.Free < reserve {
		state = "LOW: below min_free_space, new mail is refused (452 4.3.1, APPEND NO); free space to resume"
	}
	fmt.Fprintf(w, "disk\t%s free of %s, reserve %s (min_free_space %q): %s\n",
		humanBytes(u.Free), humanBytes(u.Total), humanBytes(reserve), env.cfg.Limits.MinFreeSpace, state)
}

func statusQueue(ctx context.Context, w io.Writer, env *adminEnv, now time.Time) error {
	q, err := openAdminQueue(ctx, env)
	if err != nil {
		return err
	}
	defer q.Close()
	msgs, err := q.List(ctx)
	if err != nil {
		return err
	}
	n, rcpts := 0, 0
	var oldest time.Time
	for _, m := range msgs {
		pending := 0
		for _, r := range m.Recipients {
			if r.State == queue.StatePending {
				pending++
			}
		}
		if pending == 0 {
			continue
		}
		n++
		rcpts += pending
		if oldest.IsZero() || m.Created.Before(oldest) {
			oldest = m.Created
		}
	}
	if n == 0 {
		fmt.Fprintf(w, "queue\tempty\n")
		return nil
	}
	fmt.Fprintf(w, "queue\t%d message(s), %d recipient(s) pending, oldest %s ago\n", n, rcpts, now.Sub(oldest).Round(time.Second))
	return nil
}

// statusCerts reports the certificate in use: the configured files, the
// ACME cache's, or the self-signed one.
func statusCerts(w io.Writer, env *adminEnv, now time.Time) {
	var files []string
	switch {
	case env.cfg.TLS.ACME:
		dir := filepath.Join(env.cfg.DataDir, acmeCacheDir)
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	case env.cfg.TLS.CertFile != "":
		files = []string{env.cfg.TLS.CertFile}
	default:
		files = []string{filepath.Join(env.cfg.DataDir, selfSignedDir, certs.SelfSignedCertFile)}
	}
	shown := 0
	for _, f := range files {
		info, err := certs.Describe(f)
		if errors.Is(err, certs.ErrNoCertificate) || errors.Is(err, fs.ErrNotExist) {
			continue
		}
		shown++
		if err != nil {
			fmt.Fprintf(w, "certificate\t%s: %v\n", f, err)
			continue
		}
		left := info.NotAfter.Sub(now)
		note := fmt.Sprintf("expires %s (in %d days)", info.NotAfter.UTC().Format("2006-01-02"), int(left.Hours()/24))
		switch {
		case left <= 0:
			note = "EXPIRED " + info.NotAfter.UTC().Format("2006-01-02")
		case left < 14*24*time.Hour:
			note += ": SOON"
		}
		kind := ""
		if info.SelfSign {
			kind = "self-signed, "
		}
		fmt.Fprintf(w, "certificate\t%s%s: %s\n", kind, strings.Join(info.Names, " "), note)
	}
	if shown == 0 {
		fmt.Fprintf(w, "certificate\tnone yet (made or fetched at the first start)\n")
	}
}

func statusDirectory(ctx context.Context, w io.Writer, env *adminEnv) {
	domains, err := env.auth.Domains(ctx)
	if err != nil {
		fmt.Fprintf(w, "accounts\tunreadable: %v\n", err)
		return
	}
	users, err := env.auth.Users(ctx, "")
	if err != nil {
		fmt.Fprintf(w, "accounts\tunreadable: %v\n", err)
		return
	}
	aliases, err := env.auth.Aliases(ctx, "")
	if err != nil {
		fmt.Fprintf(w, "accounts\tunreadable: %v\n", err)
		return
	}
	fmt.Fprintf(w, "accounts\t%d domain(s), %d user(s), %d alias(es)\n", len(domains), len(users), len(aliases))
}

// probeListener says whether something accepts TCP connections on a
// listener's address (a wildcard address is tried on loopback).
func probeListener(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "bad address"
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 500*time.Millisecond)
	if err != nil {
		return "not accepting"
	}
	c.Close()
	return "accepting"
}

// humanBytes writes n in binary units with one decimal.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
