package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/relay"
)

// httpAddr returns the address serve's --http server listens on, from its
// log.
func (s *servedDir) httpAddr(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`msg="http listening".* addr=(\S+)`).FindStringSubmatch(s.log.String())
	if m == nil {
		t.Fatalf("no 'http listening' in the log:\n%s", s.log.String())
	}
	return m[1]
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

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

// TestServeMetrics runs serve with --http and checks that /metrics counts
// exactly the decisions made, that /healthz and /readyz answer 200, and
// that the relay is discoverable as a micro service with its statistics.
func TestServeMetrics(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			s := serveEmbedded(t, e.xkey, "--http", "127.0.0.1:0")
			base := "http://" + s.httpAddr(t)
			s.addUser(t, "alice", "alice-pw-5k2m", "--account", "APP", "--pub", "orders.>")

			const allowed, denied = 3, 2
			// Each attempt with the right password is one allowed decision,
			// even if revocation (polling for the user add above) closes
			// the connection before the client sees it established.
			for range allowed {
				if nc, err := s.connect("alice", "alice-pw-5k2m"); err != nil {
					t.Logf("connect after an allowed decision: %v", err)
				} else {
					nc.Close()
				}
			}
			for range denied {
				if nc, err := s.connect("alice", "wrong-pw"); err == nil {
					nc.Close()
					t.Fatal("wrong password: connected")
				}
			}

			want := map[string]float64{
				`authrelay_decisions_total{reason="",result="allowed"}`:               allowed,
				`authrelay_decisions_total{reason="bad_credentials",result="denied"}`: denied,
				`authrelay_decision_duration_seconds_count`:                           allowed + denied,
				`authrelay_store_errors_total`:                                        0,
				`authrelay_lockouts_total`:                                            0,
				`authrelay_shed_total`:                                                0,
				`authrelay_queue_depth{lane="fast"}`:                                  0,
				`authrelay_queue_depth{lane="hash"}`:                                  0,
			}
			var got map[string]float64
			deadline := time.Now().Add(5 * time.Second)
			for {
				code, body := get(t, base+"/metrics")
				if code != http.StatusOK {
					t.Fatalf("/metrics: %d %s", code, body)
				}
				got = samples(t, body)
				if got[`authrelay_decision_duration_seconds_count`] == allowed+denied || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
				}
			}
			if _, ok := got[`authrelay_kicks_total`]; !ok {
				t.Error("authrelay_kicks_total missing")
			}
			n := 0
			for k := range got {
				if strings.HasPrefix(k, "authrelay_decisions_total{") {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%d decision series, want 2", n)
			}
			if got[`authrelay_verifications_total`] < 1 || got[`authrelay_cache_hits_total`]+got[`authrelay_cache_misses_total`] < 1 {
				t.Errorf("relay stats not exported: %v", got)
			}

			if code, body := get(t, base+"/healthz"); code != http.StatusOK {
				t.Errorf("/healthz: %d %s", code, body)
			}
			if code, body := get(t, base+"/readyz"); code != http.StatusOK {
				t.Errorf("/readyz: %d %s", code, body)
			}

			// The relay's own user discovers the relay as a micro service.
			secrets, err := deploy.Layout{Dir: s.dir}.LoadSecrets()
			if err != nil {
				t.Fatal(err)
			}
			nc, err := s.connect(secrets.RelayUser, secrets.RelayPassword)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			m, err := nc.Request("$SRV.STATS."+relay.ServiceName, nil, 2*time.Second)
			if err != nil {
				t.Fatalf("micro stats: %v", err)
			}
			var stats micro.Stats
			if err := json.Unmarshal(m.Data, &stats); err != nil {
				t.Fatal(err)
			}
			if stats.Version != "0.0.0-dev" || len(stats.Endpoints) != 1 ||
				stats.Endpoints[0].Subject != relay.Subject || stats.Endpoints[0].NumRequests != allowed+denied {
				t.Errorf("micro stats = %+v %+v, want one endpoint on %s with %d requests", stats.ServiceIdentity, stats.Endpoints, relay.Subject, allowed+denied)
			}

			s.stop()
			if _, err := http.Get(base + "/healthz"); err == nil {
				t.Error("http server still up after serve stopped")
			}
		})
	}
}
