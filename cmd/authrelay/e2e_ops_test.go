package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/relay"
)

// TestEndToEndOps checks the README's Operations section with the real
// binaries: two relays with --http on one stock nats-server, discovered
// with the nats CLI's micro commands, counted by their Prometheus metrics,
// and reporting on /readyz when the server goes away and comes back.
func TestEndToEndOps(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr).wantCode(t, exitOK)
	ns := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, ns)

	// Users are read at each login, so they may be added before the relays
	// run. ops-carol only ever gets wrong passwords, fewer than the lockout
	// threshold (5), so every one of them is denied as bad_credentials.
	users := map[string]string{"ops-alice": "alice-pass", "ops-bob": "bob-pass", "ops-carol": "carol-pass"}
	for name, pass := range users {
		e.authrelay(t, pass+"\n", "user", "add", name, "--dir", e.dir, "--account", "APP", "--password-stdin").wantCode(t, exitOK)
	}

	relays := []*opsRelay{
		e.startOpsRelay(t, "relay A"),
		e.startOpsRelay(t, "relay B"),
	}
	stopped := false
	stopRelays := func(t *testing.T) {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		for _, r := range relays {
			if code := r.p.stop(t, syscall.SIGTERM); code != 0 {
				t.Errorf("%s exited with status %d after SIGTERM, want 0 (a clean drain)", r.p.name, code)
			}
		}
	}
	t.Cleanup(func() { stopRelays(t) })
	for _, r := range relays {
		r.waitReady(t, e, 20*time.Second)
	}

	s := e.secrets(t)
	// --password=VALUE, not --password VALUE: the generated password is
	// base64url and starts with '-' once in 64 inits, which natscli's
	// flag parser would take for a flag.
	asRelay := []string{"--user=" + s.RelayUser, "--password=" + s.RelayPassword}

	// Both instances register before /readyz says 200, but discovery is a
	// scatter-gather: poll until both answer within natscli's window.
	var ids []string
	e.waitFor(t, 20*time.Second, "nats micro ls to list 2 authrelay instances", func() error {
		r := e.nats(t, append(asRelay, "micro", "ls", "--json")...)
		if r.code != 0 {
			return fmt.Errorf("exit %d: %s", r.code, r.output())
		}
		var infos []micro.Info
		if err := json.Unmarshal([]byte(r.stdout), &infos); err != nil {
			return fmt.Errorf("micro ls --json: %v\n%s", err, r)
		}
		ids = ids[:0]
		for _, in := range infos {
			if in.Name == relay.ServiceName {
				ids = append(ids, in.ID)
			}
		}
		if len(ids) != 2 {
			return fmt.Errorf("%d instances of %s, want 2:\n%s", len(ids), relay.ServiceName, r)
		}
		return nil
	})
	slices.Sort(ids)
	if ids[0] == ids[1] {
		t.Fatalf("both instances have the ID %s", ids[0])
	}

	t.Run("micro discovery", func(t *testing.T) {
		r := e.nats(t, append(asRelay, "micro", "ls")...)
		r.wantCode(t, 0)
		r.wantOutput(t, "All Services")
		r.wantOutput(t, relay.ServiceName)
		for _, id := range ids {
			r.wantOutput(t, id)
		}

		r = e.nats(t, append(asRelay, "micro", "info", relay.ServiceName)...)
		r.wantCode(t, 0)
		t.Logf("nats micro info %s:\n%s", relay.ServiceName, r.stdout)
		for _, want := range []string{
			"Service: " + relay.ServiceName + " (",
			"Name: auth",
			"Subject: " + relay.Subject,
			"Queue Group: authrelay",
			`"cache_hits"`,
		} {
			r.wantOutput(t, want)
		}

		r = e.nats(t, append(asRelay, "micro", "info", relay.ServiceName, "--json")...)
		r.wantCode(t, 0)
		var info struct {
			Info  micro.Info  `json:"info"`
			Stats micro.Stats `json:"stats"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
			t.Fatalf("micro info --json: %v\n%s", err, r)
		}
		if info.Info.Name != relay.ServiceName || !slices.Contains(ids, info.Info.ID) {
			t.Errorf("micro info --json names %s (%s), want %s with one of the IDs %v", info.Info.Name, info.Info.ID, relay.ServiceName, ids)
		}
		if got, want := info.Info.Metadata["sealed"], "true"; got != want {
			t.Errorf("micro info metadata sealed = %q, want %q (init configures an xkey)", got, want)
		}
		if len(info.Info.Endpoints) != 1 || info.Info.Endpoints[0].Name != "auth" ||
			info.Info.Endpoints[0].Subject != relay.Subject || info.Info.Endpoints[0].QueueGroup != "authrelay" {
			t.Errorf("micro info endpoints = %+v, want one: auth on %s in queue group authrelay", info.Info.Endpoints, relay.Subject)
		}

		r = e.nats(t, append(asRelay, "micro", "stats", relay.ServiceName)...)
		r.wantCode(t, 0)
		r.wantOutput(t, relay.ServiceName+" Service Statistics")
		r.wantOutput(t, "authrelay")
		for _, id := range ids {
			r.wantOutput(t, id)
		}
	})

	// N logins that succeed and M that fail with a wrong password, all
	// through nats.go. Both relays were ready, so each must get its answer.
	const wrong = 4 // below the lockout threshold of 5
	var allowed int
	login := func(t *testing.T, user string) {
		t.Helper()
		nc, err := e.connect(user, users[user])
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		nc.Close()
		allowed++
	}
	for i := range 10 {
		login(t, []string{"ops-alice", "ops-bob"}[i%2])
	}
	for range wrong {
		nc, err := e.connect("ops-carol", "not-carols-pass")
		if err == nil {
			nc.Close()
			t.Fatalf("ops-carol connected with a wrong password")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("connect as ops-carol with a wrong password: %v, want %v", err, nats.ErrAuthorization)
		}
	}

	t.Run("metrics count the decisions", func(t *testing.T) {
		const allowedKey = `authrelay_decisions_total{reason="",result="allowed"}`
		const deniedKey = `authrelay_decisions_total{reason="bad_credentials",result="denied"}`
		// The relay counts a decision after sending it: the client may be
		// told before the counter moves, so poll.
		var perRelay []float64 // every decision, by relay
		var gotAllowed, gotDenied float64
		e.waitFor(t, 10*time.Second, fmt.Sprintf("the relays' metrics to add up to %d allowed and %d denied", allowed, wrong), func() error {
			perRelay, gotAllowed, gotDenied = nil, 0, 0
			for _, r := range relays {
				m, err := r.metrics()
				if err != nil {
					return err
				}
				gotAllowed += m[allowedKey]
				gotDenied += m[deniedKey]
				var all float64
				for k, v := range m {
					if strings.HasPrefix(k, "authrelay_decisions_total{") {
						all += v
					}
				}
				perRelay = append(perRelay, all)
			}
			if gotAllowed != float64(allowed) || gotDenied != wrong {
				return fmt.Errorf("allowed %v, denied bad_credentials %v", gotAllowed, gotDenied)
			}
			return nil
		})
		t.Logf("decisions per relay: %v (%v allowed, %v denied in all)", perRelay, gotAllowed, gotDenied)
		if total := perRelay[0] + perRelay[1]; total != float64(allowed+wrong) {
			t.Errorf("the relays made %v decisions in all, want %d: some were neither allowed nor bad_credentials", total, allowed+wrong)
		}

		// micro stats counts the same requests, instance by instance: the
		// sorted per-instance counts equal the sorted per-relay decisions.
		r := e.nats(t, append(asRelay, "micro", "stats", relay.ServiceName, "--json")...)
		r.wantCode(t, 0)
		var stats []micro.Stats
		if err := json.Unmarshal([]byte(r.stdout), &stats); err != nil {
			t.Fatalf("micro stats --json: %v\n%s", err, r)
		}
		var requests []float64
		var verifications uint64
		for _, st := range stats {
			if st.Name != relay.ServiceName || len(st.Endpoints) != 1 || st.Endpoints[0].Subject != relay.Subject {
				t.Fatalf("micro stats --json: instance %s has endpoints %+v, want one on %s", st.ID, st.Endpoints, relay.Subject)
			}
			ep := st.Endpoints[0]
			requests = append(requests, float64(ep.NumRequests))
			if ep.NumErrors != 0 {
				t.Errorf("instance %s reports %d endpoint errors (last %q)", st.ID, ep.NumErrors, ep.LastError)
			}
			var data struct {
				Verifications uint64 `json:"verifications"`
			}
			if err := json.Unmarshal(ep.Data, &data); err != nil {
				t.Errorf("instance %s: endpoint data %s: %v", st.ID, ep.Data, err)
			}
			verifications += data.Verifications
		}
		slices.Sort(requests)
		slices.Sort(perRelay)
		t.Logf("micro stats: requests per instance %v, %d password verifications", requests, verifications)
		if !slices.Equal(requests, perRelay) {
			t.Errorf("micro stats requests per instance = %v, want the relays' decisions %v", requests, perRelay)
		}
		if requests[0]+requests[1] == 0 {
			t.Errorf("micro stats show no requests after %d logins", allowed+wrong)
		}
		// Each wrong password is verified, and so is at least each user's
		// first good one (later ones may come from the cache).
		if verifications < wrong+2 {
			t.Errorf("micro stats show %d password verifications, want at least %d", verifications, wrong+2)
		}

		r = e.nats(t, append(asRelay, "micro", "stats", relay.ServiceName)...)
		r.wantCode(t, 0)
		// The table's total row sums the requests of both instances.
		total := strconv.Itoa(allowed + wrong)
		if !strings.Contains(r.stdout, "│ "+total+" ") {
			t.Errorf("micro stats table shows no total of %s requests:\n%s", total, r)
		}
	})

	t.Run("readyz follows nats", func(t *testing.T) {
		code := ns.stop(t, syscall.SIGTERM)
		t.Logf("nats-server exited with status %d after SIGTERM", code)
		for _, r := range relays {
			r.p.mustRun(t)
			e.waitFor(t, 10*time.Second, r.p.name+"'s /readyz to report nats down", func() error {
				code, body, err := httpGet(r.url("/readyz"))
				if err != nil {
					return err
				}
				if code != http.StatusServiceUnavailable || !strings.Contains(body, "nats") {
					return fmt.Errorf("/readyz: %d %q", code, body)
				}
				t.Logf("%s /readyz with nats down: %d %q", r.p.name, code, body)
				return nil
			})
			code, body, err := httpGet(r.url("/healthz"))
			if err != nil || code != http.StatusOK {
				t.Errorf("%s /healthz with nats down: %d %q %v, want 200", r.p.name, code, body, err)
			}
			// /metrics does not need NATS either.
			if _, err := r.metrics(); err != nil {
				t.Errorf("%s /metrics with nats down: %v", r.p.name, err)
			}
		}

		ns = e.start(t, "nats-server again", bin.natsServer, "-c", e.conf) // same nats.conf, same port
		e.waitTCP(t, ns)
		restarted := time.Now()
		for _, r := range relays {
			// nats.go reconnects every 2s (with jitter) by default.
			r.waitReady(t, e, 20*time.Second)
		}
		t.Logf("both relays ready %v after nats-server accepted connections again", time.Since(restarted).Round(time.Millisecond))
		login(t, "ops-alice")
		login(t, "ops-bob")
		nc, err := e.connect("ops-carol", "still-wrong")
		if err == nil {
			nc.Close()
			t.Fatalf("ops-carol connected with a wrong password after the restart")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("connect as ops-carol with a wrong password after the restart: %v, want %v", err, nats.ErrAuthorization)
		}
		// The metrics survive the outage and go on counting.
		e.waitFor(t, 10*time.Second, "the relays' metrics to count the logins after the restart", func() error {
			var got float64
			for _, r := range relays {
				m, err := r.metrics()
				if err != nil {
					return err
				}
				got += m[`authrelay_decisions_total{reason="",result="allowed"}`]
			}
			if got != float64(allowed) {
				return fmt.Errorf("allowed %v, want %d", got, allowed)
			}
			return nil
		})
	})

	stopRelays(t)
}

// opsRelay is an 'authrelay serve --http' process.
type opsRelay struct {
	p    *e2eProcess
	http string // HOST:PORT of its /metrics, /healthz and /readyz
}

// startOpsRelay starts a relay with --http on a free loopback port.
func (e *e2e) startOpsRelay(t *testing.T, name string) *opsRelay {
	t.Helper()
	addr := loopback.Addr(t)
	p := e.start(t, name, e.bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url, "--http", addr)
	return &opsRelay{p: p, http: addr}
}

func (r *opsRelay) url(path string) string { return "http://" + r.http + path }

// waitReady waits until the relay's /readyz answers 200.
func (r *opsRelay) waitReady(t *testing.T, e *e2e, timeout time.Duration) {
	t.Helper()
	e.waitFor(t, timeout, r.p.name+"'s /readyz to answer 200", func() error {
		r.p.mustRun(t)
		code, body, err := httpGet(r.url("/readyz"))
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %q", code, body)
		}
		return nil
	})
}

// metrics scrapes the relay's /metrics.
func (r *opsRelay) metrics() (map[string]float64, error) {
	code, body, err := httpGet(r.url("/metrics"))
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d %q", code, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out, nil
}

// httpGet fetches url with a bound, returning the status and body; unlike
// get it does not fail the test, so it can be polled.
func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
