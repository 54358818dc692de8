package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// sizes are the workload sizes; fullSizes are the figures.
type sizes struct {
	SMTPMsgs, SMTPSize     int // per concurrency level and run
	BigMsgs, BigSize       int // the SELECT / UID FETCH FLAGS mailbox
	FetchMsgs, FetchSize   int // FETCH of full bodies
	SearchMsgs, SearchSize int // SEARCH TEXT
	POPMsgs, POPSize       int // RETR+DELE
	IdleConns              int // idle authenticated IMAP connections
	RelayMsgs, RelaySize   int // outbound relay, per destination count and run
	HostileSize            int // bytes of each hostile MIME message
	StressSecs             int // imaptest stress duration, per run and system
	StressClients          int // imaptest stress clients
	WakeConns              int // IMAP connections in IDLE
}

// sizeFields names the fields -set may change.
func sizeFields() []string {
	t := reflect.TypeOf(sizes{})
	out := make([]string, t.NumField())
	for i := range out {
		out[i] = t.Field(i).Name
	}
	return out
}

// applySizes sets fields of sz from "Name=N,Name=N".
func applySizes(sz *sizes, spec string) error {
	v := reflect.ValueOf(sz).Elem()
	for _, kv := range strings.Split(spec, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		f := v.FieldByName(k)
		if !ok || !f.IsValid() {
			return fmt.Errorf("%q: want Name=N with Name one of %s", kv, strings.Join(sizeFields(), ", "))
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return fmt.Errorf("%q: want a positive number", kv)
		}
		f.SetInt(int64(n))
	}
	return nil
}

var fullSizes = sizes{
	SMTPMsgs: 1000, SMTPSize: 10 << 10,
	BigMsgs: 100000, BigSize: 2 << 10,
	FetchMsgs: 1000, FetchSize: 50 << 10,
	SearchMsgs: 10000, SearchSize: 5 << 10,
	POPMsgs: 1000, POPSize: 50 << 10,
	IdleConns: 1000,
	RelayMsgs: 2000, RelaySize: 10 << 10,
	// Under the 50 MiB default message size limit with our trace headers.
	HostileSize: 50<<20 - 64<<10,
	StressSecs:  30, StressClients: 10,
	WakeConns: 10000,
}

var quickSizes = sizes{
	SMTPMsgs: 40, SMTPSize: 10 << 10,
	BigMsgs: 500, BigSize: 2 << 10,
	FetchMsgs: 50, FetchSize: 50 << 10,
	SearchMsgs: 200, SearchSize: 5 << 10,
	POPMsgs: 50, POPSize: 50 << 10,
	IdleConns: 50,
	RelayMsgs: 40, RelaySize: 10 << 10,
	HostileSize: 4 << 20,
	StressSecs:  5, StressClients: 4,
	WakeConns: 200,
}

// Benchmark users, all in the one local domain.
const (
	domain    = "bench.test"
	userSMTP1 = "smtp1@" + domain
	userSMTPN = "smtp20@" + domain
	userIMAP  = "imap@" + domain
	userPOP   = "pop@" + domain
	userIdle  = "idle@" + domain
	userSend  = "sender@" + domain
	// userHostile receives the hostile MIME messages.
	userHostile = "hostile@" + domain
)

var allUsers = append([]string{userSMTP1, userSMTPN, userIMAP, userPOP, userIdle, userSend, userHostile, userWake}, stressUserList()...)

func stressUserList() []string {
	var out []string
	for i := 1; i <= stressUsers; i++ {
		out = append(out, stressUser(i))
	}
	return out
}

// loader is a system that fills an account's mailboxes itself, faster
// than any protocol would (the postgres backend: its import path). Load
// replaces the account with INBOX and the fills' mailboxes.
type loader interface {
	Load(ctx context.Context, user string, fills []fill) error
}

// smtpResult is one inbound SMTP run.
type smtpResult struct {
	accepted, visible float64 // messages/s: all 250s received; all visible by IMAP
	diskPerMsg        float64 // bytes on disk per message stored by the run
	cpuPerMsg         float64 // ms of CPU used by the system's processes per message
}

