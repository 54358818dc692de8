package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"

	"github.com/posthouse/posthouse/internal/pgtest"
)

// Two nodes: two posthouse serve processes, each with its own data_dir and
// loopback ports, sharing one private PostgreSQL ([store] backend =
// "postgres", the same DSN). Everything a client or an administrator does
// through one node must be what a client of the other node sees.

// pgNodes is a pair of nodes on one database.
type pgNodes struct {
	A, B *Server
	DSN  string
}

// startPGNodes starts a private PostgreSQL, a database on it, and two
// nodes using it, each with the config sections in extra too; imapUser
// exists (added through node A).
func startPGNodes(t *testing.T, extra string) *pgNodes {
	t.Helper()
	pg, err := pgtest.Start()
	if errors.Is(err, pgtest.ErrNotInstalled) {
		if os.Getenv("PGTEST_REQUIRE") != "" {
			t.Fatalf("%v, and PGTEST_REQUIRE is set", err)
		}
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	db, err := pg.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := &pgNodes{DSN: pg.DSN(db)}
	extra += fmt.Sprintf("\n[store]\nbackend = \"postgres\"\ndsn = %q\n", n.DSN)
	// The tests deliver over one SMTP connection per message, hundreds
	// within a minute from 127.0.0.1: past the default rate per address.
	extra += "\n[limits]\nmax_connection_rate = 0\n"
	// Started one after the other: the first creates the schema.
	n.A = startServer(t, extra)
	n.B = startServer(t, extra)
	n.A.AddUser(t, imapUser, imapPass)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PostgreSQL log:\n%s", tail(pg.Log(), 4000))
		}
	})
	return n
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// nodeIMAP logs in to s over implicit TLS as user, with h receiving the
// unilateral responses.
func nodeIMAP(t *testing.T, s *Server, user, pass string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS(), UnilateralDataHandler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s on %s: %v", user, s.Addr("imaps"), err)
	}
	return c
}

// nodeMessage is a small message to imapUser with Message-ID <id@nodes.test>.
func nodeMessage(to, id string) string {
	return fmt.Sprintf("From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@nodes.test>\r\n\r\nbody of %s\r\n", to, id, id, id)
}

// nodeDeliver sends one message through s's MTA listener.
func nodeDeliver(s *Server, rcpt, body string) error {
	c, err := smtp.Dial(s.Addr("smtp"))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		return err
	}
	if err := goSend(c, "sender@remote.test", []string{rcpt}, body); err != nil {
		return err
	}
	return c.Quit()
}

// messageIDs returns the Message-ID of every message in mailbox, as seen
// through c.
func messageIDs(t *testing.T, c *imapclient.Client, mailbox string) []string {
	t.Helper()
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH %s: %v", mailbox, err)
	}
	var ids []string
	for _, m := range msgs {
		if m.Envelope != nil {
			ids = append(ids, m.Envelope.MessageID)
		}
	}
	return ids
}

