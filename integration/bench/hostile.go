package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore/mimeparse/hostile"
)

// hostileConns is how many hostile messages are sent at once, each over its
// own connection and each of a different kind.
const hostileConns = 20

// hostileRun is one run of the hostile-MIME workload on one system.
type hostileRun struct {
	peakRSS      int64         // highest sum of VmRSS over the system's processes while receiving
	cpu          time.Duration // CPU of the system's processes while receiving
	slowest      time.Duration // slowest greeting of a probe connection (SMTP, IMAP, POP3) meanwhile
	probeFails   int           // probe connections that got no greeting within probeTimeout
	accepted     int           // 250 after DATA
	refused      int           // 5xx, with its reply
	other        []string      // anything else: the workload fails
	replies      map[string]int
	fetchPeakRSS int64         // highest RSS during FETCH 1:* (BODYSTRUCTURE)
	fetchDur     time.Duration // FETCH 1:* (BODYSTRUCTURE) until its tagged OK
	fetched      int           // FETCH responses received
}

// probeTimeout bounds how long a probe waits for a greeting; a server that
// does not greet within it counts as not answering.
const probeTimeout = 10 * time.Second

func (b *bench) mHostile() (rss, cpu, slow, frss, fdur metric) {
	what := fmt.Sprintf("Hostile MIME in, %d conn × %s, each a different kind", hostileConns, sizeLabel(b.sz.HostileSize))
	return mib(what + ": peak RSS of all the system's processes"),
		cpuMillis(what + ": CPU of all the system's processes per message"),
		millis(what + ": slowest SMTP/IMAP/POP3 greeting meanwhile"),
		mib("FETCH 1:* (BODYSTRUCTURE) over those messages: peak RSS of all the system's processes"),
		millis("FETCH 1:* (BODYSTRUCTURE) over those messages")
}

func sizeLabel(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return kb(n)
}

// hostileMIME sends hostileConns hostile messages at once to each system's
// MTA port, watching its memory and whether it keeps answering, then
// fetches every structure over IMAP.
func (b *bench) hostileMIME(ctx context.Context) {
	rss, cpu, slow, frss, fdur := b.mHostile()
	cases := hostile.Cases()
	failed := map[string]bool{}
	for run := range b.o.runs {
		for _, s := range b.srvs {
			if failed[s.Name()] {
				continue
			}
			r, err := runHostile(ctx, s, cases, run, b.sz.HostileSize)
			if err != nil {
				failed[s.Name()] = true
				b.fail(s, "hostile MIME", err)
				b.log.Info("hostile run figures before the failure", "system", s.Name(), "peakRSSMiB", r.peakRSS>>20,
					"cpu", r.cpu, "accepted", r.accepted, "refused", r.refused, "replies", r.replies, "slowest", r.slowest)
				continue
			}
			b.log.Info("hostile", "system", s.Name(), "run", run, "peakRSSMiB", r.peakRSS>>20, "accepted", r.accepted,
				"refused", r.refused, "slowest", r.slowest, "fetchPeakRSSMiB", r.fetchPeakRSS>>20, "fetch", r.fetchDur)
			b.res.add(rss, s.Name(), float64(r.peakRSS))
			b.res.add(cpu, s.Name(), ms(r.cpu)/hostileConns)
			b.res.add(slow, s.Name(), ms(r.slowest))
			b.res.add(frss, s.Name(), float64(r.fetchPeakRSS))
			b.res.add(fdur, s.Name(), ms(r.fetchDur))
			if run == 0 {
				var rs []string
				for k, n := range r.replies {
					rs = append(rs, fmt.Sprintf("%d× %q", n, k))
				}
				refused := fmt.Sprint(r.refused)
				if len(rs) > 0 {
					slices.Sort(rs)
					refused += " (" + strings.Join(rs, ", ") + ")"
				}
				b.note(fmt.Sprintf("%s, hostile MIME: %d accepted, %s refused; %d probe connections got no greeting within %s; FETCH returned %d structures.",
					s.Name(), r.accepted, refused, r.probeFails, probeTimeout, r.fetched))
			}
		}
	}
	names := make([]string, 0, hostileConns)
	for i := range hostileConns {
		names = append(names, cases[i%len(cases)].Name)
	}
	b.note(fmt.Sprintf("Hostile MIME: %d messages of %s sent at once over the MTA port to one user, each over its own connection, raw DATA (dot-stuffed, bytes otherwise as generated: bare CR/LF and NUL included), kinds: %s. Memory is VmRSS summed over the system's processes, sampled every 20 ms; probes open an SMTP, IMAP and POP3 connection every 200 ms and time the greeting. Then one IMAP session runs FETCH 1:* (BODYSTRUCTURE) over the user's INBOX (raw, every byte read); the messages are expunged after each run.",
		hostileConns, sizeLabel(b.sz.HostileSize), strings.Join(names, ", ")))
}