// runSMTP sends n messages of size bytes over conns concurrent SMTP
// sessions to user, then polls IMAP STATUS until all of them are in INBOX.
func runSMTP(ctx context.Context, s server, tag, user string, n, size, conns int) (smtpResult, error) {
	var res smtpResult
	mon, err := imapLogin(s.Addr("imap"), user)
	if err != nil {
		return res, err
	}
	defer mon.Close()
	base, err := imapCount(mon, "INBOX")
	if err != nil {
		return res, err
	}
	du0 := diskUsage(s.MailRoot())
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = makeMessage(tag, i, size, user)
	}
	cpu0 := systemCPU(s)
	start := time.Now()
	err = parallel(ctx, conns, conns, func(gctx context.Context, w int) error {
		{
			c, err := smtp.Dial(s.Addr("smtp"))
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Hello("client.bench.test"); err != nil {
				return err
			}
			for i := w; i < n; i += conns {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				if err := c.SendMail("sender@bench.example", []string{user}, bytes.NewReader(msgs[i])); err != nil {
					return fmt.Errorf("smtp message %d: %w", i, err)
				}
			}
			return c.Quit()
		}
	})
	if err != nil {
		return res, err
	}
	accepted := time.Since(start)
	want := base + uint32(n)
	for {
		got, err := imapCount(mon, "INBOX")
		if err != nil {
			return res, err
		}
		if got >= want {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return res, fmt.Errorf("only %d of %d messages visible after 10 minutes", got-base, n)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	visible := time.Since(start)
	time.Sleep(cpuSettle)
	res.cpuPerMsg = ms(systemCPU(s)-cpu0) / float64(n)
	res.accepted = float64(n) / accepted.Seconds()
	res.visible = float64(n) / visible.Seconds()
	res.diskPerMsg = float64(diskUsage(s.MailRoot())-du0) / float64(n)
	return res, nil
}

// populate fills mailbox with n messages from gen. Mode "append" uses IMAP
// APPEND over 4 pipelined connections; "maildir" writes the files straight
// into the server's maildir folder for that mailbox (found by appending one
// marker message and looking for its file), then lets the server index them
// (Posthouse at start-up reconciliation, Dovecot at the next SELECT).
// "import" hands the messages to the system's loader (the postgres
// backend's import path).
func populate(ctx context.Context, s server, user, mailbox string, n int, gen func(i int) []byte, mode string) error {
	c, err := imapLogin(s.Addr("imap"), user)
	if err != nil {
		return err
	}
	defer c.Close()
	if mailbox != "INBOX" {
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAlreadyExists {
				return fmt.Errorf("create %s: %w", mailbox, err)
			}
		}
	}
	have, err := imapCount(c, mailbox)
	if err != nil {
		return err
	}
	if int(have) >= n {
		return nil
	}
	if mode == "import" {
		l, ok := s.(loader)
		if !ok {
			return fmt.Errorf("%s cannot import", s.Name())
		}
		c.Close()
		return l.Load(ctx, user, []fill{{mailbox, n, gen}})
	}
	if mode == "maildir" {
		return populateMaildir(ctx, s, c, user, mailbox, int(have), n, gen)
	}
	const conns, window = 4, 32
	per := (n - int(have) + conns - 1) / conns
	return parallel(ctx, conns, conns, func(ctx context.Context, w int) error {
		from := int(have) + w*per
		to := min(from+per, n)
		if from >= to {
			return nil
		}
		c, err := imapLogin(s.Addr("imap"), user)
		if err != nil {
			return err
		}
		defer c.Close()
		return imapAppend(c, mailbox, gen, from, to, window)
	})
}

// populateMaildir is populate's direct-write path; see populate.
func populateMaildir(ctx context.Context, s server, c *imapclient.Client, user, mailbox string, have, n int, gen func(i int) []byte) error {
	marker := fmt.Sprintf("posthouse-bench-marker-%d", time.Now().UnixNano())
	m := []byte("Subject: marker\r\nMessage-ID: <" + marker + "@bench.example>\r\n\r\nmarker\r\n")
	if err := imapAppend(c, mailbox, func(int) []byte { return m }, 0, 1, 1); err != nil {
		return err
	}
	file, err := findFileContaining(s.MailRoot(), []byte(marker))
	if err != nil {
		return fmt.Errorf("locating %s's maildir for %s: %w", s.Name(), mailbox, err)
	}
	// The marker has done its job: expunge it (it is the last message).
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		return err
	}
	seq := imap.SeqSetNum(uint32(have + 1))
	if err := c.Store(seq, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("flag the marker deleted: %w", err)
	}
	if err := c.Expunge().Close(); err != nil {
		return fmt.Errorf("expunge the marker: %w", err)
	}
	md := filepath.Dir(filepath.Dir(file)) // …/cur/name → maildir
	uid, gid := s.FileOwner()
	now := time.Now().Unix()
	pid := os.Getpid()
	for i := have; i < n; i++ {
		if i%1000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		b := gen(i)
		// S= is the file size and W= the size with CRLF line ends (the
		// same here): Dovecot's own deliveries name both, and without W=
		// it must read every file to answer POP3 STAT.
		name := fmt.Sprintf("%d.M%dP%d.benchgen,S=%d,W=%d:2,", now, i, pid, len(b), len(b))
		tmp := filepath.Join(md, "tmp", name)
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		if err := os.Chown(tmp, uid, gid); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(md, "cur", name)); err != nil {
			return err
		}
	}
	syncFS()
	c.Close()
	if err := s.Reindex(ctx); err != nil {
		return err
	}
	// Warm-up: let the server index the new files before anything is timed.
	c2, err := imapLogin(s.Addr("imap"), user)
	if err != nil {
		return err
	}
	defer c2.Close()
	d, err := c2.Select(mailbox, nil).Wait()
	if err != nil {
		return err
	}
	if int(d.NumMessages) != n {
		return fmt.Errorf("%s: %s has %d messages after direct maildir population, want %d", s.Name(), mailbox, d.NumMessages, n)
	}
	return nil
}

