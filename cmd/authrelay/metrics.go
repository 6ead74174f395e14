package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// Labels of authrelay_decisions_total's result.
const (
	resultAllowed = "allowed"
	resultDenied  = "denied"
)

// metrics are serve's Prometheus metrics, in a registry of their own. They
// count every decision the relay sent (relay.Observer) and read the
// relay's own counts (relay.Stats) at each scrape.
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
//     (Kick).
//   - with revocation on (watchRevocation, from relay.RevokeStats): kick
//     requests that failed and are retried, connection queries that did
//     not hear from every server, users whose revocation is unfinished,
//     and revocations given up because too many were unfinished.
//   - from relay.Stats: cache hits, misses and entries, verifications,
//     shed and dropped requests, queue depths, busy verifiers, hash time.
type metrics struct {
	reg         *prometheus.Registry
	decisions   *prometheus.CounterVec
	latency     prometheus.Histogram
	storeErrors prometheus.Counter
	lockouts    prometheus.Counter
	kicks       prometheus.Counter
}

// newMetrics returns serve's metrics, reading stats at each scrape. stats
// is typically (*relay.Relay).Stats.
func newMetrics(stats func() relay.Stats) *metrics {
	m := &metrics{
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
		statsCollector{stats: stats},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Decision implements relay.Observer.
func (m *metrics) Decision(o relay.Observation) {
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

// watchStore exports what the store could not write, read at each scrape:
//
//   - authrelay_audit_dropped_total: login events that will never be in
//     the audit trail (buffer or backlog full while the database could
//     not be written).
//   - authrelay_audit_waiting: login events waiting to be written (more
//     than a few hundred means the writes are failing or slow).
//   - authrelay_lockout_unrecorded_total: failed logins the database could
//     not record, enforced in memory by this relay instead.
//   - authrelay_lockout_memory_keys: lockout keys held in memory now.
func (m *metrics) watchStore(audit *store.AuditWriter, guard *store.Lockouts) {
	m.reg.MustRegister(
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

// Kick counts a client connection the relay had the server disconnect.
func (m *metrics) Kick() { m.kicks.Inc() }

// watchRevocation exports the relay's revocation counts, read at each
// scrape. stats is typically (*relay.Relay).RevokeStats.
func (m *metrics) watchRevocation(stats func() relay.RevokeStats) {
	m.reg.MustRegister(revokeCollector{stats: stats})
}

// revokeCollector exports relay.RevokeStats.
type revokeCollector struct {
	stats func() relay.RevokeStats
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
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(descKickFailures, prometheus.CounterValue, float64(s.KickFailures))
	ch <- prometheus.MustNewConstMetric(descQueryFailures, prometheus.CounterValue, float64(s.QueryFailures))
	ch <- prometheus.MustNewConstMetric(descRevokePending, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(descRevokeDropped, prometheus.CounterValue, float64(s.Dropped))
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

var _ relay.Observer = (*metrics)(nil)

// statsCollector exports relay.Stats, read at each scrape.
type statsCollector struct {
	stats func() relay.Stats
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
	s := c.stats()
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

// readyCheck is one condition of readiness: nil when it holds.
type readyCheck struct {
	name  string
	check func(ctx context.Context) error
}

// readyTimeout bounds each readiness check.
const readyTimeout = 2 * time.Second

// healthMux serves /metrics, /healthz (200 while the process runs) and
// /readyz (200 when every check holds, else 503 naming the first failure).
func healthMux(m *metrics, checks []readyCheck) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			err := c.check(ctx)
			cancel()
			if err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %s: %v\n", c.name, err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// serveHTTP listens on addr and serves h until stop is called; stop shuts
// the server down gracefully (bounded) and waits for it.
func serveHTTP(addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve: --http %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server failed", "err", err)
		}
	}()
	logger.Info("http listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			logger.Warn("http server shutdown", "err", err)
		}
		<-done
	}, nil
}

// serveReadyChecks are serve's readiness conditions: the keys are loaded,
// the relay answers on a live NATS connection, the database answers and
// its path still names the file the relay has open, the audit trail is
// being written, failed logins are being recorded, and a write transaction
// commits (probed at most every few seconds, so that a full disk or a
// read-only database shows without traffic).
func serveReadyChecks(r *relay.Relay, db *store.DB, issuer *accounts.Issuer, xkey *accounts.XKey, audit *store.AuditWriter, guard *store.Lockouts) []readyCheck {
	writable := store.NewWriteCheck(db, store.DefaultWriteProbeEvery)
	return []readyCheck{
		{"keys", func(context.Context) error {
			if issuer == nil || xkey == nil {
				return errors.New("issuer or xkey not loaded")
			}
			return nil
		}},
		{"nats", func(context.Context) error {
			if !r.Connected() {
				return errors.New("relay not connected to nats or not subscribed")
			}
			return nil
		}},
		{"database", db.Ping},
		// The path no longer names the file this relay serves: admin
		// changes go to another file (or none) and the next start would
		// serve something else.
		{"database file", func(context.Context) error { return db.CheckFile() }},
		{"audit", func(context.Context) error { return audit.Health() }},
		{"lockouts", guard.Health},
		// Last: the audit trail and the lockouts name what a failed
		// write lost; this one sees the fault without any traffic.
		{"database writable", writable.Health},
	}
}

// serviceVersion turns the build's version into the semantic version a
// micro service must report: "v1.2.3" → "1.2.3", anything else
// (a development build) → "0.0.0-dev".
func serviceVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semver.MatchString(v) {
		return v
	}
	return "0.0.0-dev"
}

// semver is the semantic version syntax nats.go's micro package accepts
// (https://semver.org).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
