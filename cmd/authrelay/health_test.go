package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
	args := append([]string{"serve", "--embedded", "--dir", dir, "--listen", "127.0.0.1:0", "--log-level", "debug"}, extra...)
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
	mustRun(t, "", "hash", "set", "--dir", dir, "--memory", "8192", "--time", "1")
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
	if err := login(); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("login with the clock 10s ahead: %v, want Authorization Violation", err)
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
