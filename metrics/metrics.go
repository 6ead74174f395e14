// Package metrics owns what a running relay tells its operator over HTTP:
// the Prometheus metrics of the relay and its store (Metrics, an
// Observer of the relay), the readiness checks behind /readyz, and the
// server of /metrics, /healthz and /readyz.
//
// The metrics read the relay, the store's database file, its audit writer
// and its lockouts at each scrape, and count what the relay reports as it
// happens (relay.Observer). Create them with New, pass them to relay.New as
// Config.Observer, and once the relay exists attach it with WatchRelay:
//
//	m := metrics.New()
//	m.WatchStore(db, audit, guard)
//	cfg.Observer = m
//	r, err := relay.New(cfg)
//	…
//	m.WatchRelay(r)
//	stop, err := metrics.Serve(addr, metrics.Mux(m, metrics.ReadyChecks(r, db, audit, guard)), logger)
//
// It imports relay, store and the Prometheus client; never cmd.
package metrics

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// Labels of authrelay_decisions_total's result.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
)

// Metrics are a relay's Prometheus metrics, in a registry of their own.
// They count every decision the relay sent and every connection it kicked
// (relay.Observer), and read the relay's own counts at each scrape
// (WatchRelay, WatchRevocation, WatchStore).
//
//   - authrelay_decisions_total{result,reason}: decisions sent; result is
//     "allowed" (reason "") or "denied" with the relay's reason code.
//   - authrelay_decision_duration_seconds: from a request's arrival to its
//     answer, for every decision sent.
//   - authrelay_store_errors_total: internal_error decisions caused by the
//     user store failing (a lockout check, password check or role lookup
//     returning an unexpected error); not counted: internal errors from a
//     user record that cannot be issued, and store errors the relay logs
//     and survives (recording a failed login, reading the cache generation).
//   - authrelay_lockouts_total: logins refused because the name or address
//     was locked out (locked_out denials), not the lockouts imposed.
//   - authrelay_kicks_total: connections the relay had the server drop
//     (relay.Observer's Kick).
//   - Go runtime and process metrics.
//
// A Metrics is safe for concurrent use. Each Watch method registers its
// metrics once: calling one twice panics.
type Metrics struct {
	reg         *prometheus.Registry
	decisions   *prometheus.CounterVec
	latency     prometheus.Histogram
	storeErrors prometheus.Counter
	lockouts    prometheus.Counter
	kicks       prometheus.Counter
}

var _ relay.Observer = (*Metrics)(nil)