// findFileContaining walks root for a recently written small file
// containing needle.
func findFileContaining(root string, needle []byte) (string, error) {
	var found string
	cutoff := time.Now().Add(-2 * time.Minute)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return nil
		}
		// Only message files: an index may hold the marker's Message-ID.
		if dir := filepath.Base(filepath.Dir(path)); dir != "cur" && dir != "new" {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Size() > 64<<10 || info.ModTime().Before(cutoff) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, needle) {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", errors.New("no file holds the marker message")
	}
	return found, nil
}

// imapSelectFetchFlags times SELECT and UID FETCH 1:* (FLAGS) on mailbox,
// through rawIMAP: each reply is read to its tagged OK, the EXISTS and the
// FETCH responses counted, nothing else parsed.
func imapSelectFetchFlags(s server, mailbox string, want int) (sel, fetch time.Duration, err error) {
	c, err := dialRawIMAP(s.Addr("imap"))
	if err != nil {
		return 0, 0, err
	}
	defer c.close()
	if sel, err = timeSelect(c, mailbox, want); err != nil {
		return 0, 0, err
	}
	got := 0
	t1 := time.Now()
	err = c.each("UID FETCH 1:* (FLAGS)", func(l []byte) {
		if bytes.HasPrefix(l, []byte("* ")) && bytes.Contains(l, []byte(" FETCH (")) {
			got++
		}
	})
	if err != nil {
		return 0, 0, err
	}
	fetch = time.Since(t1)
	if got != want {
		return 0, 0, fmt.Errorf("UID FETCH FLAGS: %d messages, want %d", got, want)
	}
	return sel, fetch, nil
}

// imapSelect times SELECT of mailbox on a fresh connection (logged in
// before the clock starts).
func imapSelect(s server, mailbox string, want int) (time.Duration, error) {
	c, err := dialRawIMAP(s.Addr("imap"))
	if err != nil {
		return 0, err
	}
	defer c.close()
	return timeSelect(c, mailbox, want)
}

// timeSelect times SELECT of mailbox and checks its EXISTS.
func timeSelect(c *rawIMAP, mailbox string, want int) (time.Duration, error) {
	exists := -1
	t0 := time.Now()
	err := c.each("SELECT "+mailbox, func(l []byte) {
		if n, ok := bytes.CutSuffix(bytes.TrimRight(l, "\r\n"), []byte(" EXISTS")); ok && bytes.HasPrefix(n, []byte("* ")) {
			exists, _ = strconv.Atoi(string(n[2:]))
		}
	})
	if err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if exists != want {
		return 0, fmt.Errorf("SELECT %s: %d messages, want %d", mailbox, exists, want)
	}
	return d, nil
}

// fetchAllFlags runs UID FETCH 1:* (FLAGS) on the selected mailbox, reads
// every response, and checks that want messages came back.
func fetchAllFlags(c *imapclient.Client, want int) error {
	cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true})
	got := 0
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for it := m.Next(); it != nil; it = m.Next() {
		}
		got++
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("UID FETCH FLAGS: %d messages, want %d", got, want)
	}
	return nil
}

