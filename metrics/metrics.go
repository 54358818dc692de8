package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Fixed label values (doc.go "Metrics"); anything else becomes "other".
var (
	protocols   = []string{"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "managesieve", "http", "https", "admin", "web"}
	authResults = []string{"success", "failure", "throttled", "error"}
	modes       = []string{"mta", "submission"}
	stages      = []string{"connect", "helo", "mail", "rcpt", "data"}
	// Reasons smtpd names for a refusal (smtpd/outcome.go).
	reasons = []string{
		"unknown_user", "relay_denied", "quota", "too_big", "sender_not_owned", "malformed",
		"auth_required", "protocol", "temporary", "policy", "address", "mailbox", "system", "content",
	}
	classes         = []string{"temporary", "permanent"}
	deliveryResults = []string{"stored", "failed"}
	attemptResults  = []string{"delivered", "deferred", "bounced"}
	dnsTypes        = []string{"A", "AAAA", "MX", "TXT", "PTR", "SRV", "CNAME", "TLSA", "NS", "SOA", "CAA"}
	dnsResults      = []string{"ok", "notfound", "error"}
	// IMAP commands as imapserver names them (with "UID " for UID forms).
	imapCommands = []string{
		"CAPABILITY", "NOOP", "CHECK", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE", "ID",
		"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB",
		"NAMESPACE", "STATUS", "APPEND", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE",
		"COPY", "MOVE", "SORT", "THREAD", "UID EXPUNGE", "UID SEARCH", "UID FETCH", "UID STORE",
		"UID COPY", "UID MOVE", "UID SORT", "UID THREAD", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA",
		"GETMETADATA", "SETMETADATA", "COMPRESS", "NOTIFY", "CANCELUPDATE", "UNAUTHENTICATE",
	}
)

// bounded returns v if it is one of allowed, else "other".
func bounded(v string, allowed []string) string {
	if slices.Contains(allowed, v) {
		return v
	}
	return "other"
}

// QueueStats reports the outbound queue's size and its oldest message's
// creation time (zero when empty); cmd adapts the queue to it.
type QueueStats func(ctx context.Context) (messages int, oldest time.Time, err error)

// Recorder holds Posthouse's metrics. Its methods are safe for concurrent
// use and cheap (a map lookup and an atomic add); they do nothing on a nil
// Recorder, so a hook may be wired unconditionally.
type Recorder struct {
	log *slog.Logger
	reg *prometheus.Registry
	now func() time.Time

	conns          *prometheus.CounterVec
	auth           *prometheus.CounterVec
	received       *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	deliveries     *prometheus.CounterVec
	attempts       *prometheus.CounterVec
	dns            *prometheus.HistogramVec
	storeCommit    prometheus.Histogram
	imapCommand    *prometheus.HistogramVec
	queueCollector *queueCollector

	day *daily

	stop chan struct{}
	done sync.WaitGroup
	once sync.Once
}

// Open makes a Recorder whose 24-hour counts live in dataDir (see doc.go),
// and starts the goroutine that saves them; Close stops it.
func Open(dataDir string, log *slog.Logger) (*Recorder, error) {
	return open(dataDir, log, time.Now, time.Minute)
}

func open(dataDir string, log *slog.Logger, now func() time.Time, saveEvery time.Duration) (*Recorder, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	day, err := loadDaily(dataDir, log)
	if err != nil {
		return nil, err
	}
	r := &Recorder{log: log, reg: prometheus.NewRegistry(), now: now, day: day, stop: make(chan struct{})}
	r.conns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posthouse_connections_total", Help: "TCP connections accepted, per listener.",
	}, []string{"proto"})
	r.auth = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posthouse_auth_total", Help: "Login attempts per protocol and result (success, failure, throttled, error).",
	}, []string{"proto", "result"})
	r.received = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posthouse_messages_received_total", Help: "Messages accepted over SMTP: mta (port 25) or submission.",
	}, []string{"mode"})
	r.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posthouse_messages_rejected_total", Help: "Refused SMTP commands (MAIL, RCPT, DATA) by stage, reason and class.",
	}, []string{"stage", "reason", "class"})
	r.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posthouse_deliveries_total", Help: "Local copies made by the delivery pipeline: stored or failed.",
	}, []string{"result"})
	r.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posthouse_delivery_attempts_total", Help: "Outbound delivery attempts per recipient: delivered, deferred or bounced.",
	}, []string{"result"})
	r.dns = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "posthouse_dns_lookup_duration_seconds", Help: "DNS exchanges with the configured resolver, by record type and result.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12), // 0.5 ms to 12 s
	}, []string{"type", "result"})
	r.storeCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "posthouse_store_commit_duration_seconds", Help: "Making one local copy durable: message file, fsync, index commit.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5 ms to 4 s
	})
	r.imapCommand = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "posthouse_imap_command_duration_seconds", Help: "IMAP commands from the command line to the tagged reply (IDLE excluded).",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2.5, 12), // 0.2 ms to 5 s
	}, []string{"command"})
	r.queueCollector = newQueueCollector(log)
	r.reg.MustRegister(r.conns, r.auth, r.received, r.rejected, r.deliveries, r.attempts,
		r.dns, r.storeCommit, r.imapCommand, r.queueCollector,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	r.done.Add(1)
	go r.saveLoop(saveEvery)
	return r, nil
}