// New returns the metrics that need no relay and no store: the decision and
// kick counters, and the Go runtime and process metrics.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authrelay_decisions_total",
			Help: "Login decisions sent, by result (allowed, denied) and denial reason.",
		}, []string{"result", "reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "authrelay_decision_duration_seconds",
			Help:    "Time from a login request's arrival to its answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2},
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authrelay_store_errors_total",
			Help: "Logins refused with internal_error because the user store failed.",
		}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authrelay_lockouts_total",
			Help: "Logins refused because the username or client address was locked out.",
		}),
		kicks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "authrelay_kicks_total",
			Help: "Client connections the relay had the server disconnect.",
		}),
	}
	m.reg.MustRegister(m.decisions, m.latency, m.storeErrors, m.lockouts, m.kicks,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Decision implements relay.Observer.
func (m *Metrics) Decision(o relay.Observation) {
	result := resultAllowed
	if !o.Allowed {
		result = resultDenied
	}
	m.decisions.WithLabelValues(result, o.Reason).Inc()
	if o.Reason != relay.ReasonRejectedByServer {
		// Not a decision sent but the server's verdict on one, which was
		// timed when it was sent.
		m.latency.Observe(o.Latency.Seconds())
	}
	if o.StoreError {
		m.storeErrors.Inc()
	}
	if o.Reason == relay.ReasonLockedOut {
		m.lockouts.Inc()
	}
}

// Kick implements relay.Observer: it counts a client connection the relay
// had the server disconnect.
func (m *Metrics) Kick(relay.Kick) { m.kicks.Inc() }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Relay is what the metrics and the readiness checks read from a relay;
// *relay.Relay implements it.
type Relay interface {
	Stats() relay.Stats
	Health() relay.Health
	// Connected reports whether the relay is connected to NATS and
	// subscribed.
	Connected() bool
}

var _ Relay = (*relay.Relay)(nil)

// WatchRelay exports r's counts, read at each scrape: from relay.Stats,
// cache hits, misses and entries, verifications, shed and dropped
// requests, queue depths, busy verifiers and hash time; from relay.Health,
// the clock skew, key faults and queue group membership (see
// healthCollector).
func (m *Metrics) WatchRelay(r Relay) {
	m.reg.MustRegister(statsCollector{r: r}, healthCollector{r: r})
}

// Revocation is what WatchRevocation reads; *relay.Relay implements it.
type Revocation interface {
	RevokeStats() relay.RevokeStats
}

// WatchRevocation exports r's revocation counts, read at each scrape: kick
// requests that failed and are retried, connection queries that did not
// hear from every server, users whose revocation is unfinished, and
// revocations given up because too many were unfinished. Call it only
// when revocation is on (relay.Config.Revoke).
func (m *Metrics) WatchRevocation(r Revocation) {
	m.reg.MustRegister(revokeCollector{r: r})
}

// WatchStore exports, read at each scrape, the state of the database file
// and what the store could not write:
//
//   - authrelay_database_file_replaced: 1 while the database's path no
//     longer names the file db has open (store.DB.CheckFile), else 0.
//   - authrelay_wal_bytes: the size of the write-ahead log file.
//   - authrelay_audit_dropped_total: login events that will never be in
//     the audit trail (buffer or backlog full while the database could
//     not be written).
//   - authrelay_audit_waiting: login events waiting to be written (more
//     than a few hundred means the writes are failing or slow).
//   - authrelay_lockout_unrecorded_total: failed logins the database could
//     not record, enforced in memory by this relay instead.
//   - authrelay_lockout_memory_keys: lockout keys held in memory now.
//
// db, audit and guard must not be nil.
func (m *Metrics) WatchStore(db *store.DB, audit *store.AuditWriter, guard *store.Lockouts) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_database_file_replaced",
			Help: "1 while the database path no longer names the file the relay has open (removed or replaced), else 0.",
		}, func() float64 {
			if errors.Is(db.CheckFile(), store.ErrFileReplaced) {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_wal_bytes",
			Help: "Size of the database's write-ahead log file in bytes.",
		}, func() float64 {
			size, err := db.WALSize()
			if err != nil {
				return 0
			}
			return float64(size)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authrelay_audit_dropped_total",
			Help: "Login events dropped from the audit trail: the buffer or backlog was full while the database could not be written.",
		}, func() float64 { return float64(audit.Dropped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_audit_waiting",
			Help: "Login events waiting to be written to the audit trail.",
		}, func() float64 { return float64(audit.Waiting()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authrelay_lockout_unrecorded_total",
			Help: "Failed logins the database could not record, enforced in memory by this relay instead.",
		}, func() float64 { return float64(guard.Memory().Unrecorded) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_lockout_memory_keys",
			Help: "Lockout keys held in memory because the database could not record their failures.",
		}, func() float64 { return float64(guard.Memory().Keys) }),
	)
}

// revokeCollector exports relay.RevokeStats.
type revokeCollector struct {
	r Revocation
}

