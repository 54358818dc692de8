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
	"slices"
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
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
		mu.Unlock()
	}
	inbox, err := acc.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var wg sync.WaitGroup
	// One goroutine moves the oldest message to Archive or expunges it,
	// announcing the intent before and the result after each operation.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 99))
		for {
			snap, err := acc.Snapshot(ctx, inbox.ID)
			if err != nil {
				fmt.Fprintln(os.Stderr, "snapshot:", err)
				os.Exit(3)
			}
			if len(snap.Messages) < 4 {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			uid := snap.Messages[0].UID
			if rng.IntN(2) == 0 {
				say("intent move %d", uid)
				res, err := acc.Move(ctx, inbox.ID, imap.UIDSetNum(uid), "Archive")
				if err != nil {
					fmt.Fprintln(os.Stderr, "move:", err)
					os.Exit(3)
				}
				say("moved %d %d", res.SourceUIDs[0], res.DestUIDs[0])
			} else {
				say("intent expunge %d", uid)
				set := imap.UIDSetNum(uid)
				if _, err := acc.StoreFlags(ctx, inbox.ID, set, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
					fmt.Fprintln(os.Stderr, "store:", err)
					os.Exit(3)
				}
				gone, err := acc.Expunge(ctx, inbox.ID, &set)
				if err != nil || len(gone) != 1 {
					fmt.Fprintln(os.Stderr, "expunge:", gone, err)
					os.Exit(3)
				}
				say("expunged %d", uid)
			}
		}
	}()
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
				say("ack %d %s", res.UID, sum)
				if i%3 == 0 {
					// A relaxed commit (relaxed.go): kill -9 must not
					// undo it once StoreFlags has returned.
					if _, err := acc.StoreFlags(ctx, inbox.ID, imap.UIDSetNum(res.UID), mailstore.FlagsAdd, []imap.Flag{imap.FlagFlagged}, 0); err != nil {
						fmt.Fprintln(os.Stderr, "store:", err)
						os.Exit(3)
					}
					say("flagged %d", res.UID)
				}
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
	st := newCrashState()
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
		// the store is opening; the others wait for a few acknowledged
		// deliveries (so a slow, loaded machine still acknowledges enough
		// of them) and then start the clock.
		var kill <-chan time.Time
		killed := false
		delay := time.Duration(rng.IntN(200)) * time.Millisecond
		acks, wantAcks := 0, 2+rng.IntN(5)
		if round%5 == 0 {
			kill = time.After(20*time.Millisecond + delay)
		}
	wait:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break wait
				}
				if l == "ready\n" {
					continue
				}
				st.record(t, l)
				if acks++; kill == nil && !killed && acks >= wantAcks {
					kill = time.After(delay)
				}
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
		verifyCrashStore(t, dir, st)
	}
	if len(st.acked) < 20 {
		t.Fatalf("only %d deliveries acknowledged in all rounds", len(st.acked))
	}
	t.Logf("%d rounds, %d acknowledged deliveries, %d moves, %d expunges, all accounted for",
		rounds, len(st.acked), len(st.moved), len(st.expunged))
}

// crashState is what the parent learned from the children's output.
type crashState struct {
	acked         map[imap.UID]string // INBOX UID -> checksum, delivery returned
	moved         map[imap.UID]imap.UID
	expunged      map[imap.UID]bool
	intentMove    map[imap.UID]bool
	intentExpunge map[imap.UID]bool
	flagged       map[imap.UID]bool // \Flagged stored and acknowledged
}

func newCrashState() *crashState {
	return &crashState{
		acked: map[imap.UID]string{}, moved: map[imap.UID]imap.UID{}, expunged: map[imap.UID]bool{},
		intentMove: map[imap.UID]bool{}, intentExpunge: map[imap.UID]bool{}, flagged: map[imap.UID]bool{},
	}
}

