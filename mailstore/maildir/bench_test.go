package maildir

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/posthouse/posthouse/mailstore"
)

// message10K is a 10 KB message with a realistic header.
var message10K = func() string {
	h := "Return-Path: <bob@example.net>\r\nReceived: from mx.example.net by mail.example.org; Sat, 21 Nov 2026 10:00:00 +0000\r\n" +
		"From: Bob <bob@example.net>\r\nTo: Alice <alice@example.org>\r\nSubject: benchmark message\r\n" +
		"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.net>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n"
	line := strings.Repeat("0123456789", 7) + "\r\n"
	var b strings.Builder
	b.WriteString(h)
	for b.Len()+len(line) <= 10*1024 {
		b.WriteString(line)
	}
	return b.String()
}()

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), b.TempDir(), Options{MaxIdleAccounts: 200})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchAccounts(b *testing.B, s *Store, n int) []mailstore.Account {
	b.Helper()
	accs := make([]mailstore.Account, n)
	for i := range accs {
		acc, err := s.Open(context.Background(), fmt.Sprintf("user%d@example.org", i))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { acc.Close() })
		accs[i] = acc
	}
	return accs
}

// BenchmarkDeliver measures durable deliveries (fsync on) of 10 KB
// messages: into one account and spread over 100, serially and with
// parallel deliveries (b.RunParallel, GOMAXPROCS×-cpu goroutines; use
// -cpu or SetParallelism to vary).
func BenchmarkDeliver(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("accounts=%d/serial", n), func(b *testing.B) {
			accs := benchAccounts(b, benchStore(b), n)
			b.SetBytes(int64(len(message10K)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := accs[i%n].Deliver(ctx, strings.NewReader(message10K), mailstore.DeliverOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(fmt.Sprintf("accounts=%d/parallel16", n), func(b *testing.B) {
			accs := benchAccounts(b, benchStore(b), n)
			b.SetBytes(int64(len(message10K)))
			b.SetParallelism(16)
			var next atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if _, err := accs[int(i)%n].Deliver(ctx, strings.NewReader(message10K), mailstore.DeliverOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// bigMailbox builds a mailbox of n messages for read benchmarks. Rows go in
// through the account's write path in large transactions (with the same
// INSERT delivery uses) but without files: Snapshot, Status and Fetch never
// open them.
func bigMailbox(tb testing.TB, n int) (mailstore.Account, int64) {
	tb.Helper()
	s, err := Open(context.Background(), tb.TempDir(), Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	acc, err := s.Open(context.Background(), testAccount)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { acc.Close() })
	ctx := context.Background()
	mb, err := acc.Mailbox(ctx, mailstore.Inbox)
	if err != nil {
		tb.Fatal(err)
	}
	p, _ := parseMessage(strings.NewReader(message10K))
	a := acc.(*handle).a
	const batch = 10000
	for start := 0; start < n; start += batch {
		err := a.write(ctx, func(w *wtx) error {
			end := min(start+batch, n)
			var first int64
			if err := w.QueryRow(`UPDATE mailboxes SET uidnext = uidnext + ? WHERE id = ? RETURNING uidnext - ?`, end-start, mb.ID, end-start).Scan(&first); err != nil {
				return err
			}
			modseq, err := w.bump(mb.ID)
			if err != nil {
				return err
			}
			for i := start; i < end; i++ {
				flags := int64(0)
				if i%10 < 7 {
					flags |= flagSeen
				}
				if i%50 == 0 {
					flags |= flagFlagged
				}
				var kw any
				if i%100 == 0 {
					kw = "$Forwarded"
				}
				if _, err := w.Exec(`INSERT INTO messages (mailbox, uid, modseq, flags, keywords, size, internaldate, internalzone, sentdate, file, messageid, envelope, bodystructure)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					mb.ID, first+int64(i-start), int64(modseq), flags, kw, len(message10K), time.Now().Unix(), 0, p.SentDate,
					fmt.Sprintf("cur/fixture%d", i), p.MessageID, p.Envelope, p.BodyStructure); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return acc, mb.ID
}

// BenchmarkSnapshot100k lists UIDs, modseqs and flags of a 100,000-message
// mailbox: "cold" changes a flag before each Snapshot, so the index is read
// every time; "cached" snapshots an unchanged mailbox.
func BenchmarkSnapshot100k(b *testing.B) {
	acc, id := bigMailbox(b, 100000)
	ctx := context.Background()
	for _, cold := range []bool{true, false} {
		name := "cached"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if cold {
					b.StopTimer()
					op := mailstore.FlagsAdd
					if i%2 == 1 {
						op = mailstore.FlagsRemove
					}
					if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(7), op, []imap.Flag{imap.FlagFlagged}, 0); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				snap, err := acc.Snapshot(ctx, id)
				if err != nil || len(snap.Messages) != 100000 {
					b.Fatal(len(snap.Messages), err)
				}
			}
		})
	}
}

// BenchmarkStatus100k is STATUS on the same mailbox.
func BenchmarkStatus100k(b *testing.B) {
	acc, id := bigMailbox(b, 100000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := acc.Status(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchEnvelope100 fetches envelope and body structure of 100
// messages from the cache.
func BenchmarkFetchEnvelope100(b *testing.B) {
	acc, id := bigMailbox(b, 10000)
	ctx := context.Background()
	set := imap.UIDSet{{Start: 5000, Stop: 5099}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		infos, err := acc.Fetch(ctx, id, set, mailstore.FetchOptions{Envelope: true, BodyStructure: true})
		if err != nil || len(infos) != 100 {
			b.Fatal(len(infos), err)
		}
	}
}

// BenchmarkStoreFlags1k sets \Seen on 1,000 messages of a 100,000-message
// mailbox and clears it again.
func BenchmarkStoreFlags1k(b *testing.B) {
	acc, id := bigMailbox(b, 100000)
	ctx := context.Background()
	set := imap.UIDSet{{Start: 50000, Stop: 50999}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op := mailstore.FlagsAdd
		if i%2 == 1 {
			op = mailstore.FlagsRemove
		}
		if _, err := acc.StoreFlags(ctx, id, set, op, []imap.Flag{imap.FlagDeleted}, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSnapshotLarge checks the fixture path and a large snapshot's shape.
func TestSnapshotLarge(t *testing.T) {
	acc, id := bigMailbox(t, 20000)
	snap, err := acc.Snapshot(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Messages) != 20000 || snap.Messages[0].UID != 1 || snap.Messages[19999].UID != 20000 || snap.UIDNext != 20001 {
		t.Fatalf("snapshot of %d messages, uidnext %d", len(snap.Messages), snap.UIDNext)
	}
	if len(snap.Messages[0].Flags) != 3 || snap.Messages[0].Flags[2] != "$Forwarded" || len(snap.Messages[9].Flags) != 0 {
		t.Fatalf("flags %v %v", snap.Messages[0].Flags, snap.Messages[9].Flags)
	}
	st, _ := acc.Status(context.Background(), id)
	if st.Messages != 20000 || st.Unseen != 6000 {
		t.Fatalf("status %+v", st)
	}

	// The cached snapshot is a copy, and any change is seen.
	ctx := context.Background()
	snap.Messages[0].UID = 999999
	again, _ := acc.Snapshot(ctx, id)
	if again.Messages[0].UID != 1 {
		t.Fatalf("cached snapshot shares its slice")
	}
	if _, err := acc.StoreFlags(ctx, id, imap.UIDSetNum(2), mailstore.FlagsAdd, []imap.Flag{"Changed"}, 0); err != nil {
		t.Fatal(err)
	}
	again, _ = acc.Snapshot(ctx, id)
	if !slices.Contains(again.Messages[1].Flags, "Changed") || again.HighestModSeq == snap.HighestModSeq {
		t.Fatalf("snapshot after a change: %v", again.Messages[1].Flags)
	}
	// A change by another process (a second Store on the same directory)
	// is seen too.
	a := acc.(*handle).a
	other, err := Open(ctx, filepath.Dir(a.dir), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// The fixture's rows have no files: keep reconciliation away.
	other.reconciled[testAccount] = true
	oacc := openAccount(t, other, testAccount)
	gone := imap.UIDSetNum(3)
	oacc.StoreFlags(ctx, id, gone, mailstore.FlagsAdd, []imap.Flag{imap.FlagDeleted}, 0)
	if _, err := oacc.Expunge(ctx, id, &gone); err != nil {
		t.Fatal(err)
	}
	again, _ = acc.Snapshot(ctx, id)
	if len(again.Messages) != 19999 || again.Messages[2].UID != 4 {
		t.Fatalf("snapshot after another process's expunge: %d messages", len(again.Messages))
	}
}

// BenchmarkMarkAllRead100k is a client's "mark folder read" on 100,000
// messages (STORE 1:* +FLAGS \Seen), alternating with its undo.
func BenchmarkMarkAllRead100k(b *testing.B) {
	acc, id := bigMailbox(b, 100000)
	ctx := context.Background()
	all := imap.UIDSet{{Start: 1, Stop: 0}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op := mailstore.FlagsAdd
		if i%2 == 1 {
			op = mailstore.FlagsRemove
		}
		res, err := acc.StoreFlags(ctx, id, all, op, []imap.Flag{imap.FlagSeen}, 0)
		if err != nil || len(res.Updated) != 100000 {
			b.Fatal(len(res.Updated), err)
		}
	}
}