// saveLoop writes the 24-hour counts when they changed, every interval.
func (r *Recorder) saveLoop(every time.Duration) {
	defer r.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			if err := r.day.save(); err != nil {
				r.log.Error("saving the 24-hour message counts", "err", err)
			}
		}
	}
}

// Close stops the saving goroutine and saves the 24-hour counts a last
// time.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	r.once.Do(func() { close(r.stop) })
	r.done.Wait()
	return r.day.save()
}

// Handler serves the Prometheus exposition format.
func (r *Recorder) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(r.log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Summary is the dashboard's last 24 hours: messages received from other
// servers (In), sent by our users (Out), and refused SMTP commands
// (Rejected).
type Summary struct{ In, Out, Rejected int64 }

// Last24h sums the hour of now and the 23 before it.
func (r *Recorder) Last24h(now time.Time) Summary {
	if r == nil {
		return Summary{}
	}
	return r.day.sum(now)
}

// SetQueueStats sets where posthouse_queue_messages and
// posthouse_queue_oldest_seconds come from at each scrape.
func (r *Recorder) SetQueueStats(f QueueStats) {
	if r == nil {
		return
	}
	r.queueCollector.set(f, r.now)
}

// Connection counts one accepted connection on listener proto.
func (r *Recorder) Connection(proto string) {
	if r == nil {
		return
	}
	r.conns.WithLabelValues(bounded(proto, protocols)).Inc()
}

// Auth counts one login attempt's result (success, failure, throttled,
// error) on proto.
func (r *Recorder) Auth(proto, result string) {
	if r == nil {
		return
	}
	r.auth.WithLabelValues(bounded(proto, protocols), bounded(result, authResults)).Inc()
}

// MessageReceived counts one message accepted over SMTP; mode "mta" counts
// as In for Last24h, "submission" as Out.
func (r *Recorder) MessageReceived(mode string) {
	if r == nil {
		return
	}
	mode = bounded(mode, modes)
	r.received.WithLabelValues(mode).Inc()
	switch mode {
	case "mta":
		r.day.add(r.now(), 1, 0, 0)
	case "submission":
		r.day.add(r.now(), 0, 1, 0)
	}
}

// MessageRejected counts one refused SMTP command.
func (r *Recorder) MessageRejected(stage, reason string, temporary bool) {
	if r == nil {
		return
	}
	class := "permanent"
	if temporary {
		class = "temporary"
	}
	r.rejected.WithLabelValues(bounded(stage, stages), bounded(reason, reasons), bounded(class, classes)).Inc()
	r.day.add(r.now(), 0, 0, 1)
}

// LocalDelivery counts one local copy and, when stored, how long making
// it durable took.
func (r *Recorder) LocalDelivery(stored bool, d time.Duration) {
	if r == nil {
		return
	}
	if !stored {
		r.deliveries.WithLabelValues("failed").Inc()
		return
	}
	r.deliveries.WithLabelValues("stored").Inc()
	r.storeCommit.Observe(d.Seconds())
}

// DeliveryAttempt counts one outbound attempt's result for one recipient.
func (r *Recorder) DeliveryAttempt(result string) {
	if r == nil {
		return
	}
	r.attempts.WithLabelValues(bounded(result, attemptResults)).Inc()
}

// DNSLookup records one exchange with the resolver.
func (r *Recorder) DNSLookup(qtype, result string, d time.Duration) {
	if r == nil {
		return
	}
	r.dns.WithLabelValues(bounded(qtype, dnsTypes), bounded(result, dnsResults)).Observe(d.Seconds())
}

// IMAPCommand records one IMAP command's time to its tagged reply. IDLE
// lasts as long as the client wants and is not recorded.
func (r *Recorder) IMAPCommand(name string, d time.Duration) {
	if r == nil || name == "IDLE" {
		return
	}
	r.imapCommand.WithLabelValues(bounded(name, imapCommands)).Observe(d.Seconds())
}

// queueCollector asks QueueStats once per scrape for both gauges.
type queueCollector struct {
	log    *slog.Logger
	mu     sync.Mutex
	stats  QueueStats
	now    func() time.Time
	size   *prometheus.Desc
	oldest *prometheus.Desc
}

func newQueueCollector(log *slog.Logger) *queueCollector {
	return &queueCollector{
		log:    log,
		size:   prometheus.NewDesc("posthouse_queue_messages", "Messages in the outbound queue.", nil, nil),
		oldest: prometheus.NewDesc("posthouse_queue_oldest_seconds", "Age of the oldest message in the outbound queue (0 when empty).", nil, nil),
	}
}

func (c *queueCollector) set(f QueueStats, now func() time.Time) {
	c.mu.Lock()
	c.stats, c.now = f, now
	c.mu.Unlock()
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.oldest
}

// queueStatsTimeout bounds the queue query of one scrape.
const queueStatsTimeout = 5 * time.Second

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	f, now := c.stats, c.now
	c.mu.Unlock()
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), queueStatsTimeout)
	defer cancel()
	n, oldest, err := f(ctx)
	if err != nil {
		c.log.Error("queue metrics", "err", err)
		ch <- prometheus.NewInvalidMetric(c.size, err)
		return
	}
	age := 0.0
	if n > 0 && !oldest.IsZero() {
		age = max(0, now().Sub(oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
