package auth

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var guessWindow = flag.Duration("guess.window", 20*time.Second, "how long BenchmarkDistributedGuessing attacks each variant")

// BenchmarkDistributedGuessing measures how many passwords an attacker gets
// checked against one account from 40 source addresses with 8 guesses in
// flight from each, against Open's defaults: real argon2id, the real clock
// and real waits. Each variant attacks for -guess.window (run it with
// -benchtime=1x); "guesses/s" counts the answers "wrong password" (a
// password really checked), "refused" the temporary refusals. Meanwhile the
// account's owner logs in once a second from an address that logged in
// before the attack; "user-fail" counts the logins that did not succeed,
// "user-s/login" is their mean duration.
//
//   - 40-addresses: the same 40 IPv4 addresses throughout.
//   - fresh-/64: a refused guesser moves to a new IPv6 /64, as an attacker
//     with a routed /48 can at no cost.
//
// It is a figure for the README, never a gate: the numbers depend on the
// machine's cores.
func BenchmarkDistributedGuessing(b *testing.B) {
	for _, bc := range []struct {
		name  string
		fresh bool
	}{{"40-addresses", false}, {"fresh-/64", true}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			db, err := Open(ctx, filepath.Join(b.TempDir(), "users.sqlite"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			must(b, db.AddDomain(ctx, "example.com"))
			if _, err := db.AddUser(ctx, "bob@example.com", "pw-bob", 0); err != nil {
				b.Fatal(err)
			}
			home := netip.MustParseAddr("198.51.100.7")
			if _, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", home); err != nil {
				b.Fatal(err)
			}

			var checked, refused, userOK, userFail, userWait atomic.Int64
			var next atomic.Int64 // fresh /64s handed out
			stop := time.Now().Add(*guessWindow)
			start := time.Now()
			var wg sync.WaitGroup
			for a := 0; a < 40; a++ {
				for g := 0; g < 8; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						addr := netip.AddrFrom4([4]byte{203, 0, 113, byte(a + 1)})
						for i := 0; time.Now().Before(stop); i++ {
							_, err := db.Authenticate(ctx, "bob@example.com", fmt.Sprintf("guess-%d-%d-%d", a, g, i), addr)
							switch {
							case errors.Is(err, ErrBadCredentials):
								checked.Add(1)
							case errors.Is(err, ErrThrottled):
								refused.Add(1)
								if bc.fresh {
									n := next.Add(1)
									addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 15: 1})
								} else {
									time.Sleep(20 * time.Millisecond)
								}
							default:
								b.Errorf("guess: %v", err)
								return
							}
						}
					}()
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					t0 := time.Now()
					_, err := db.Authenticate(ctx, "bob@example.com", "pw-bob", home)
					userWait.Add(int64(time.Since(t0)))
					if err != nil {
						userFail.Add(1)
					} else {
						userOK.Add(1)
					}
					time.Sleep(time.Second)
				}
			}()
			wg.Wait()
			elapsed := time.Since(start).Seconds()
			b.ReportMetric(float64(checked.Load())/elapsed, "guesses/s")
			b.ReportMetric(float64(refused.Load()), "refused")
			b.ReportMetric(float64(userOK.Load()), "user-ok")
			b.ReportMetric(float64(userFail.Load()), "user-fail")
			if n := userOK.Load() + userFail.Load(); n > 0 {
				b.ReportMetric(time.Duration(userWait.Load()/n).Seconds(), "user-s/login")
			}
		})
	}
}