// hostileFrom is the author line put on top of every hostile message.
const hostileFrom = "From: Hostile <hostile@sender.test>\r\n"

func runHostile(ctx context.Context, s server, cases []hostile.Case, run, size int) (hostileRun, error) {
	r := hostileRun{replies: map[string]int{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	peak := watchRSS(ctx, s)
	var probes sync.WaitGroup
	var slowest atomic.Int64
	var probeFails atomic.Int32
	probeCtx, stopProbes := context.WithCancel(ctx)
	probes.Go(func() {
		for probeCtx.Err() == nil {
			for _, p := range []string{"smtp", "imap", "pop3"} {
				d, err := greetingTime(s.Addr(p))
				if err != nil {
					probeFails.Add(1)
				}
				if int64(d) > slowest.Load() {
					slowest.Store(int64(d))
				}
			}
			select {
			case <-probeCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	})

	cpu0 := systemCPU(s)
	var mu sync.Mutex
	err := parallel(ctx, hostileConns, hostileConns, func(ctx context.Context, i int) error {
		c := cases[(i+run)%len(cases)]
		// Each MIME case names one author, so both systems take it in and
		// parse it rather than refuse it at the first header check.
		msg := io.MultiReader(strings.NewReader(hostileFrom), c.Gen(int64(size-len(hostileFrom))))
		code, text, err := sendRaw(s.Addr("smtp"), userHostile, msg)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			r.other = append(r.other, fmt.Sprintf("%s: %v", c.Name, err))
		case code == 250:
			r.accepted++
		case code >= 500 && code < 600:
			r.refused++
			r.replies[fmt.Sprintf("%d %s", code, text)]++
		default:
			r.other = append(r.other, fmt.Sprintf("%s: %d %s", c.Name, code, text))
		}
		return nil
	})
	time.Sleep(cpuSettle)
	r.cpu = systemCPU(s) - cpu0
	stopProbes()
	probes.Wait()
	r.slowest = time.Duration(slowest.Load())
	r.probeFails = int(probeFails.Load())
	r.peakRSS = peak()
	if err != nil {
		return r, err
	}
	if len(r.other) > 0 {
		return r, fmt.Errorf("neither 250 nor 5xx: %s", strings.Join(r.other, "; "))
	}
	if r.probeFails > 0 {
		return r, fmt.Errorf("%d probe connections got no greeting within %s", r.probeFails, probeTimeout)
	}

	// Every accepted message visible, then all structures at once.
	mon, err := imapLogin(s.Addr("imap"), userHostile)
	if err != nil {
		return r, err
	}
	defer mon.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, err := imapCount(mon, "INBOX")
		if err != nil {
			return r, err
		}
		if int(n) >= r.accepted {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("IMAP shows %d of %d accepted messages after 5 minutes", n, r.accepted)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fctx, fcancel := context.WithCancel(ctx)
	fpeak := watchRSS(fctx, s)
	t0 := time.Now()
	r.fetched, err = rawFetchStructures(s.Addr("imap"), userHostile)
	r.fetchDur = time.Since(t0)
	fcancel()
	r.fetchPeakRSS = fpeak()
	if err != nil {
		return r, fmt.Errorf("FETCH 1:* (BODYSTRUCTURE): %w", err)
	}
	if r.fetched < r.accepted {
		return r, fmt.Errorf("FETCH returned %d structures for %d messages", r.fetched, r.accepted)
	}
	if _, err := mon.Select("INBOX", nil).Wait(); err != nil {
		return r, err
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	if err := mon.Store(all, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return r, fmt.Errorf("flag the hostile messages deleted: %w", err)
	}
	if err := mon.Expunge().Close(); err != nil {
		return r, fmt.Errorf("expunge the hostile messages: %w", err)
	}
	return r, nil
}

// watchRSS samples the system's summed VmRSS every 20 ms until ctx ends;
// the function it returns stops the sampling and gives the highest value.
func watchRSS(ctx context.Context, s server) (peak func() int64) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		max  int64
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			pids := s.PIDs()
			if rss, _ := memUsage(pids); rss > max {
				max = rss
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		cancel()
		<-done
		return max
	}
}

// greetingTime connects to addr and times the server's first line.
func greetingTime(addr string) (time.Duration, error) {
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return time.Since(t0), err
	}
	defer c.Close()
	c.SetDeadline(t0.Add(probeTimeout))
	if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
		return time.Since(t0), err
	}
	return time.Since(t0), nil
}

// sendRaw delivers one message to rcpt over plain SMTP, writing body's
// bytes as they are apart from dot-stuffing (a client library would
// normalize line endings, which is what a hostile sender does not do). It
// returns the reply to the end of data, or the first reply that refused.
func sendRaw(addr, rcpt string, body io.Reader) (int, string, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	br := bufio.NewReader(c)
	bw := bufio.NewWriterSize(c, 64<<10)
	reply := func() (int, string, error) {
		var text string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return 0, text, err
			}
			line = strings.TrimRight(line, "\r\n")
			if len(line) < 4 {
				return 0, line, fmt.Errorf("short reply %q", line)
			}
			code, err := strconv.Atoi(line[:3])
			if err != nil {
				return 0, line, fmt.Errorf("bad reply %q", line)
			}
			text = line[4:]
			if line[3] != '-' {
				return code, text, nil
			}
		}
	}
	cmd := func(line string, want int) (int, string, error) {
		if line != "" {
			bw.WriteString(line + "\r\n")
			if err := bw.Flush(); err != nil {
				return 0, "", err
			}
		}
		code, text, err := reply()
		if err == nil && code != want {
			err = errRefused
		}
		return code, text, err
	}
	steps := []struct {
		line string
		want int
	}{{"", 220}, {"EHLO bench.test", 250}, {"MAIL FROM:<hostile@sender.test>", 250}, {"RCPT TO:<" + rcpt + ">", 250}, {"DATA", 354}}
	for _, st := range steps {
		if code, text, err := cmd(st.line, st.want); err != nil {
			if errors.Is(err, errRefused) {
				return code, text, nil
			}
			return code, text, err
		}
	}
	if err := writeDotStuffed(bw, body); err != nil {
		// The server may refuse and hang up before the end (too big).
		if code, text, rerr := reply(); rerr == nil {
			return code, text, nil
		}
		return 0, "", err
	}
	code, text, err := cmd(".", 250)
	if errors.Is(err, errRefused) {
		err = nil
	}
	if err == nil {
		bw.WriteString("QUIT\r\n")
		bw.Flush()
	}
	return code, text, err
}

