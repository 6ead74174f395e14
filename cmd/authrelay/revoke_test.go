package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// liveConn is a client connection that reconnects, with its events.
type liveConn struct {
	nc           *nats.Conn
	disconnected chan time.Time
	reconnected  chan struct{}
	closed       chan struct{}
}

// live connects to s as user with reconnects on, so that a kick shows as a
// disconnect followed by a refused reconnect (closed) or a new login
// (reconnected).
func (s *servedDir) live(t *testing.T, user, password string) *liveConn {
	t.Helper()
	c := &liveConn{
		disconnected: make(chan time.Time, 16),
		reconnected:  make(chan struct{}, 16),
		closed:       make(chan struct{}),
	}
	nc, err := nats.Connect(s.url, nats.UserInfo(user, password), nats.Timeout(5*time.Second),
		nats.MaxReconnects(3), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { c.disconnected <- time.Now() }),
		nats.ReconnectHandler(func(*nats.Conn) { c.reconnected <- struct{}{} }),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	// A live subscriber, as a real service has.
	if _, err := nc.Subscribe("_INBOX.live", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	c.nc = nc
	return c
}

// kickedWithin waits for c's disconnect after the change that ended at
// changed, logs how long it took and fails beyond limit.
func (c *liveConn) kickedWithin(t *testing.T, what string, changed time.Time, limit time.Duration) {
	t.Helper()
	select {
	case at := <-c.disconnected:
		took := at.Sub(changed)
		t.Logf("%s: connection closed %v after the change was committed", what, took)
		if took > limit {
			t.Errorf("%s: connection closed after %v, want under %v", what, took, limit)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: connection still open 10s after the change", what)
	}
}

// wantClosed waits for c to be closed for good: its reconnect refused.
func (c *liveConn) wantClosed(t *testing.T, what string) {
	t.Helper()
	select {
	case <-c.closed:
	case <-c.reconnected:
		t.Fatalf("%s: the kicked client reconnected, want its reconnect refused", what)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the kicked client neither closed nor reconnected within 10s", what)
	}
}

// wantReconnected waits for c's reconnect after a kick.
func (c *liveConn) wantReconnected(t *testing.T, what string) {
	t.Helper()
	select {
	case <-c.reconnected:
	case <-c.closed:
		t.Fatalf("%s: the kicked client was closed, want it reconnected", what)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the kicked client did not reconnect within 10s", what)
	}
}

// wantDecision waits until the relay logged a decision about user with
// want in it.
func (s *servedDir) wantDecision(t *testing.T, user, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range s.decisionsAbout(user) {
			if strings.Contains(line, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision about %s with %q logged:\n%s", user, want, strings.Join(s.decisionsAbout(user), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRevokeLiveConnections changes a connected user through the CLI, a
// separate process that only writes the database, and checks that serve
// closes the user's live connection within a second and that the
// reconnect sees the change; another user's connection stays.
func TestRevokeLiveConnections(t *testing.T) {
	s := serveEmbedded(t, true, "--lockout-threshold", "3", "--lockout-addr-threshold", "1000", "--lockout-duration", "1h")
	dir := s.dir
	const limit = 1500 * time.Millisecond // 1s promised, with room for CI noise
	s.addUser(t, "bob", "bob-pass", "--sub", "_INBOX.>")
	bob := s.live(t, "bob", "bob-pass")

	refused := []struct {
		name   string
		change func(user string) []string
		stdin  string
		reason string
	}{
		{"user disable", func(u string) []string { return []string{"user", "disable", u} }, "", "reason=user_disabled"},
		{"user passwd", func(u string) []string { return []string{"user", "passwd", u, "--password-stdin"} }, "new-pass-123\n", "reason=bad_credentials"},
		{"user rm", func(u string) []string { return []string{"user", "rm", u} }, "", "reason=bad_credentials"},
	}
	for i, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			user := fmt.Sprintf("alice%d", i)
			s.addUser(t, user, "alice-pass", "--sub", "_INBOX.>")
			alice := s.live(t, user, "alice-pass")
			mustRun(t, c.stdin, append(c.change(user), "--dir", dir)...)
			alice.kickedWithin(t, c.name, time.Now(), limit)
			alice.wantClosed(t, c.name)
			s.wantDecision(t, user, c.reason)
		})
	}

	t.Run("user set --pub", func(t *testing.T) {
		s.addUser(t, "alice-pub", "alice-pass", "--pub", "orders.>", "--sub", "_INBOX.>")
		alice := s.live(t, "alice-pub", "alice-pass")
		if !permitted(t, alice.nc, true, "orders.new") || permitted(t, alice.nc, true, "billing.new") {
			t.Fatal("before: want orders.new and not billing.new")
		}
		mustRun(t, "", "user", "set", "alice-pub", "--dir", dir, "--pub", "billing.>")
		alice.kickedWithin(t, "user set --pub", time.Now(), limit)
		alice.wantReconnected(t, "user set --pub")
		if permitted(t, alice.nc, true, "orders.new") || !permitted(t, alice.nc, true, "billing.new") {
			t.Error("after the kick: want billing.new and not orders.new")
		}
	})

	t.Run("role set", func(t *testing.T) {
		mustRun(t, "", "role", "add", "reader", "--dir", dir, "--sub", "metrics.>")
		s.addUser(t, "alice-role", "alice-pass", "--role", "reader", "--sub", "_INBOX.>")
		alice := s.live(t, "alice-role", "alice-pass")
		if !permitted(t, alice.nc, false, "metrics.cpu") || permitted(t, alice.nc, false, "logs.app") {
			t.Fatal("before: want metrics.cpu and not logs.app")
		}
		mustRun(t, "", "role", "set", "reader", "--dir", dir, "--sub", "logs.>")
		alice.kickedWithin(t, "role set", time.Now(), limit)
		alice.wantReconnected(t, "role set")
		if permitted(t, alice.nc, false, "metrics.cpu") || !permitted(t, alice.nc, false, "logs.app") {
			t.Error("after the kick: want logs.app and not metrics.cpu")
		}
	})

	t.Run("lockout closes nothing", func(t *testing.T) {
		// A lockout refuses new logins only, so that wrong passwords
		// cannot disconnect a user (TestLockoutSparesTheUsersConnections).
		s.addUser(t, "alice-lock", "alice-pass", "--sub", "_INBOX.>")
		alice := s.live(t, "alice-lock", "alice-pass")
		for range 3 {
			s.wantRefused(t, "alice-lock", "wrong-pass", "bad_credentials", "miss")
		}
		s.wantRefused(t, "alice-lock", "alice-pass", "locked_out", "")
		time.Sleep(limit)
		select {
		case <-alice.disconnected:
			t.Error("a lockout closed the user's live connection")
		default:
		}
	})

	t.Run("audit", func(t *testing.T) {
		out := mustRun(t, "", "audit", "--dir", dir, "--user", "alice0").stdout
		if !strings.Contains(out, "connection kick") {
			t.Errorf("no kick of alice0 in the audit trail:\n%s", out)
		}
	})

	select {
	case <-bob.disconnected:
		t.Error("bob's connection was closed by changes to other users")
	default:
	}
	if !bob.nc.IsConnected() {
		t.Error("bob is not connected")
	}
}
