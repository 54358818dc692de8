package milter

import (
	"context"
	"strings"
	"syscall"
	"testing"

	gomilter "github.com/emersion/go-milter"

	"github.com/posthouse/posthouse/delivery"
)

// loopFilter calls a filter's Check b.N times on the one message the
// pipeline hands it (filters cannot build a delivery.Message themselves),
// then discards the message.
type loopFilter struct {
	b *testing.B
	f delivery.Filter
}

func (l *loopFilter) Name() string { return "loop" }

func (l *loopFilter) Check(ctx context.Context, m *delivery.Message) (delivery.Decision, error) {
	l.b.ReportAllocs()
	l.b.ResetTimer()
	cpu0 := cpuTime()
	for range l.b.N {
		d, err := l.f.Check(ctx, m)
		if err != nil || d.All.Action != delivery.Keep || len(d.All.Headers) != 1 {
			l.b.Fatalf("Check = %+v, %v", d, err)
		}
	}
	l.b.StopTimer()
	// Process CPU (user and system, both ends of the conversation):
	// wall time on a shared machine is mostly waiting.
	l.b.ReportMetric(float64(cpuTime()-cpu0)/float64(l.b.N), "cpu-ns/op")
	return delivery.Decision{All: delivery.Verdict{Action: delivery.Discard}}, nil
}

// BenchmarkCheck is one whole conversation about a 10 KB message with a
// go-milter server in the same process over loopback (its CPU and the
// round trips are in the figure): connect, helo, mail, one rcpt, 5
// fields, the body, one added field.
func BenchmarkCheck(b *testing.B) {
	e := newEnv(b)
	fm := &fakeMilter{body: func(m *gomilter.Modifier) (gomilter.Response, error) {
		m.AddHeader("X-Spam-Status", "No, score=0.1")
		return gomilter.RespAccept, nil
	}}
	addr := fm.start(b, allActions, 0)
	f := e.filter(Options{Address: addr})
	msg := strings.Replace(testMsg, "Hello.\r\n", strings.Repeat("Hello, this is a line of text of some length.\r\n", 200), 1)
	out := e.deliver([]delivery.Filter{&loopFilter{b: b, f: f}}, inbound(), msg, alice)
	if err := resultErr(b, out, alice); err != nil {
		b.Fatal(err)
	}
}

func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