// imapFetchBodies times FETCH 1:* (BODY.PEEK[]) on mailbox and checks the
// byte count.
func imapFetchBodies(s server, mailbox string, want int, wantBytes int64) (time.Duration, error) {
	c, err := imapExamine(s, mailbox)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	t0 := time.Now()
	var seq imap.SeqSet
	seq.AddRange(1, 0)
	cmd := c.Fetch(seq, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	got, bytes := 0, int64(0)
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for it := m.Next(); it != nil; it = m.Next() {
			if b, ok := it.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
				n, err := drain(b.Literal)
				if err != nil {
					return 0, err
				}
				bytes += n
			}
		}
		got++
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if got != want || bytes != wantBytes {
		return 0, fmt.Errorf("FETCH bodies: %d messages / %d bytes, want %d / %d", got, bytes, want, wantBytes)
	}
	return d, nil
}

// imapSearchText times SEARCH TEXT needle on mailbox and checks the hits.
func imapSearchText(s server, mailbox string, wantHits int) (time.Duration, error) {
	c, err := imapExamine(s, mailbox)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	t0 := time.Now()
	d, err := c.Search(&imap.SearchCriteria{Text: []string{needle}}, nil).Wait()
	if err != nil {
		return 0, err
	}
	dur := time.Since(t0)
	if got := len(d.AllSeqNums()); got != wantHits {
		return 0, fmt.Errorf("SEARCH TEXT: %d hits, want %d", got, wantHits)
	}
	return dur, nil
}

// cpuSettle lets a system finish what a measurement set off (a worker's
// exit, a reply's last writes) before its CPU is read; without control
// groups it also lets masters reap workers, whose CPU is then in their
// cutime.
const cpuSettle = 200 * time.Millisecond

// pop3RetrDele times one POP3 session that RETRs and DELEs every message
// and QUITs (the deletions are applied before QUIT's +OK). It also returns
// the CPU time the system used for it.
func pop3RetrDele(s server, want int, wantBytes int64) (_, cpu time.Duration, _ error) {
	cpu0 := systemCPU(s)
	t0 := time.Now()
	c, err := pop3Dial(s.Addr("pop3"))
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	if err := c.Login(userPOP, password); err != nil {
		return 0, 0, err
	}
	n, _, err := c.Stat()
	if err != nil {
		return 0, 0, err
	}
	if n != want {
		return 0, 0, fmt.Errorf("POP3 STAT: %d messages, want %d", n, want)
	}
	var total int64
	for i := 1; i <= n; i++ {
		b, err := c.Retr(i)
		if err != nil {
			return 0, 0, fmt.Errorf("RETR %d: %w", i, err)
		}
		total += b
		if err := c.Dele(i); err != nil {
			return 0, 0, fmt.Errorf("DELE %d: %w", i, err)
		}
	}
	if err := c.Quit(); err != nil {
		return 0, 0, err
	}
	d := time.Since(t0)
	if total != wantBytes {
		return 0, 0, fmt.Errorf("POP3 RETR: %d bytes, want %d", total, wantBytes)
	}
	time.Sleep(cpuSettle)
	return d, systemCPU(s) - cpu0, nil
}

// memResult is the memory of one system with idle IMAP connections.
type memResult struct {
	rss, pss     float64 // bytes, all processes, with the connections open
	perConnRSS   float64 // bytes per connection, RSS growth over the idle baseline
	perConnPSS   float64 // the same for PSS
	baseRSS      float64 // before the connections were opened
	basePSS      float64
	processCount int
}

// idleIMAP opens n authenticated IMAP connections (INBOX selected), waits
// for the servers to settle and sums the memory of every process.
//
// The per-connection figures are growth over base, the system's memory
// before the first run: a Go process keeps the heap it grew in an earlier
// run, so its own idle baseline in later runs would hide that growth.
func idleIMAP(ctx context.Context, s server, n int, settle time.Duration, base *memResult) (memResult, error) {
	var res memResult
	rss0, pss0 := memUsage(s.PIDs())
	res.baseRSS, res.basePSS = float64(rss0), float64(pss0)
	if base != nil {
		rss0, pss0 = int64(base.baseRSS), int64(base.basePSS)
	}
	clients := make([]*imapclient.Client, n)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				wg.Go(func() { c.Logout().Wait(); c.Close() })
			}
		}
		wg.Wait()
	}()
	err := parallel(ctx, n, 10, func(ctx context.Context, i int) error {
		c, err := imapLogin(s.Addr("imap"), userIdle)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		clients[i] = c
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	time.Sleep(settle)
	pids := s.PIDs()
	rss, pss := memUsage(pids)
	res.rss, res.pss = float64(rss), float64(pss)
	res.perConnRSS = float64(rss-rss0) / float64(n)
	res.perConnPSS = float64(pss-pss0) / float64(n)
	res.processCount = len(pids)
	return res, nil
}