// TestPGNodes: deliver through A, read and IDLE through B; MOVE on B seen
// by A's session (and opposite MOVEs on both nodes at once); the POP3 lock
// held on A refused on B; admin on A effective on B.
func TestPGNodes(t *testing.T) {
	n := startPGNodes(t, "")
	a, b := n.A, n.B

	t.Run("deliver on A, read and IDLE on B", func(t *testing.T) {
		// swaks, a client we did not write, hands the first message to A.
		swaks := needTool(t, "swaks")
		first := nodeMessage(imapUser, "swaks-first")
		res := runCommand(t, swaks, "--server", a.Addr("smtp"), "--helo", "client.example",
			"--from", "sender@remote.test", "--to", imapUser, "--data", first, "--hide-all")
		if res.Code != 0 {
			t.Fatalf("swaks: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
		}
		type seen struct {
			n  uint32
			at time.Time
		}
		exists := make(chan seen, 64)
		c := nodeIMAP(t, b, imapUser, imapPass, &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- seen{*d.NumMessages, time.Now()}
				}
			},
		})
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages != 1 {
			t.Fatalf("B's INBOX holds %d messages, want 1", sel.NumMessages)
		}
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{
			BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierText, Peek: true}},
		}).Collect()
		if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
			t.Fatalf("FETCH on B: %v %v", msgs, err)
		}
		if got := string(msgs[0].BodySection[0].Bytes); !strings.Contains(got, "body of swaks-first") {
			t.Fatalf("B reads body %q", got)
		}

		idle, err := c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		// Two figures per delivery: from the start of the SMTP session
		// on A to the EXISTS on B (an upper bound on the wake-up), and
		// from A's 250 to the EXISTS (negative when B's EXISTS arrived
		// before the client read the 250: A commits, notifies, then
		// replies).
		var fromStart, fromAck []time.Duration
		for i := 2; i <= 21; i++ {
			start := time.Now()
			if err := nodeDeliver(a, imapUser, nodeMessage(imapUser, fmt.Sprintf("idle-%d", i))); err != nil {
				t.Fatal(err)
			}
			acked := time.Now()
			select {
			case got := <-exists:
				fromStart = append(fromStart, got.at.Sub(start))
				fromAck = append(fromAck, got.at.Sub(acked))
				if got.n != uint32(i) {
					t.Errorf("EXISTS %d on B, want %d", got.n, i)
				}
			case <-time.After(time.Second):
				t.Fatalf("delivery %d on A: B's IDLE saw no EXISTS within a second of the 250", i)
			}
		}
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(fromStart)
		slices.Sort(fromAck)
		t.Logf("IDLE on B, 20 deliveries on A: EXISTS after the SMTP session began: min %v, median %v, max %v; "+
			"after the 250: min %v, median %v, max %v",
			fromStart[0], fromStart[len(fromStart)/2], fromStart[len(fromStart)-1],
			fromAck[0], fromAck[len(fromAck)/2], fromAck[len(fromAck)-1])
	})

	t.Run("IDLE on B catches up after its LISTEN connection is cut", func(t *testing.T) {
		var last atomic.Uint32
		c := nodeIMAP(t, b, imapUser, imapPass, &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					last.Store(*d.NumMessages)
				}
			},
		})
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		idle, err := c.Idle()
		if err != nil {
			t.Fatal(err)
		}
		// The LISTEN backends of both nodes are terminated again and
		// again while A delivers: notifications are lost.
		conn, err := pgx.Connect(t.Context(), n.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			killed := 0
			for {
				var k int
				conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
					WHERE datname = current_database() AND query LIKE 'LISTEN %'`).Scan(&k)
				killed += k
				select {
				case <-stop:
					done <- killed
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		// Deliveries go on until B reports it caught up with a change
		// whose notification was lost, at most 1,000 (a loss needs a
		// delivery to land while B reconnects; on a loaded machine the
		// cuts come further apart: 19 in 200 deliveries once).
		const caughtUp = "mailstore listen: caught up"
		k := 0
		for k < 1000 && !strings.Contains(b.Log(), caughtUp) {
			if err := nodeDeliver(a, imapUser, nodeMessage(imapUser, fmt.Sprintf("cut-%d", k))); err != nil {
				t.Fatal(err)
			}
			k++
		}
		close(stop)
		killed := <-done
		cut := time.Now()
		// B may still be waiting to reconnect (its back-off doubles with
		// each failed attempt, up to 10 s, when its new connections are
		// cut too): the catch-up comes once it is back.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(b.Log(), caughtUp) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(b.Log(), caughtUp) {
			t.Fatalf("%d deliveries, %d LISTEN connections terminated, and no notification was lost", k, killed)
		}
		want := sel.NumMessages + uint32(k)
		waitFor(t, 15*time.Second, fmt.Sprintf("EXISTS %d on B's IDLE", want), func() bool { return last.Load() == want })
		t.Logf("LISTEN connections terminated: %d during %d deliveries; B's IDLE showed them all %v after the cuts stopped",
			killed, k, time.Since(cut).Round(time.Millisecond))
		if err := idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("MOVE on B seen by A", func(t *testing.T) {
		var expunged, archiveExists atomic.Int32
		ca := nodeIMAP(t, a, imapUser, imapPass, &imapclient.UnilateralDataHandler{
			Expunge: func(uint32) { expunged.Add(1) },
		})
		sel, err := ca.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		before := sel.NumMessages
		arch := nodeIMAP(t, a, imapUser, imapPass, &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					archiveExists.Store(int32(*d.NumMessages))
				}
			},
		})
		asel, err := arch.Select("Archive", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		cb := nodeIMAP(t, b, imapUser, imapPass, nil)
		if _, err := cb.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := cb.Move(imap.SeqSetNum(1, 2), "Archive").Wait(); err != nil {
			t.Fatalf("MOVE on B: %v", err)
		}
		waitFor(t, 5*time.Second, "A's sessions see B's MOVE", func() bool {
			ca.Noop().Wait()
			arch.Noop().Wait()
			return expunged.Load() == 2 && archiveExists.Load() == int32(asel.NumMessages)+2
		})
		ids := messageIDs(t, ca, "INBOX")
		if uint32(len(ids)) != before-2 {
			t.Errorf("A's INBOX after B's MOVE: %d messages, want %d", len(ids), before-2)
		}
	})

	t.Run("opposite MOVEs on both nodes at once", func(t *testing.T) {
		for i := range 6 {
			if err := nodeDeliver(a, imapUser, nodeMessage(imapUser, fmt.Sprintf("opposite-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		ca := nodeIMAP(t, a, imapUser, imapPass, nil)
		cb := nodeIMAP(t, b, imapUser, imapPass, nil)
		if _, err := ca.Select("Archive", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := cb.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		total := len(messageIDs(t, nodeIMAP(t, a, imapUser, imapPass, nil), "INBOX")) +
			len(messageIDs(t, nodeIMAP(t, a, imapUser, imapPass, nil), "Archive"))
		// Each round moves everything one way on A and the other way on
		// B, at the same moment.
		for round := range 50 {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, m := range []struct {
				c  *imapclient.Client
				to string
			}{{ca, "INBOX"}, {cb, "Archive"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// By UID: the other node may have taken them all.
					_, err := m.c.Move(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, m.to).Wait()
					errs[i] = err
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d: MOVE on %s: %v", round, []string{"A", "B"}[i], err)
				}
			}
		}
		check := nodeIMAP(t, b, imapUser, imapPass, nil)
		got := messageIDs(t, check, "INBOX")
		got = append(got, messageIDs(t, check, "Archive")...)
		if len(got) != total {
			t.Errorf("after the opposite MOVEs: %d messages, want %d", len(got), total)
		}
		slices.Sort(got)
		if d := slices.Compact(slices.Clone(got)); len(d) != len(got) {
			t.Errorf("a message is in both mailboxes: %v", got)
		}
	})

	t.Run("POP3 lock held on A refused on B", func(t *testing.T) {
		python := needTool(t, "python3")
		script := filepath.Join(t.TempDir(), "pop.py")
		if err := os.WriteFile(script, []byte(nodesPoplibScript), 0o644); err != nil {
			t.Fatal(err)
		}
		pop := func(s *Server, mode string) *exec.Cmd {
			host, port, _ := net.SplitHostPort(s.Addr("pop3s"))
			return exec.Command(python, script, host, port, filepath.Join(s.DataDir, "tls", "cert.pem"), imapUser, imapPass, mode)
		}
		// The holder logs in on A, says "locked", and quits when its
		// stdin closes.
		hold := pop(a, "hold")
		stdin, err := hold.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := hold.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		hold.Stderr = os.Stderr
		if err := hold.Start(); err != nil {
			t.Fatal(err)
		}
		defer hold.Process.Kill()
		lines := bufio.NewScanner(stdout)
		if !lines.Scan() || !strings.HasPrefix(lines.Text(), "locked") {
			t.Fatalf("poplib on A: %q", lines.Text())
		}
		out, err := pop(b, "try").CombinedOutput()
		if err != nil {
			t.Fatalf("poplib on B: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "refused") || !strings.Contains(string(out), "[IN-USE]") {
			t.Fatalf("a POP3 login on B while A holds the maildrop: %s", out)
		}
		t.Logf("B while A holds the lock: %s", strings.TrimSpace(string(out)))
		stdin.Close()
		rest, _ := io.ReadAll(stdout)
		if err := hold.Wait(); err != nil {
			t.Fatalf("poplib on A: %v\n%s", err, rest)
		}
		out, err = pop(b, "try").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ok") {
			t.Fatalf("poplib on B after A quit: %v\n%s", err, out)
		}
	})

	t.Run("admin on A effective on B", func(t *testing.T) {
		const carol, carolPass = "carol@example.org", "carol-first-secret"
		a.AddUser(t, carol, carolPass)
		nodeIMAP(t, b, carol, carolPass, nil).Logout().Wait()
		a.Admin(t, "", "alias", "add", "team@example.org", carol)
		if err := nodeDeliver(b, "team@example.org", nodeMessage("team@example.org", "to-alias")); err != nil {
			t.Fatalf("delivery on B to an alias added on A: %v", err)
		}
		c := nodeIMAP(t, b, carol, carolPass, nil)
		if ids := messageIDs(t, c, "INBOX"); !slices.Contains(ids, "to-alias@nodes.test") {
			t.Fatalf("carol's INBOX on B: %v", ids)
		}
		c.Logout().Wait()

		const newPass = "carol-second-secret"
		a.Admin(t, newPass+"\n", "user", "passwd", "--password-stdin", carol)
		if err := imapLoginErr(b, carol, carolPass); err == nil {
			t.Error("B accepts carol's old password after passwd on A")
		}
		nodeIMAP(t, b, carol, newPass, nil).Logout().Wait()

		a.Admin(t, "", "user", "disable", carol)
		if err := imapLoginErr(b, carol, newPass); err == nil {
			t.Error("B accepts a login of a user disabled on A")
		}
		if err := nodeDeliver(b, carol, nodeMessage(carol, "while-disabled")); err != nil {
			t.Errorf("delivery on B to a disabled user (mail is still accepted): %v", err)
		}
	})
}

// imapLoginErr tries a login on s and returns its error.
func imapLoginErr(s *Server, user, pass string) error {
	c, err := imapclient.DialTLS(s.Addr("imaps"), &imapclient.Options{TLSConfig: s.imapTLS()})
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Login(user, pass).Wait()
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodesPoplibScript: "hold" logs in, prints "locked" and quits when stdin
// closes; "try" logs in and prints "ok", or "refused" and the server's
// reply.
const nodesPoplibScript = `
import poplib, ssl, sys
host, port, cafile, user, pw, mode = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
p = poplib.POP3_SSL(host, int(port), context=ctx, timeout=60)
p.user(user)
try:
    p.pass_(pw)
except poplib.error_proto as e:
    print("refused", e.args[0].decode())
    sys.exit(0)
count, size = p.stat()
if mode == "hold":
    print("locked", count, flush=True)
    sys.stdin.read()
else:
    print("ok", count)
p.quit()
`

// TestPGNodeKillDuringDeliveries: kill -9 of either node while clients
// stream messages into it loses no message it acknowledged: after a
// restart, every Message-ID that got a 250 is in the INBOX exactly once,
// read over IMAP through the other node.
func TestPGNodeKillDuringDeliveries(t *testing.T) {
	n := startPGNodes(t, "")
	for _, victim := range []string{"A", "B"} {
		t.Run("kill "+victim, func(t *testing.T) {
			s, other := n.A, n.B
			if victim == "B" {
				s, other = n.B, n.A
			}
			acked, sent := streamUntilKilled(t, s, victim)
			s.Restart(t)
			c := nodeIMAP(t, other, imapUser, imapPass, nil)
			count := map[string]int{}
			for _, id := range messageIDs(t, c, "INBOX") {
				count[id]++
			}
			lost, twice, unacked := 0, 0, 0
			for _, id := range acked {
				switch count[id] {
				case 0:
					lost++
					t.Errorf("acknowledged %s is missing", id)
				case 1:
				default:
					twice++
					t.Errorf("acknowledged %s is there %d times", id, count[id])
				}
			}
			for _, id := range sent {
				if count[id] > 1 {
					t.Errorf("unacknowledged %s is there %d times", id, count[id])
				}
				unacked += count[id]
			}
			t.Logf("kill -9 of %s: %d messages acknowledged (all found once: %v), %d interrupted of which %d stored anyway",
				victim, len(acked), lost == 0 && twice == 0, len(sent), unacked)
			if len(acked) < 20 {
				t.Errorf("only %d deliveries acknowledged before the kill", len(acked))
			}
		})
	}
}

// streamUntilKilled runs four SMTP clients delivering to imapUser through
// s, kills s with SIGKILL after 40 acknowledgements, and returns the
// Message-IDs acknowledged and those whose delivery was interrupted.
func streamUntilKilled(t *testing.T, s *Server, label string) (acked, interrupted []string) {
	t.Helper()
	var (
		mu     sync.Mutex
		seq    atomic.Int64
		killed = make(chan struct{})
		wg     sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-killed:
					return
				default:
				}
				c, err := smtp.Dial(s.Addr("smtp"))
				if err != nil {
					return
				}
				if err := c.Hello("client.example"); err != nil {
					c.Close()
					return
				}
				for {
					id := fmt.Sprintf("kill%s-%d-%d", label, w, seq.Add(1))
					err := goSend(c, "sender@remote.test", []string{imapUser}, nodeMessage(imapUser, id))
					mu.Lock()
					if err == nil {
						acked = append(acked, id+"@nodes.test")
					} else {
						interrupted = append(interrupted, id+"@nodes.test")
					}
					mu.Unlock()
					if err != nil {
						c.Close()
						return
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		k := len(acked)
		mu.Unlock()
		if k >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Kill()
	close(killed)
	wg.Wait()
	return acked, interrupted
}

// TestPGNodeKilledDuringRelay: both nodes relay the messages submitted
// through A to a receiver that holds every end of data unanswered; A is
// killed (SIGKILL) while it holds claims and sessions in DATA. B takes A's
// messages over once their lease (claim_lease, 3 s here) runs out, and the
// receiver accepts every message exactly once.
func TestPGNodeKilledDuringRelay(t *testing.T) {
	d := newTestDNS(t)
	f := startFakeReceiver(t)
	stall := make(chan struct{})
	f.stall = stall
	var inData atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-f.inData:
				inData.Add(1)
			case <-done:
				return
			}
		}
	}()
	n := startPGNodes(t, fmt.Sprintf("[dns]\nresolver = %q\n[queue]\nremote_port = %s\nclaim_lease = \"3s\"\n", d.Addr, f.port))
	n.A.AddUser(t, "alice@a.test", alicePW)
	nodeA := regexp.MustCompile(`queue in PostgreSQL.* node=(\S+)`).FindStringSubmatch(n.A.Log())
	if nodeA == nil {
		fatalf(t, "A logged no queue node id")
	}
	db, err := pgx.Connect(t.Context(), n.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	claimsOfA := func() int {
		var c int
		if err := db.QueryRow(t.Context(), `SELECT count(*) FROM queue_claims WHERE node = $1 AND lease_until > now()`, nodeA[1]).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}

	const msgs = 12
	for i := range msgs {
		submit(t, n.A, []string{fmt.Sprintf("user%d@b.test", i)},
			fmt.Sprintf("From: alice@a.test\r\nSubject: relay %d\r\n\r\nmarker relay-%d.\r\n", i, i))
	}
	waitUntil(t, 20*time.Second, "A in DATA with claims", func() bool { return inData.Load() > 0 && claimsOfA() > 0 })
	time.Sleep(200 * time.Millisecond) // let A's other attempts reach DATA too
	claimed := claimsOfA()
	n.A.Kill()
	// The kernel closed A's connections; B's sessions held in DATA get a
	// 451 when the receiver lets go, and retry.
	time.Sleep(300 * time.Millisecond)
	f.mu.Lock()
	f.stall = nil
	f.mu.Unlock()
	close(stall)
	received := func() map[int]int {
		f.mu.Lock()
		defer f.mu.Unlock()
		got := map[int]int{}
		for _, b := range f.received {
			var i int
			if k := bytes.Index(b, []byte("marker relay-")); k >= 0 {
				fmt.Sscanf(string(b[k+len("marker relay-"):]), "%d.", &i)
				got[i]++
			}
		}
		return got
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(received()) < msgs {
		if time.Now().After(deadline) {
			fatalf(t, "after 60 s the receiver has %d of %d messages: %v", len(received()), msgs, received())
		}
		// B's own deferred attempts wait for a backoff; A's wait for the lease.
		n.B.Admin(t, "", "queue", "retry", "all")
		time.Sleep(time.Second)
	}
	waitUntil(t, 20*time.Second, "B's queue empty", func() bool {
		return strings.Contains(n.B.Admin(t, "", "queue", "list"), "queue is empty")
	})
	got := received()
	for i := range msgs {
		if got[i] != 1 {
			errorf(t, "message %d reached the receiver %d times", i, got[i])
		}
	}
	t.Logf("A held %d claims with %d sessions in DATA when killed; every message reached the receiver once", claimed, inData.Load())
}
