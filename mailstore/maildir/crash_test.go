package maildir

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// crashChildEnv switches the test binary into the delivering child of
// TestCrashDelivery; its value is the store directory.
const crashChildEnv = "POSTHOUSE_MAILDIR_CRASH_CHILD"

// crashMessage builds a message that carries the checksum of its own body,
// so a truncated or mixed-up file is detected.
func crashMessage(rng *rand.Rand, tag string) string {
	n := 200 + rng.IntN(60<<10)
	var body strings.Builder
	for body.Len() < n {
		line := make([]byte, 1+rng.IntN(76))
		for i := range line {
			line[i] = byte('a' + rng.IntN(26))
		}
		body.Write(line)
		body.WriteString("\r\n")
	}
	sum := sha256.Sum256([]byte(body.String()))
	return "Subject: crash " + tag + "\r\nX-Checksum: " + hex.EncodeToString(sum[:]) + "\r\n\r\n" + body.String()
}

// checkCrashMessage verifies a message against its embedded checksum and
// returns the checksum.
func checkCrashMessage(raw []byte) (string, error) {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return "", fmt.Errorf("no header end (%d bytes)", len(raw))
	}
	var want string
	for _, l := range strings.Split(string(head), "\r\n") {
		if v, ok := strings.CutPrefix(l, "X-Checksum: "); ok {
			want = v
		}
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != want {
		return "", fmt.Errorf("checksum %s, header says %q (%d bytes)", got, want, len(raw))
	}
	return want, nil
}

// crashChild delivers until killed, printing "ack <uid> <checksum>" after
// each Deliver returns.
func crashChild(dir string) {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	acc, err := s.Open(ctx, testAccount)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(g)))
			for i := 0; ; i++ {
				msg := crashMessage(rng, fmt.Sprintf("%d-%d", g, i))
				res, err := acc.Deliver(ctx, strings.NewReader(msg), mailstore.DeliverOptions{})
				if err != nil {
					fmt.Fprintln(os.Stderr, "deliver:", err)
					os.Exit(3)
				}
				sum, _ := checkCrashMessage([]byte(msg))
				mu.Lock()
				fmt.Fprintf(out, "ack %d %s\n", res.UID, sum)
				out.Flush()
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCrashDelivery kills a delivering child process at random moments and
// proves that every acknowledged message survives intact and that nothing
// visible is truncated or half there.
func TestCrashDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	rounds := 25
	acked := map[imap.UID]string{}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	deadline := time.Now().Add(20 * time.Second)
	for round := 0; round < rounds; round++ {
		if time.Now().After(deadline) && round >= 20 {
			break
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			br := bufio.NewReader(stdout)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return // a partial last line was not acknowledged
				}
				lines <- l
			}
		}()
		// Let it deliver a little, then kill it without warning. Every
		// fifth round the clock starts at exec, so some kills land while
		// the store is opening; the others start when it is ready.
		var kill <-chan time.Time
		killed := false
		delay := time.Duration(20+rng.IntN(200)) * time.Millisecond
		if round%5 == 0 {
			kill = time.After(delay)
		}
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break wait
				}
				if l == "ready\n" {
					if kill == nil {
						kill = time.After(delay)
					}
					continue
				}
				recordAck(t, acked, l)
			case <-kill:
				cmd.Process.Kill()
				kill = nil
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited on its own: %v\n%s", round, err, stderr.String())
		}
		verifyCrashStore(t, dir, acked)
	}
	if len(acked) < 20 {
		t.Fatalf("only %d deliveries acknowledged in all rounds", len(acked))
	}
	t.Logf("%d rounds, %d acknowledged deliveries, all intact", rounds, len(acked))
}

func recordAck(t *testing.T, acked map[imap.UID]string, line string) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ack" {
		t.Fatalf("bad child line %q", line)
	}
	uid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	if prev, ok := acked[imap.UID(uid)]; ok && prev != f[2] {
		t.Fatalf("uid %d acknowledged twice with different content", uid)
	}
	acked[imap.UID(uid)] = f[2]
}

func verifyCrashStore(t *testing.T, dir string, acked map[imap.UID]string) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	acc, err := s.Open(ctx, testAccount)
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	mb, err := acc.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := acc.Snapshot(ctx, mb.ID)
	if err != nil {
		t.Fatal(err)
	}
	present := map[imap.UID]string{}
	for _, m := range snap.Messages {
		rc, size, err := acc.OpenMessage(ctx, mb.ID, m.UID)
		if err != nil {
			t.Fatalf("uid %d visible but unreadable: %v", m.UID, err)
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(raw)) != size {
			t.Fatalf("uid %d: index size %d, file %d bytes", m.UID, size, len(raw))
		}
		sum, err := checkCrashMessage(raw)
		if err != nil {
			t.Fatalf("uid %d visible but damaged: %v", m.UID, err)
		}
		present[m.UID] = sum
	}
	for uid, sum := range acked {
		if got, ok := present[uid]; !ok {
			t.Fatalf("acknowledged uid %d lost", uid)
		} else if got != sum {
			t.Fatalf("acknowledged uid %d has other content", uid)
		}
	}
	used, _, _ := acc.Usage(ctx)
	st, _ := acc.Status(ctx, mb.ID)
	if used != st.Size || int(st.Messages) != len(snap.Messages) {
		t.Fatalf("usage %d, INBOX size %d, %d messages in status, %d in snapshot", used, st.Size, st.Messages, len(snap.Messages))
	}
	checkCounters(t, acc)
}