func (st *crashState) record(t *testing.T, line string) {
	t.Helper()
	f := strings.Fields(line)
	num := func(s string) imap.UID {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			t.Fatalf("bad child line %q", line)
		}
		return imap.UID(n)
	}
	switch {
	case len(f) == 3 && f[0] == "ack":
		uid := num(f[1])
		if prev, ok := st.acked[uid]; ok && prev != f[2] {
			t.Fatalf("uid %d acknowledged twice with different content", uid)
		}
		st.acked[uid] = f[2]
	case len(f) == 3 && f[0] == "intent" && f[1] == "move":
		st.intentMove[num(f[2])] = true
	case len(f) == 3 && f[0] == "intent" && f[1] == "expunge":
		st.intentExpunge[num(f[2])] = true
	case len(f) == 3 && f[0] == "moved":
		st.moved[num(f[1])] = num(f[2])
	case len(f) == 2 && f[0] == "expunged":
		st.expunged[num(f[1])] = true
	case len(f) == 2 && f[0] == "flagged":
		st.flagged[num(f[1])] = true
	default:
		t.Fatalf("bad child line %q", line)
	}
}

// readAll returns every message of a mailbox by UID, checking each one.
func readAllChecked(t *testing.T, acc mailstore.Account, id int64) map[imap.UID]string {
	t.Helper()
	ctx := context.Background()
	snap, err := acc.Snapshot(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[imap.UID]string{}
	for _, m := range snap.Messages {
		rc, size, err := acc.OpenMessage(ctx, id, m.UID)
		if err != nil {
			t.Fatalf("mailbox %d uid %d visible but unreadable: %v", id, m.UID, err)
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(raw)) != size {
			t.Fatalf("mailbox %d uid %d: index size %d, file %d bytes", id, m.UID, size, len(raw))
		}
		sum, err := checkCrashMessage(raw)
		if err != nil {
			t.Fatalf("mailbox %d uid %d visible but damaged: %v", id, m.UID, err)
		}
		out[m.UID] = sum
	}
	return out
}

func verifyCrashStore(t *testing.T, dir string, st *crashState) {
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
	inbox, err := acc.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	archive, err := acc.Mailbox(ctx, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	inMsgs := readAllChecked(t, acc, inbox.ID)
	snap, err := acc.Snapshot(ctx, inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range snap.Messages {
		if st.flagged[m.UID] && !slices.Contains(m.Flags, imap.FlagFlagged) {
			t.Fatalf("uid %d: \\Flagged acknowledged but lost (flags %v)", m.UID, m.Flags)
		}
	}
	arMsgs := readAllChecked(t, acc, archive.ID)
	inArchive := map[string]bool{}
	for _, sum := range arMsgs {
		inArchive[sum] = true
	}
	for uid, sum := range st.acked {
		_, inInbox := inMsgs[uid]
		switch {
		case st.expunged[uid]:
			if inInbox {
				t.Fatalf("uid %d expunged (acknowledged) but back in INBOX", uid)
			}
		case st.moved[uid] != 0:
			if inInbox {
				t.Fatalf("uid %d moved (acknowledged) but still in INBOX", uid)
			}
			if arMsgs[st.moved[uid]] != sum {
				t.Fatalf("uid %d moved to Archive uid %d, which holds other content or nothing", uid, st.moved[uid])
			}
		case inInbox:
			if inMsgs[uid] != sum {
				t.Fatalf("acknowledged uid %d has other content", uid)
			}
		case st.intentMove[uid] && inArchive[sum]:
			// A move was under way at the kill and committed.
		case st.intentExpunge[uid]:
			// An expunge was under way at the kill and committed.
		default:
			t.Fatalf("acknowledged uid %d lost", uid)
		}
	}
	used, _, _ := acc.Usage(ctx)
	sti, _ := acc.Status(ctx, inbox.ID)
	sta, _ := acc.Status(ctx, archive.ID)
	if used != sti.Size+sta.Size || int(sti.Messages) != len(inMsgs) || int(sta.Messages) != len(arMsgs) {
		t.Fatalf("usage %d, INBOX %d bytes in %d messages (%d read), Archive %d bytes in %d (%d read)",
			used, sti.Size, sti.Messages, len(inMsgs), sta.Size, sta.Messages, len(arMsgs))
	}
	checkCounters(t, acc)
}
