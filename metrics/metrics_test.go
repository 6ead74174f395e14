package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/relay"
)

// samples parses the Prometheus text format into series → value.
func samples(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// scrape returns h's /metrics, parsed.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body.String())
	}
	return samples(t, w.Body.String())
}

// fixedRelay is a Relay and Revocation whose counts the test sets, for
// values a running relay does not show on demand (a queue 4 deep).
type fixedRelay struct {
	stats     relay.Stats
	health    relay.Health
	revoke    relay.RevokeStats
	connected bool
}

func (f fixedRelay) Stats() relay.Stats             { return f.stats }
func (f fixedRelay) Health() relay.Health           { return f.health }
func (f fixedRelay) Connected() bool                { return f.connected }
func (f fixedRelay) RevokeStats() relay.RevokeStats { return f.revoke }

// TestReadyz checks /readyz against checks the test sets: 200 only while
// every check holds, else 503 naming the failing one, and recovery; and
// /healthz.
func TestReadyz(t *testing.T) {
	var natsErr error
	checks := []Check{
		{"keys", func(context.Context) error { return nil }},
		{"nats", func(context.Context) error { return natsErr }},
		{"database", func(ctx context.Context) error { return ctx.Err() }},
	}
	mux := Mux(New(), checks)
	ready := func() (int, string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, w.Body.String()
	}
	if code, body := ready(); code != http.StatusOK || body != "ok\n" {
		t.Errorf("ready: %d %q", code, body)
	}
	natsErr = errors.New("relay not connected")
	if code, body := ready(); code != http.StatusServiceUnavailable || body != "not ready: nats: relay not connected\n" {
		t.Errorf("nats down: %d %q", code, body)
	}
	natsErr = nil
	if code, _ := ready(); code != http.StatusOK {
		t.Errorf("recovered: %d", code)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != http.StatusOK || w.Body.String() != "ok\n" {
		t.Errorf("/healthz: %d %q", w.Code, w.Body.String())
	}
}

// TestMetricsObserver checks the counters derived from observations and
// the relay's and revocation's counts as exported.
func TestMetricsObserver(t *testing.T) {
	m := New()
	r := fixedRelay{
		stats:  relay.Stats{Queued: 4, HashQueued: 2, Shed: 7},
		revoke: relay.RevokeStats{KickFailures: 3, QueryFailures: 2, Pending: 5, Dropped: 1},
	}
	m.WatchRelay(r)
	m.WatchRevocation(r)
	m.Decision(relay.Observation{Reason: relay.ReasonLockedOut, Latency: time.Millisecond})
	m.Decision(relay.Observation{Reason: relay.ReasonInternalError, StoreError: true, Latency: time.Millisecond})
	m.Decision(relay.Observation{Reason: relay.ReasonInternalError, Latency: time.Millisecond})
	m.Kick(relay.Kick{User: "alice", ServerID: "S1", ClientID: 1})
	got := scrape(t, m.Handler())
	for k, v := range map[string]float64{
		`authrelay_lockouts_total`:     1,
		`authrelay_store_errors_total`: 1,
		`authrelay_kicks_total`:        1,
		`authrelay_decisions_total{reason="internal_error",result="denied"}`: 2,
		`authrelay_decision_duration_seconds_count`:                          3,
		`authrelay_queue_depth{lane="fast"}`:                                 4,
		`authrelay_queue_depth{lane="hash"}`:                                 2,
		`authrelay_shed_total`:                                               7,
		`authrelay_kick_failures_total`:                                      3,
		`authrelay_revoke_query_failures_total`:                              2,
		`authrelay_revocations_pending`:                                      5,
		`authrelay_revocations_dropped_total`:                                1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestMetricsWithoutRevocation: with revocation off, the kick counter is
// exported (at 0) and the revocation's own series are not.
func TestMetricsWithoutRevocation(t *testing.T) {
	m := New()
	m.WatchRelay(fixedRelay{})
	got := scrape(t, m.Handler())
	if v, ok := got[`authrelay_kicks_total`]; !ok || v != 0 {
		t.Errorf("authrelay_kicks_total = %v (present %v), want 0", v, ok)
	}
	for _, k := range []string{`authrelay_kick_failures_total`, `authrelay_revoke_query_failures_total`,
		`authrelay_revocations_pending`, `authrelay_revocations_dropped_total`} {
		if _, ok := got[k]; ok {
			t.Errorf("%s exported with revocation off", k)
		}
	}
}

// TestMetricsRejectedByServer checks that an answer the server rejected is
// counted as a denial with its reason, and is not a decision's latency;
// and the health series.
func TestMetricsRejectedByServer(t *testing.T) {
	m := New()
	m.WatchRelay(fixedRelay{health: relay.Health{SkewKnown: true,
		Skew:            relay.ClockSkew{Skew: 2 * time.Second, Resolution: time.Second / 2},
		AnswersRejected: 1, InQueueGroup: false}})
	m.Decision(relay.Observation{Latency: time.Millisecond, Allowed: true})
	m.Decision(relay.Observation{Reason: relay.ReasonRejectedByServer})
	got := scrape(t, m.Handler())
	for k, v := range map[string]float64{
		`authrelay_decisions_total{reason="rejected_by_server",result="denied"}`: 1,
		`authrelay_decision_duration_seconds_count`:                              1,
		`authrelay_answers_rejected_total`:                                       1,
		`authrelay_clock_skew_seconds`:                                           2,
		`authrelay_clock_skew_resolution_seconds`:                                0.5,
		`authrelay_queue_group_member`:                                           0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// TestServe: Serve logs the address it listens on, serves until stop, and
// refuses an address it cannot listen on with net.Listen's error (serve
// adds the flag and the address).
func TestServe(t *testing.T) {
	logs := &syncBuffer{}
	stop, err := Serve("127.0.0.1:0", Mux(New(), nil), newLogger(logs))
	if err != nil {
		t.Fatal(err)
	}
	_, addr, ok := strings.Cut(logs.String(), "addr=")
	if !ok || !strings.Contains(logs.String(), `msg="http listening"`) {
		t.Fatalf("no 'http listening' with its addr in the log: %q", logs.String())
	}
	url := "http://" + strings.TrimSpace(addr) + "/healthz"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	stop()
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Error("served after stop")
	}
	if _, err := Serve("127.0.0.1:99999", Mux(New(), nil), newLogger(logs)); err == nil || !strings.Contains(err.Error(), "listen tcp") {
		t.Errorf("Serve on a bad address: %v, want net.Listen's error", err)
	}
}

// TestWatchCluster: the copy's position and its lag behind the log's end,
// never negative when the end was read before the copy moved past it.
func TestWatchCluster(t *testing.T) {
	m := New()
	applied, last := uint64(5), uint64(8)
	m.WatchCluster(func() (uint64, uint64) { return applied, last })
	got := scrape(t, m.Handler())
	if got["authrelay_cluster_applied_seq"] != 5 || got["authrelay_cluster_lag"] != 3 {
		t.Errorf("applied %v, lag %v; want 5, 3", got["authrelay_cluster_applied_seq"], got["authrelay_cluster_lag"])
	}
	applied = 9
	if got := scrape(t, m.Handler()); got["authrelay_cluster_lag"] != 0 {
		t.Errorf("lag %v with the copy past the last end read, want 0", got["authrelay_cluster_lag"])
	}
}