var (
	descKickFailures = prometheus.NewDesc("authrelay_kick_failures_total",
		"Kick requests that failed on a transient error (timeout, no responders, admin connection down); each is retried.", nil, nil)
	descQueryFailures = prometheus.NewDesc("authrelay_revoke_query_failures_total",
		"Queries for a changed user's connections that did not hear from every server; each is retried.", nil, nil)
	descRevokePending = prometheus.NewDesc("authrelay_revocations_pending",
		"Users whose live connections are still being revoked.", nil, nil)
	descRevokeDropped = prometheus.NewDesc("authrelay_revocations_dropped_total",
		"Revocations given up because too many were unfinished: those connections live until their JWT expires.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c revokeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKickFailures, descQueryFailures, descRevokePending, descRevokeDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c revokeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.RevokeStats()
	ch <- prometheus.MustNewConstMetric(descKickFailures, prometheus.CounterValue, float64(s.KickFailures))
	ch <- prometheus.MustNewConstMetric(descQueryFailures, prometheus.CounterValue, float64(s.QueryFailures))
	ch <- prometheus.MustNewConstMetric(descRevokePending, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(descRevokeDropped, prometheus.CounterValue, float64(s.Dropped))
}

// statsCollector exports relay.Stats, read at each scrape.
type statsCollector struct {
	r Relay
}

var (
	descCacheHits = prometheus.NewDesc("authrelay_cache_hits_total",
		"Logins answered from the credential cache, without a password verification.", nil, nil)
	descCacheMisses = prometheus.NewDesc("authrelay_cache_misses_total",
		"Logins that looked in the credential cache and had to verify the password.", nil, nil)
	descCacheEntries = prometheus.NewDesc("authrelay_cache_entries",
		"Credentials in the cache now.", nil, nil)
	descVerifications = prometheus.NewDesc("authrelay_verifications_total",
		"Password verifications run.", nil, nil)
	descShed = prometheus.NewDesc("authrelay_shed_total",
		"Logins refused with overloaded: no password verifier free before the deadline.", nil, nil)
	descDropped = prometheus.NewDesc("authrelay_dropped_total",
		"Login requests dropped unanswered because the relay's queue was full.", nil, nil)
	descQueueDepth = prometheus.NewDesc("authrelay_queue_depth",
		"Login requests waiting now, by lane: fast (any decision) or hash (a password verification).", []string{"lane"}, nil)
	descHashBusy = prometheus.NewDesc("authrelay_hash_busy",
		"Password verifications running now.", nil, nil)
	descHashTime = prometheus.NewDesc("authrelay_hash_time_seconds",
		"Moving average of a password verification's time, answer included.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheHits, descCacheMisses, descCacheEntries,
		descVerifications, descShed, descDropped, descQueueDepth, descHashBusy, descHashTime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descCacheHits, s.CacheHits)
	counter(descCacheMisses, s.CacheMisses)
	gauge(descCacheEntries, float64(s.CacheEntries))
	counter(descVerifications, s.Verifications)
	counter(descShed, s.Shed)
	counter(descDropped, s.Dropped)
	gauge(descQueueDepth, float64(s.Queued), "fast")
	gauge(descQueueDepth, float64(s.HashQueued), "hash")
	gauge(descHashBusy, float64(s.HashBusy))
	gauge(descHashTime, s.HashTime.Seconds())
}

// WatchCluster exports, in cluster mode, the position of this node's copy
// of the cluster log: authrelay_cluster_applied_seq (the last entry
// applied) and authrelay_cluster_lag (entries the log holds that the copy
// has not applied, as of the last time the node read the log's end).
// position returns both.
func (m *Metrics) WatchCluster(position func() (applied, last uint64)) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_cluster_applied_seq",
			Help: "The last cluster log entry this node's copy has applied.",
		}, func() float64 { a, _ := position(); return float64(a) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_cluster_lag",
			Help: "Cluster log entries this node's copy has not applied yet (the log's last sequence minus the applied one).",
		}, func() float64 {
			a, l := position()
			if l < a {
				return 0
			}
			return float64(l - a)
		}),
	)
}

// WatchEvents exports, in cluster mode, what this node sent on one of its
// node events streams (kind "lockouts" or "audit", the label stream):
// authrelay_cluster_events_sent_total (events JetStream stored),
// authrelay_cluster_events_waiting (held while JetStream cannot take them)
// and authrelay_cluster_events_lost_total (never sent: the buffer was
// full; the other nodes miss them). stats returns the three.
func (m *Metrics) WatchEvents(kind string, stats func() (sent, lost uint64, waiting int)) {
	labels := prometheus.Labels{"stream": kind}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authrelay_cluster_events_sent_total", ConstLabels: labels,
			Help: "Node events (lockout inputs, login audit rows) this node sent to the others, stored by JetStream.",
		}, func() float64 { s, _, _ := stats(); return float64(s) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authrelay_cluster_events_lost_total", ConstLabels: labels,
			Help: "Node events never sent to the other nodes: the buffer was full while JetStream could not take them.",
		}, func() float64 { _, l, _ := stats(); return float64(l) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_cluster_events_waiting", ConstLabels: labels,
			Help: "Node events held to be sent while JetStream cannot take them.",
		}, func() float64 { _, _, w := stats(); return float64(w) }),
	)
}
