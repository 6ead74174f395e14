package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu    sync.Mutex
	obs   []Observation
	kicks []Kick
}

func (r *recorder) Decision(o Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.obs = append(r.obs, o)
}

func (r *recorder) Kick(k Kick) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kicks = append(r.kicks, k)
}

func (r *recorder) kicked() []Kick {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Kick(nil), r.kicks...)
}

func (r *recorder) all() []Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Observation(nil), r.obs...)
}

// TestMicroService checks that the relay answers logins as the micro
// service endpoint, discoverable with $SRV.PING|INFO|STATS from the callout
// account, with endpoint statistics counting the logins, and that the
// Observer hears of every decision.
func TestMicroService(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e)
			rec := &recorder{}
			h.startRelay(func(c *Config) { c.Observer = rec; c.ServiceVersion = "1.2.3" })

			for range 3 {
				h.mustConnect(t, "alice", "alice-pw-7f3a").nc.Close()
			}
			for range 2 {
				if _, err := h.connect(t, "alice", "wrong-pw"); err == nil {
					t.Fatal("wrong password: connected")
				}
			}
			h.users.setHook(func(context.Context, string) error { return errors.New("disk on fire") })
			if _, err := h.connect(t, "alice", "alice-pw-7f3a"); err == nil {
				t.Fatal("store failing: connected")
			}
			h.users.setHook(nil)

			waitFor(t, func() bool { return len(rec.all()) == 6 }, "6 observations")
			got := map[string]int{}
			stores := 0
			for _, o := range rec.all() {
				got[fmt.Sprintf("%v/%s", o.Allowed, o.Reason)]++
				if o.StoreError {
					stores++
				}
				if o.Latency <= 0 {
					t.Errorf("observation %+v: latency not positive", o)
				}
			}
			want := map[string]int{"true/": 3, "false/" + ReasonBadCredentials: 2, "false/" + ReasonInternalError: 1}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("observations = %v, want %v", got, want)
			}
			if stores != 1 {
				t.Errorf("store errors = %d, want 1", stores)
			}

			// Discovery works for any user of the callout account.
			probe, err := nats.Connect(h.srv.ClientURL(), nats.UserInfo("probe", "probe-pw"))
			if err != nil {
				t.Fatal(err)
			}
			defer probe.Close()

			var ping micro.Ping
			srvRequest(t, probe, "$SRV.PING.authrelay", &ping)
			if ping.Name != ServiceName || ping.Version != "1.2.3" || ping.ID == "" {
				t.Errorf("ping = %+v", ping)
			}
			var info micro.Info
			srvRequest(t, probe, "$SRV.INFO.authrelay."+ping.ID, &info)
			if len(info.Endpoints) != 1 || info.Endpoints[0].Subject != Subject || info.Endpoints[0].QueueGroup != DefaultQueue {
				t.Errorf("info endpoints = %+v, want one on %s in queue %s", info.Endpoints, Subject, DefaultQueue)
			}
			var stats micro.Stats
			srvRequest(t, probe, "$SRV.STATS.authrelay", &stats)
			if len(stats.Endpoints) != 1 {
				t.Fatalf("stats endpoints = %+v", stats.Endpoints)
			}
			ep := stats.Endpoints[0]
			if ep.Name != serviceEndpoint || ep.NumRequests != 6 || ep.NumErrors != 0 {
				t.Errorf("endpoint stats = %+v, want %s with 6 requests, 0 errors", ep, serviceEndpoint)
			}
			var data serviceStats
			if err := json.Unmarshal(ep.Data, &data); err != nil {
				t.Fatalf("stats data %s: %v", ep.Data, err)
			}
			if data.Verifications == 0 {
				t.Errorf("stats data = %+v, want verifications", data)
			}
		})
	}
}

// srvRequest sends an empty request on subject and decodes the JSON answer
// into v.
func srvRequest(t *testing.T, nc *nats.Conn, subject string, v any) {
	t.Helper()
	m, err := nc.Request(subject, nil, 2*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		t.Fatalf("request %s: %v: %s", subject, err, m.Data)
	}
}

// TestConnected checks that Connected follows the relay's connection:
// false before Run, true once ready, false while the server is down, true
// again after it is back, false after shutdown.
func TestConnected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sc := serverConf{listen: addr}
	h := newHarnessConf(t, envs()[1], sc)
	r, err := New(Config{Issuer: h.issuer, Users: h.users})
	if err != nil {
		t.Fatal(err)
	}
	if r.Connected() {
		t.Error("Connected before Run")
	}
	h.startRelay(nil)
	if !h.relay.Connected() {
		t.Fatal("not Connected once ready")
	}
	h.srv.Shutdown()
	h.srv.WaitForShutdown()
	waitFor(t, func() bool { return !h.relay.Connected() }, "Connected false with the server down")
	h.srv, _ = runServer(t, sc.text(h.issuer.PublicKey(), h.xkey))
	waitFor(t, h.relay.Connected, "Connected true with the server back")
	h.mustConnect(t, "alice", "alice-pw-7f3a").nc.Close()
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if h.relay.Connected() {
		t.Error("Connected after Run returned")
	}
}
