package relay

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/nats-io/nats.go"
)

// runRelay runs one more relay against h's server until the test ends;
// name tells its log lines apart.
func runRelay(t *testing.T, h *harness, name string, mod func(*Config)) *Relay {
	t.Helper()
	cfg := Config{
		URL: h.srv.ClientURL(), User: "auth", Password: "auth-pw",
		Issuer: h.issuer, XKey: h.xkey, Users: h.users, Workers: 4,
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("relay", name),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("new relay: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("relay %s run: %v", name, err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatalf("relay %s not ready after 5s", name)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay %s run: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("relay %s did not stop", name)
		}
	})
	return r
}

// restartServer stops h's server and starts one at the same address whose
// auth_callout names issuer and xkey, as an operator fixing nats.conf
// does (auth_callout is not reloadable).
func (h *harness) restartServer(t *testing.T, addr, issuer string, xkey *accounts.XKey) {
	t.Helper()
	h.srv.Shutdown()
	h.srv.WaitForShutdown()
	h.srv, h.conf = runServer(t, serverConf{listen: addr}.text(issuer, xkey))
}

// login connects as alice once, with no reconnect, and closes.
func (h *harness) login(t *testing.T) error {
	t.Helper()
	c, err := h.connect(t, "alice", "alice-pw-7f3a", nats.Timeout(5*time.Second), nats.NoReconnect())
	if err == nil {
		c.nc.Close()
	}
	return err
}

// loginsUntil logs in until cond holds, for at most 30s; logins may fail
// meanwhile. It returns the number of failed logins.
func (h *harness) loginsUntil(t *testing.T, cond func() bool, what string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	failed := 0
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s of logins (%d failed)\n%s", what, failed, h.logs.String())
		}
		if err := h.login(t); err != nil {
			failed++
		}
	}
	return failed
}

// TestForeignXKey puts a relay whose xkey is not the server's into the
// queue group beside a healthy one: it finds out within a few requests,
// says why (Health, log), leaves the queue group so the healthy relay takes
// every login, and rejoins by itself once the server's config names its
// xkey (the healthy relay, now the foreign one, then leaves).
func TestForeignXKey(t *testing.T) {
	t.Parallel()
	addr := loopback.Addr(t)
	h := newHarnessConf(t, env{"xkey", true}, serverConf{listen: addr})
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	otherX := mustXKey(t, keys.XKeySeed)
	foreign := runRelay(t, h, "foreign", func(c *Config) { c.XKey = otherX })
	healthy := runRelay(t, h, "healthy", nil)

	h.loginsUntil(t, func() bool { return foreign.Health().KeyFault != "" }, "foreign relay finds its xkey fault")
	hl := foreign.Health()
	if !strings.Contains(hl.KeyFault, "xkey") || hl.KeyFailures < keyFailStreak {
		t.Errorf("health %+v, want an xkey fault after %d failures", hl, keyFailStreak)
	}
	waitFor(t, func() bool { return !foreign.Health().InQueueGroup }, "foreign relay leaves the queue group")
	if !strings.Contains(h.logs.String(), "leaving the queue group") {
		t.Error("the foreign relay did not log that it left the queue group")
	}
	before := foreign.Health().KeyFailures
	for i := range 10 {
		if err := h.login(t); err != nil {
			t.Fatalf("login %d with the foreign relay out of the group: %v", i, err)
		}
	}
	if hl := healthy.Health(); hl.KeyFault != "" || !hl.InQueueGroup {
		t.Errorf("healthy relay: %+v", hl)
	}
	// Out of the group, the foreign relay only inspects a few requests a
	// second: none of the ten was its to answer.
	if got := foreign.Health().KeyFailures - before; got > 10 {
		t.Errorf("foreign relay failed %d more requests while out of the group", got)
	}

	// The operator points the server at the foreign relay's xkey.
	h.restartServer(t, addr, h.issuer.PublicKey(), otherX)
	h.loginsUntil(t, func() bool {
		f, g := foreign.Health(), healthy.Health()
		return f.InQueueGroup && f.KeyFault == "" && !g.InQueueGroup
	}, "the relays swap places")
	for i := range 5 {
		if err := h.login(t); err != nil {
			t.Fatalf("login %d after the swap: %v", i, err)
		}
	}
	if !strings.Contains(h.logs.String(), "rejoined the queue group") {
		t.Error("the relay did not log that it rejoined the queue group")
	}
}

// TestForeignIssuer runs a relay whose issuer key is not the server's
// auth_callout.issuer: the server rejects its grant, the relay learns it
// from the server's auth error event in the callout account, counts the
// login as rejected rather than leaving it allowed, leaves the queue group,
// and rejoins once a server that accepts its key asks it.
func TestForeignIssuer(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			addr := loopback.Addr(t)
			h := newHarnessConf(t, e, serverConf{listen: addr})
			keys, err := accounts.GenerateKeys()
			if err != nil {
				t.Fatal(err)
			}
			otherIssuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			foreign := runRelay(t, h, "foreign", func(c *Config) { c.Issuer, c.Observer = otherIssuer, rec })

			reasons := h.authErrors(t)
			if err := h.login(t); !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("login through the foreign relay: %v, want Authorization Violation", err)
			}
			want := "Wrong issuer for auth callout response"
			if !e.xkey {
				want = "Auth callout signing key is unknown"
			}
			if got := recv(t, reasons); !strings.Contains(got, want) {
				t.Errorf("server's reason %q, want %q", got, want)
			}
			waitFor(t, func() bool { return foreign.Health().KeyFault != "" && !foreign.Health().InQueueGroup },
				"foreign relay finds its issuer fault and leaves the queue group")
			hl := foreign.Health()
			if !strings.Contains(hl.KeyFault, "issuer") || hl.AnswersRejected != 1 {
				t.Errorf("health %+v, want an issuer fault from 1 rejected answer", hl)
			}
			var rejected int
			for _, o := range rec.all() {
				if o.Reason == ReasonRejectedByServer && !o.Allowed {
					rejected++
				}
			}
			if rejected != 1 {
				t.Errorf("observations %+v, want the rejected grant counted as %s", rec.all(), ReasonRejectedByServer)
			}

			// A healthy relay takes every login.
			healthy := runRelay(t, h, "healthy", nil)
			for i := range 5 {
				if err := h.login(t); err != nil {
					t.Fatalf("login %d with a healthy relay: %v", i, err)
				}
			}

			// The operator points the server at the foreign relay's key.
			h.restartServer(t, addr, otherIssuer.PublicKey(), h.xkey)
			h.loginsUntil(t, func() bool {
				f, g := foreign.Health(), healthy.Health()
				return f.InQueueGroup && f.KeyFault == "" && !g.InQueueGroup
			}, "the relays swap places")
			for i := range 5 {
				if err := h.login(t); err != nil {
					t.Fatalf("login %d after the swap: %v", i, err)
				}
			}
		})
	}
}
