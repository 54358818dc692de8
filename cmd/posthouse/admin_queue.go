package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/posthouse/posthouse/dkim"
	"github.com/posthouse/posthouse/queue"
)

func runAdminQueue(ctx context.Context, env *adminEnv, args []string) error {
	return dispatchVerb(ctx, env, "queue", []verb{
		{"list", "", "list queued messages", queueList},
		{"show", "ID", "show a message's recipients, attempts and last replies", queueShow},
		{"retry", "ID|all", "try a message (or every message) again now", queueRetry},
		{"remove", "ID", "delete a message without delivering it or sending a DSN", queueRemove},
	}, args)
}

// openAdminQueue opens the queue beside a server that may be running.
func openAdminQueue(ctx context.Context, env *adminEnv) (*queue.Queue, error) {
	opts := queueOptions(env.cfg)
	opts.Logger = env.log
	opts.Shared = true
	if err := queuePostgres(ctx, env.cfg, &opts); err != nil {
		return nil, fmt.Errorf("open queue: %w", err)
	}
	q, err := queue.Open(ctx, opts)
	if err != nil {
		if opts.Postgres != nil {
			opts.Postgres.Close()
		}
		return nil, fmt.Errorf("open queue: %w", err)
	}
	return q, nil
}

// withAdminQueue runs fn with the queue open (openAdminQueue) and closes
// it after.
func withAdminQueue(ctx context.Context, env *adminEnv, fn func(q *queue.Queue) error) error {
	q, err := openAdminQueue(ctx, env)
	if err != nil {
		return err
	}
	defer q.Close()
	return fn(q)
}

// queueExit gives the queue's and the DKIM key store's sentinels the admin
// exit codes.
func queueExit(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, dkim.ErrNoSuchKey):
		return &exitError{code: exitNotFound, err: err}
	case errors.Is(err, queue.ErrBadID):
		return &exitError{code: exitUsage, err: fmt.Errorf("%w (a queue id is 16 hex digits, see 'posthouse admin queue list')", err)}
	case errors.Is(err, dkim.ErrExists):
		return &exitError{code: exitExists, err: err}
	}
	return err
}

func queueID(arg string) (string, error) {
	id, err := queue.ParseID(arg)
	return id, queueExit(err)
}

// queueIDArg parses the arguments of a queue verb that takes one ID.
func queueIDArg(env *adminEnv, verb string, args []string) (string, error) {
	rest, err := verbArgs(verbFlags(env, "queue", verb, "ID"), args, 1, 1, "ID")
	if err != nil {
		return "", err
	}
	return queueID(rest[0])
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}

func fmtSender(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

func queueList(ctx context.Context, env *adminEnv, args []string) error {
	if _, err := verbArgs(verbFlags(env, "queue", "list", ""), args, 0, 0, ""); err != nil {
		return err
	}
	return withAdminQueue(ctx, env, func(q *queue.Queue) error {
		msgs, err := q.List(ctx)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			fmt.Fprintln(env.stdout, "queue is empty")
			return nil
		}
		header := []string{"ID", "QUEUED", "SENDER", "SIZE", "PENDING", "DELIVERED", "FAILED", "NEXT-ATTEMPT"}
		if err := writeTable(env.stdout, msgs, header, func(m queue.Message) []string {
			var pending, delivered, failed int
			var next time.Time
			for _, r := range m.Recipients {
				switch r.State {
				case queue.StatePending:
					pending++
					if next.IsZero() || r.NextAttempt.Before(next) {
						next = r.NextAttempt
					}
				case queue.StateDelivered:
					delivered++
				case queue.StateFailed:
					failed++
				}
			}
			return []string{m.ID, fmtTime(m.Created), fmtSender(m.From), strconv.FormatInt(m.Size, 10),
				strconv.Itoa(pending), strconv.Itoa(delivered), strconv.Itoa(failed), fmtTime(next)}
		}); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "%d message(s)\n", len(msgs))
		return nil
	})
}

func queueShow(ctx context.Context, env *adminEnv, args []string) error {
	id, err := queueIDArg(env, "show", args)
	if err != nil {
		return err
	}
	return withAdminQueue(ctx, env, func(q *queue.Queue) error {
		m, err := q.Get(ctx, id)
		if err != nil {
			return queueExit(err)
		}
		w := env.stdout
		fmt.Fprintf(w, "id:       %s\n", m.ID)
		fmt.Fprintf(w, "sender:   %s\n", fmtSender(m.From))
		fmt.Fprintf(w, "size:     %d\n", m.Size)
		fmt.Fprintf(w, "queued:   %s\n", fmtTime(m.Created))
		var notes []string
		if m.DSN {
			notes = append(notes, "delivery status notification (never bounced)")
		}
		if m.Signed {
			notes = append(notes, "DKIM-signed")
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "notes:    %s\n", strings.Join(notes, ", "))
		}
		for _, r := range m.Recipients {
			fmt.Fprintf(w, "\nrecipient %s\n", r.Addr)
			fmt.Fprintf(w, "  state:        %s\n", r.State)
			fmt.Fprintf(w, "  attempts:     %d\n", r.Attempts)
			fmt.Fprintf(w, "  last attempt: %s\n", fmtTime(r.LastAttempt))
			if r.State == queue.StatePending {
				fmt.Fprintf(w, "  next attempt: %s\n", fmtTime(r.NextAttempt))
			}
			if r.Remote != "" {
				fmt.Fprintf(w, "  remote:       %s\n", r.Remote)
			}
			if r.Reply != "" {
				fmt.Fprintf(w, "  last reply:   %s\n", strings.ReplaceAll(r.Reply, "\n", "\n                "))
			}
		}
		return nil
	})
}

func queueRetry(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "queue", "retry", "ID|all")
	rest, err := verbArgs(fs, args, 1, 1, "ID or all")
	if err != nil {
		return err
	}
	id := ""
	if rest[0] != "all" {
		if id, err = queueID(rest[0]); err != nil {
			return err
		}
	}
	return withAdminQueue(ctx, env, func(q *queue.Queue) error {
		n, err := q.Retry(ctx, id)
		if err != nil {
			return queueExit(err)
		}
		fmt.Fprintf(env.stdout, "%d recipient(s) due now; a running server tries them within %s\n", n, queue.DefaultPollInterval)
		return nil
	})
}

func queueRemove(ctx context.Context, env *adminEnv, args []string) error {
	id, err := queueIDArg(env, "remove", args)
	if err != nil {
		return err
	}
	return withAdminQueue(ctx, env, func(q *queue.Queue) error {
		if err := q.Remove(ctx, id); err != nil {
			return queueExit(err)
		}
		fmt.Fprintf(env.stdout, "removed %s\n", id)
		return nil
	})
}
