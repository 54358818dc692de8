package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/posthouse/posthouse/mailstore"
	"github.com/posthouse/posthouse/mailstore/maildir"
)

// renamed is an ImportSource under another account name, so that one
// Maildir account can be imported many times into one database.
type renamed struct {
	mailstore.ImportSource
	name string
}

func (r renamed) Account() mailstore.ImportAccount {
	a := r.ImportSource.Account()
	a.Name = r.name
	return a
}

// BenchmarkImport copies a Maildir account of 500 messages of 10 KB in
// two mailboxes into PostgreSQL (durable server): one op is one account.
// bodies=batched is the PGBodies path (one statement per batch of
// messages), bodies=streamed the path of any other BodyStore (two
// statements per message).
func BenchmarkImport(b *testing.B) {
	const msgs = 500
	ctx := context.Background()
	src, err := maildir.Open(ctx, b.TempDir(), maildir.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	a, err := src.Open(ctx, "alice@example.org")
	if err != nil {
		b.Fatal(err)
	}
	for i := range msgs {
		mb := ""
		if i%2 == 1 {
			mb = "Archive"
		}
		if _, err := a.Deliver(ctx, strings.NewReader(message10K), mailstore.DeliverOptions{Mailbox: mb}); err != nil {
			b.Fatal(err)
		}
	}
	a.Close()
	for _, path := range []string{"batched", "streamed"} {
		b.Run("bodies="+path, func(b *testing.B) {
			pg := benchBackends()[1]
			dst := pg.open(b).(*Store)
			if path == "streamed" {
				dst.bodies = streamedBodies{dst.bodies}
			}
			since := pg.stmts.n.Load()
			for i := 0; b.Loop(); i++ {
				ex, err := src.Export(ctx, "alice@example.org")
				if err != nil {
					b.Fatal(err)
				}
				res, err := dst.Import(ctx, renamed{ex, fmt.Sprintf("copy%d@example.org", i)}, mailstore.ImportOptions{})
				ex.Close()
				if err != nil || res.Messages != msgs {
					b.Fatalf("import: %+v, %v", res, err)
				}
			}
			b.ReportMetric(float64(msgs)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(pg.stmts.n.Load()-since)/float64(b.N*msgs), "stmts/msg")
		})
	}
}