var errRefused = errors.New("refused")

// writeDotStuffed copies r to w, doubling a "." at the start of a line
// (after LF), and ends with CRLF if the data did not.
func writeDotStuffed(w *bufio.Writer, r io.Reader) error {
	buf := make([]byte, 64<<10)
	atLineStart, lastCR, lastLF := true, false, false
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if atLineStart && c == '.' {
				w.WriteByte('.')
			}
			w.WriteByte(c)
			atLineStart = c == '\n'
			lastCR, lastLF = c == '\r', c == '\n'
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	switch {
	case lastCR:
		w.WriteString("\n")
	case !lastLF:
		w.WriteString("\r\n")
	}
	return w.Flush()
}

// rawFetchStructures logs in over a raw IMAP connection, runs FETCH 1:*
// (BODYSTRUCTURE) and reads the whole answer, literals included, without
// parsing the structures (a client library would bound their depth). It
// returns the number of FETCH responses.
func rawFetchStructures(addr, user string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	br := bufio.NewReaderSize(c, 64<<10)
	// readLine reads one response line with its literals.
	readLine := func() (string, error) {
		var sb strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			sb.WriteString(line)
			t := strings.TrimRight(line, "\r\n")
			if !strings.HasSuffix(t, "}") {
				return sb.String(), nil
			}
			i := strings.LastIndexByte(t, '{')
			n, err := strconv.ParseInt(strings.TrimSuffix(t[i+1:len(t)-1], "+"), 10, 64)
			if i < 0 || err != nil {
				return sb.String(), nil
			}
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				return "", err
			}
		}
	}
	run := func(tag, cmd string, each func(string)) error {
		if _, err := fmt.Fprintf(c, "%s %s\r\n", tag, cmd); err != nil {
			return err
		}
		for {
			line, err := readLine()
			if err != nil {
				return err
			}
			if strings.HasPrefix(line, tag+" ") {
				if !strings.HasPrefix(line, tag+" OK") {
					return fmt.Errorf("%s: %s", cmd, strings.TrimSpace(line))
				}
				return nil
			}
			if each != nil {
				each(line)
			}
		}
	}
	if _, err := readLine(); err != nil {
		return 0, err
	}
	if err := run("a", fmt.Sprintf("LOGIN %q %q", user, password), nil); err != nil {
		return 0, err
	}
	if err := run("b", "EXAMINE INBOX", nil); err != nil {
		return 0, err
	}
	n := 0
	err = run("c", "FETCH 1:* (BODYSTRUCTURE)", func(line string) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "*" && f[2] == "FETCH" {
			n++
		}
	})
	run("d", "LOGOUT", nil)
	return n, err
}
