package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authrelay/authrelay/deploy"
)

// offsetClock is the wall clock plus an offset the test changes: this
// host's clock off from the embedded server's.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) set(d time.Duration) { c.off.Store(int64(d)) }
func (c *offsetClock) now() time.Time      { return time.Now().Add(time.Duration(c.off.Load())) }

// serveWithClock runs 'serve --embedded' on an initialised directory with
// Main.Now set to now, until the test ends.
func serveWithClock(t *testing.T, dir string, now func() time.Time, extra ...string) *servedDir {
	t.Helper()
	args := append([]string{"serve", "--embedded", "--dir", dir, "--listen", "127.0.0.1:0", "--log-level", "debug"}, extra...)
	return serveArgs(t, dir, now, args...)
}

// serveArgs runs authrelay with args (a serve command) with Main.Now set to
// now, until the test ends.
func serveArgs(t *testing.T, dir string, now func() time.Time, args ...string) *servedDir {
	t.Helper()
	log := &syncBuffer{}
	ready := make(chan string, 1)
	m := &Main{
		Stdin: strings.NewReader(""), Stdout: log, Stderr: log,
		Getenv: func(string) string { return "" },
		Now:    now,
		Ready:  func(url string) { ready <- url },
		Hup:    make(chan os.Signal),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, args) }()
	s := &servedDir{dir: dir, log: log}
	select {
	case s.url = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve exited before it was ready: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve not ready after 30s\n%s", log.String())
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30s of cancel")
		}
		if t.Failed() {
			t.Logf("serve log:\n%s", log.String())
		}
	})
	return s
}

// TestServeClockSkew runs serve with its clock 2 s and then 10 s ahead of
// the embedded nats-server's: at 2 s logins work and /metrics shows the
// skew; at 10 s, beyond --max-clock-skew, logins fail, /readyz fails on
// "clock" with the skew, and doctor names the skew as the cause; with the
// clock fixed, logins and /readyz come back by themselves.
func TestServeClockSkew(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	cheapHashPolicy(t, dir)
	var clock offsetClock
	clock.set(2 * time.Second)
	s := serveWithClock(t, dir, clock.now, "--http", "127.0.0.1:0")
	s.addUser(t, "alice", "al1ce-pass", "--account", "APP", "--pub", "app.>")
	base := "http://" + s.httpAddr(t)
	login := func() error {
		nc, err := s.connect("alice", "al1ce-pass")
		if err == nil {
			nc.Close()
		}
		return err
	}
	skewMetric := func() float64 {
		t.Helper()
		code, body := get(t, base+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		v, ok := samples(t, body)["authrelay_clock_skew_seconds"]
		if !ok {
			t.Fatalf("no authrelay_clock_skew_seconds in /metrics")
		}
		return v
	}

	// 2 s ahead: within the tolerance.
	if err := login(); err != nil {
		t.Fatalf("login with the clock 2s ahead: %v", err)
	}
	if v := skewMetric(); math.Abs(v-2) > 0.6 {
		t.Errorf("authrelay_clock_skew_seconds = %v, want 2 ± 0.6", v)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz with the clock 2s ahead: %d %q", code, body)
	}

	// 10 s ahead: beyond it.
	clock.set(10 * time.Second)
	// The relay drops the request; the server refuses at its timeout (the
	// client may see the server's first PING before the refusal).
	if err := login(); err == nil {
		t.Fatal("login with the clock 10s ahead succeeded")
	}
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "clock: ") || !strings.Contains(body, "ahead of") {
		t.Errorf("/readyz with the clock 10s ahead: %d %q, want 503 naming the clock", code, body)
	}
	if v := skewMetric(); math.Abs(v-10) > 0.6 {
		t.Errorf("authrelay_clock_skew_seconds = %v, want 10 ± 0.6", v)
	}
	if !strings.Contains(s.log.String(), "clock skew beyond tolerance") {
		t.Error("serve's log does not say the skew is beyond tolerance")
	}
	r := doctorRunAt(t, clock.now, "--dir", dir, "--nats", s.url, "--json")
	var got []doctorResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, r.stdout)
	}
	if r.code != exitFailure {
		t.Errorf("doctor exit %d, want %d", r.code, exitFailure)
	}
	doctorWant(t, got, "fail", "clock", "beyond the relay's clock skew tolerance")
	doctorWant(t, got, "fail", "relay answering", "this host's clock is")

	// NTP fixes the clock.
	clock.set(0)
	if err := login(); err != nil {
		t.Fatalf("login with the clock fixed: %v", err)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz with the clock fixed: %d %q", code, body)
	}
}

// TestServeForeignKeys runs, beside 'serve --embedded' on a directory, a
// second relay with the same login but another directory's xkey or
// issuer: it finds out, /readyz fails on "relay keys", it leaves the queue
// group, and every login goes to the healthy relay.
func TestServeForeignKeys(t *testing.T) {
	for _, which := range []string{"xkey", "issuer"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			a := serveEmbedded(t, true)
			a.addUser(t, "alice", "al1ce-pass", "--account", "APP", "--pub", "app.>")
			other := t.TempDir()
			mustRun(t, "", "init", "--dir", other)
			cheapHashPolicy(t, other)
			mustRun(t, "al1ce-pass\n", "user", "add", "alice", "--dir", other, "--password-stdin", "--account", "APP", "--pub", "app.>")
			sa, err := deploy.Layout{Dir: a.dir}.LoadSecrets()
			if err != nil {
				t.Fatal(err)
			}
			so, err := deploy.Layout{Dir: other}.LoadSecrets()
			if err != nil {
				t.Fatal(err)
			}
			// The healthy directory's logins, the other one's key.
			mixed := sa
			if which == "xkey" {
				mixed.XKeySeed = so.XKeySeed
			} else {
				mixed.IssuerSeed = so.IssuerSeed
			}
			b, err := json.MarshalIndent(mixed, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(deploy.Layout{Dir: other}.Path(deploy.SecretsFile), b, 0o600); err != nil {
				t.Fatal(err)
			}
			f := serveArgs(t, other, time.Now, "serve", "--dir", other, "--nats", a.url, "--http", "127.0.0.1:0",
				"--revoke=false", "--log-level", "debug")
			base := "http://" + f.httpAddr(t)

			deadline := time.Now().Add(30 * time.Second)
			failed := 0
			for {
				code, body := get(t, base+"/readyz")
				if code == 503 && strings.Contains(body, "relay keys: ") {
					t.Logf("foreign relay /readyz: %q after %d failed logins", body, failed)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("foreign relay /readyz still %d %q after 30s of logins", code, body)
				}
				nc, err := a.connect("alice", "al1ce-pass")
				if err != nil {
					failed++
				} else {
					nc.Close()
				}
			}
			waitForCond(t, func() bool {
				_, body := get(t, base+"/metrics")
				v, ok := samples(t, body)["authrelay_queue_group_member"]
				return ok && v == 0
			}, "authrelay_queue_group_member 0")
			if !strings.Contains(f.log.String(), "leaving the queue group") {
				t.Error("the foreign relay did not log that it left the queue group")
			}
			for i := range 10 {
				nc, err := a.connect("alice", "al1ce-pass")
				if err != nil {
					t.Fatalf("login %d with the foreign relay out of the group: %v", i, err)
				}
				nc.Close()
			}
		})
	}
}

// waitForCond polls cond for up to 10s.
func waitForCond(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
