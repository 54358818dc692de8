package backup

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
)

// BenchmarkBackup: one account of 2,000 messages of about 8 KB. full-copy
// copies every file (a backup disk); links hard-links them to data_dir;
// incremental is a second --copy backup after 20 new messages.
func BenchmarkBackup(b *testing.B) {
	const n, size = 2000, 8 << 10
	ctx := context.Background()
	dataDir, st := testData(b, 0)
	acct, err := st.Open(ctx, testAccount)
	if err != nil {
		b.Fatal(err)
	}
	defer acct.Close()
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", size/58)
	deliverN := func(k int) {
		for i := 0; i < k; i++ {
			msg := fmt.Sprintf("Subject: %d\r\n\r\n%s", i, body)
			if _, err := acct.Deliver(ctx, strings.NewReader(msg), mailstore.DeliverOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	deliverN(n)
	report := func(b *testing.B, res *Result) {
		b.ReportMetric(float64(res.Messages), "msgs")
		b.ReportMetric(float64(res.Copied), "copied")
		b.ReportMetric(float64(res.Bytes)/(1<<20), "MiB")
	}
	b.Run("full-copy", func(b *testing.B) {
		var res *Result
		for b.Loop() {
			res = run1(b, Options{DataDir: dataDir, Dir: filepath.Join(b.TempDir(), "b"), Copy: true})
		}
		report(b, res)
	})
	b.Run("links", func(b *testing.B) {
		var res *Result
		for b.Loop() {
			res = run1(b, Options{DataDir: dataDir, Dir: filepath.Join(b.TempDir(), "b")})
		}
		report(b, res)
	})
	b.Run("incremental", func(b *testing.B) {
		var res *Result
		for b.Loop() {
			b.StopTimer()
			dir := filepath.Join(b.TempDir(), "b")
			run1(b, Options{DataDir: dataDir, Dir: dir, Copy: true})
			deliverN(20)
			b.StartTimer()
			res = run1(b, Options{DataDir: dataDir, Dir: dir, Copy: true})
		}
		report(b, res)
	})
}
