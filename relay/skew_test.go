package relay

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// skewedClock is the wall clock plus an offset the test changes, as a
// relay machine's clock off from the server's.
type skewedClock struct{ off atomic.Int64 }

func (c *skewedClock) set(d time.Duration) { c.off.Store(int64(d)) }
func (c *skewedClock) now() time.Time      { return time.Now().Add(time.Duration(c.off.Load())) }

// TestClockSkew runs a relay whose clock is off from a real nats-server's:
// within the tolerance logins work and the skew is measured; beyond it the
// relay drops the requests and says so (Health, the log), and once the
// clock is right again it works again by itself.
func TestClockSkew(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			for _, off := range []time.Duration{2 * time.Second, -2 * time.Second, 10 * time.Second, -10 * time.Second} {
				t.Run(off.String(), func(t *testing.T) {
					t.Parallel()
					testClockSkew(t, e, off)
				})
			}
		})
	}
}

func testClockSkew(t *testing.T, e env, off time.Duration) {
	h := newHarness(t, e)
	var clock skewedClock
	clock.set(off)
	h.startRelay(func(c *Config) { c.Now = clock.now })
	login := func() error {
		c, err := h.connect(t, "alice", "alice-pw-7f3a", nats.Timeout(5*time.Second), nats.NoReconnect())
		if err == nil {
			c.nc.Close()
		}
		return err
	}
	near := func(c ClockSkew, want time.Duration) bool {
		// The estimate's interval, widened by transit on loopback.
		return (c.Skew - want).Abs() <= c.Resolution+100*time.Millisecond
	}

	if off.Abs() < DefaultMaxClockSkew {
		for i := range 3 {
			if err := login(); err != nil {
				t.Fatalf("login %d with the relay's clock %v off: %v", i, off, err)
			}
		}
		hl := h.relay.Health()
		if !hl.SkewKnown || !near(hl.Skew, off) {
			t.Errorf("measured skew %+v (known %v), want %v", hl.Skew, hl.SkewKnown, off)
		}
		if hl.Skew.Resolution > 500*time.Millisecond {
			t.Errorf("resolution %v, want at most 0.5s", hl.Skew.Resolution)
		}
		if f := hl.ClockFault(); f != "" || hl.SkewRejected != 0 {
			t.Errorf("clock fault %q, %d rejected within the tolerance", f, hl.SkewRejected)
		}
		// The logged warning names the skew.
		waitFor(t, func() bool { return strings.Contains(h.logs.String(), "clock skew: logins still work") }, "skew warning logged")
		return
	}

	// Beyond the tolerance: the request is dropped, so the server refuses
	// the login at its timeout. (The client may see the server's first
	// PING before the refusal, so any connect error will do; the event
	// says what the server saw.)
	reasons := h.authErrors(t)
	if err := login(); err == nil {
		t.Fatalf("login with the relay's clock %v off succeeded", off)
	}
	select {
	case got := <-reasons:
		// nats-server reports a callout that timed out with no reason;
		// any answer, even a denial, would carry one.
		if got != "" {
			t.Errorf("auth error reason %q, want none: the relay must drop the request, not answer it", got)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("no %s event", AuthErrorSubject)
	}
	hl := h.relay.Health()
	fault := hl.ClockFault()
	dir := "ahead of"
	if off < 0 {
		dir = "behind"
	}
	if fault == "" || !strings.Contains(fault, dir) || !strings.Contains(fault, h.srv.ID()) {
		t.Errorf("clock fault %q, want one naming the relay %s server %s", fault, dir, h.srv.ID())
	}
	if !near(hl.Skew, off) || hl.SkewRejected == 0 {
		t.Errorf("health %+v, want skew near %v and rejections", hl, off)
	}
	if !strings.Contains(h.logs.String(), "clock skew beyond tolerance") {
		t.Errorf("relay log does not say the skew is beyond tolerance:\n%s", h.logs.String())
	}

	// The clock is fixed (NTP stepped it): logins work again, and the fault
	// clears by itself.
	clock.set(0)
	if err := login(); err != nil {
		t.Fatalf("login after the clock was fixed: %v", err)
	}
	hl = h.relay.Health()
	if f := hl.ClockFault(); f != "" || !near(hl.Skew, 0) {
		t.Errorf("after the fix: clock fault %q, skew %+v; want none, near 0", f, hl.Skew)
	}
}

// TestSkewMeter checks the estimate's arithmetic: requests issued across the
// second narrow the interval to the true skew; a jump in the offset (a
// clock stepped) drops the older seconds.
func TestSkewMeter(t *testing.T) {
	m := newSkewMeter()
	base := time.Unix(1_800_000_000, 0)
	const skew = 2300 * time.Millisecond
	// One request: ±0.5 s.
	send := base.Add(400 * time.Millisecond)
	m.sample("S1", "one", base.Unix(), send.Add(skew))
	c, ok := m.worst(send.Add(skew))
	if !ok || c.Resolution != 500*time.Millisecond || (c.Skew-skew).Abs() > c.Resolution {
		t.Fatalf("one sample: %+v, want %v within ±0.5s", c, skew)
	}
	// Requests spread over the second: within 50 ms.
	for i := range 20 {
		send := base.Add(time.Duration(i) * 50 * time.Millisecond)
		m.sample("S1", "one", send.Unix(), send.Add(skew))
	}
	c, _ = m.worst(base.Add(skew + time.Second))
	if c.Resolution > 50*time.Millisecond || (c.Skew-skew).Abs() > c.Resolution {
		t.Errorf("spread samples: %+v, want %v within 50ms", c, skew)
	}
	// The relay's clock is stepped back by the skew: the estimate follows
	// at once.
	next := base.Add(2 * time.Second)
	m.sample("S1", "one", next.Unix(), next.Add(300*time.Millisecond))
	c, _ = m.worst(next)
	if (c.Skew - 300*time.Millisecond).Abs() > c.Resolution {
		t.Errorf("after the step: %+v, want 300ms within the resolution", c)
	}
	// A jump within one second of the server's (a login at one offset,
	// the clock stepped, a login at another): the later offset wins.
	m.sample("S1", "one", next.Unix(), next.Add(10*time.Second+100*time.Millisecond))
	c, _ = m.worst(next)
	if (c.Skew - 10*time.Second).Abs() > c.Resolution+100*time.Millisecond {
		t.Errorf("after a jump within the second: %+v, want 10s within the resolution", c)
	}
	// A second server far off is the worst.
	m.sample("S2", "two", next.Unix(), next.Add(-20*time.Second))
	if c, _ := m.worst(next); c.ServerID != "S2" || !c.beyond(DefaultMaxClockSkew) {
		t.Errorf("worst %+v, want S2 beyond the tolerance", c)
	}
}

// TestAnswerBudget checks that the relay's time to answer comes from the
// request's own timeout (exp-iat) and the decision timeout, never from its
// clock against exp.
func TestAnswerBudget(t *testing.T) {
	for _, tt := range []struct {
		decision time.Duration
		iat, exp int64
		want     time.Duration
	}{
		{1500 * time.Millisecond, 100, 102, 1500 * time.Millisecond},
		{time.Minute, 100, 102, 2*time.Second - answerMargin},
		{time.Minute, 100, 103, 3*time.Second - answerMargin},
		{time.Minute, 100, 100, time.Minute}, // under a second: serve and doctor warn
	} {
		r := &Relay{cfg: Config{DecisionTimeout: tt.decision}}
		rc := &jwt.AuthorizationRequestClaims{}
		rc.IssuedAt, rc.Expires = tt.iat, tt.exp
		if got := r.answerBudget(rc); got != tt.want {
			t.Errorf("decision %v, exp-iat %ds: budget %v, want %v", tt.decision, tt.exp-tt.iat, got, tt.want)
		}
	}
}
