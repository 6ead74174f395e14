package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
)

// startClusterServer runs an in-process nats-server from dir's generated
// nats.conf, on a free client port and a free cluster port, with routes to
// the given cluster URLs, until the test ends.
func startClusterServer(t *testing.T, dir, name string, routes ...string) *server.Server {
	t.Helper()
	opts, err := server.ProcessConfigFile(deploy.Layout{Dir: dir}.Path(deploy.ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	opts.ServerName = name
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPPort = 0
	opts.Cluster.Name = "authrelay-test"
	opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", server.RANDOM_PORT
	if len(routes) > 0 {
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	}
	// These tests are about revocation across routes, without JetStream:
	// a clustered server refuses to start JetStream without routes
	// configured ("JetStream cluster requires configured routes"), which
	// the first server here has not.
	opts.JetStream = false
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("server %s not ready within 10s", name)
	}
	return ns
}

// clusterURL returns the address other servers route to ns on.
func clusterURL(t *testing.T, ns *server.Server) string {
	t.Helper()
	addr := ns.ClusterAddr()
	if addr == nil {
		t.Fatal("server has no cluster listener")
	}
	return fmt.Sprintf("nats://%s", addr.String())
}

// waitRouted waits until every server has a route.
func waitRouted(t *testing.T, servers ...*server.Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range servers {
		for ns.NumRoutes() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("server %s has no route after 10s", ns.Name())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// serveNATS runs 'serve --nats url' on an initialised directory until the
// test ends or stop is called (as SIGTERM does; idempotent), logging to log
// (which relays of one test may share, so that decisionsAbout sees every
// relay's decisions).
func serveNATS(t *testing.T, dir, url string, log *syncBuffer) (stop func()) {
	t.Helper()
	ready := make(chan string, 1)
	m := &Main{
		Stdin:  strings.NewReader(""),
		Stdout: log,
		Stderr: log,
		Getenv: func(string) string { return "" },
		Now:    time.Now,
		Ready:  func(url string) { ready <- url },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// A kicked client retries its old password on both servers: keep
	// those refusals from locking alice out before her new password.
	args := []string{"serve", "--dir", dir, "--nats", url, "--log-level", "debug",
		"--lockout-threshold", "100", "--lockout-addr-threshold", "1000"}
	go func() { done <- m.Run(ctx, args) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve --nats %s exited before it was ready: %v\n%s", url, err, log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("serve --nats %s not ready after 30s\n%s", url, log.String())
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve --nats %s returned %v after cancel", url, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("serve --nats %s did not stop within 30s of cancel", url)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("relay log:\n%s", log.String())
		}
	})
	return stop
}

// waitLogin retries a login as user on s until it succeeds: right after
// the relay starts, its queue subscription may not have crossed the route.
func (s *servedDir) waitLogin(t *testing.T, user, password string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := s.connect(user, password)
		if err == nil {
			nc.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("login as %s on %s still failing after 10s: %v", user, s.url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wantRefusedOn checks that a login as user with password is refused.
func (s *servedDir) wantRefusedOn(t *testing.T, where, user, password string) {
	t.Helper()
	nc, err := s.connect(user, password, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err == nil {
		nc.Close()
		t.Fatalf("login as %s on %s accepted, want refused", user, where)
	}
	wantAuthViolation(t, err)
}

// lateKickWaitForTest is how long a kick already decided may take to show
// in the log after the last expected one.
const lateKickWaitForTest = 250 * time.Millisecond

// kickLine matches a relay's log line for a kick that closed a connection.
var kickLine = regexp.MustCompile(`msg="kicked connection: its user changed" component=revoke user=(\S+) server_id=(\S+) client_id=(\d+)`)

// kickedConns returns the connections of user that the relays in log
// kicked, each once however many relays kicked it, as "server/cid".
func kickedConns(log, user string) []string {
	seen := make(map[string]bool)
	var out []string
	for _, m := range kickLine.FindAllStringSubmatch(log, -1) {
		if k := m[2] + "/" + m[3]; m[1] == user && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// settleRevocation waits until every relay has read the last change and
// queried the servers for it (a poll, the query's margin and room): a
// connection made through one relay just after a change to its user may be
// kicked once by another relay, which cannot tell it from an older grant.
func settleRevocation() { time.Sleep(time.Second) }

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterRevoke runs two routed nats-servers from one generated
// nats.conf, with one relay on A only or one relay on each, and checks
// that disabling alice or changing her password closes her live
// connections on both servers within a second, and that neither server
// lets her back in with what the change took away; bob, on B, stays.
func TestClusterRevoke(t *testing.T) {
	for _, mode := range []struct {
		name   string
		relayB bool
	}{
		{"relay on A", false},
		{"relay on each server", true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			mustRun(t, "", "init", "--dir", dir)
			a := startClusterServer(t, dir, "A")
			b := startClusterServer(t, dir, "B", clusterURL(t, a))
			waitRouted(t, a, b)

			log := &syncBuffer{}
			serveNATS(t, dir, a.ClientURL(), log)
			if mode.relayB {
				serveNATS(t, dir, b.ClientURL(), log)
			}
			onA := &servedDir{dir: dir, url: a.ClientURL(), log: log}
			onB := &servedDir{dir: dir, url: b.ClientURL(), log: log}

			const limit = 1500 * time.Millisecond // 1s promised, with room for CI noise
			onA.addUser(t, "alice", "alice-pass", "--sub", "_INBOX.>")
			onA.addUser(t, "bob", "bob-pass", "--sub", "_INBOX.>")
			settleRevocation()
			onA.waitLogin(t, "bob", "bob-pass")
			onB.waitLogin(t, "bob", "bob-pass")
			bob := onB.live(t, "bob", "bob-pass")

			// kicked connects alice to both servers, runs the change and
			// checks that both connections close within limit and stay
			// closed, their reconnects (to either server: the client
			// learns B from A and A from B) refused.
			kicked := func(what, stdin string, change ...string) {
				t.Helper()
				onServers := []*servedDir{onA, onB}
				var conns []*liveConn
				for _, s := range onServers {
					conns = append(conns, s.live(t, "alice", "alice-pass"))
				}
				mustRun(t, stdin, append(change, "--dir", dir)...)
				changed := time.Now()
				for i, c := range conns {
					c.kickedWithin(t, fmt.Sprintf("%s, alice on %c", what, 'A'+i), changed, limit)
				}
				for i, c := range conns {
					c.wantClosed(t, fmt.Sprintf("%s, alice on %c", what, 'A'+i))
				}
			}

			// Connections that close by themselves, on either server, are
			// forgotten through the DISCONNECT events the cluster carries
			// to the relays, so the change below kicks only live ones.
			for _, s := range []*servedDir{onA, onB} {
				nc, err := s.connect("alice", "alice-pass")
				if err != nil {
					t.Fatalf("login as alice on %s: %v", s.url, err)
				}
				nc.Close()
			}

			kicked("user disable", "", "user", "disable", "alice")
			onA.wantRefusedOn(t, "A", "alice", "alice-pass")
			onB.wantRefusedOn(t, "B", "alice", "alice-pass")
			onA.wantDecision(t, "alice", "reason=user_disabled")

			mustRun(t, "", "user", "enable", "alice", "--dir", dir)
			settleRevocation()
			kicked("user passwd", "new-pass-123\n", "user", "passwd", "alice", "--password-stdin")
			onA.wantRefusedOn(t, "A", "alice", "alice-pass")
			onB.wantRefusedOn(t, "B", "alice", "alice-pass")
			for _, s := range []*servedDir{onA, onB} {
				nc, err := s.connect("alice", "new-pass-123")
				if err != nil {
					t.Fatalf("login as alice with the new password on %s: %v", s.url, err)
				}
				nc.Close()
			}

			// Two connections kicked per change, one per server (each
			// relay may kick one, the granting relay and the others'
			// queries racing); none of a connection already closed (its
			// DISCONNECT event lost) or of bob.
			waitFor(t, func() bool { return len(kickedConns(log.String(), "alice")) >= 4 })
			time.Sleep(2 * lateKickWaitForTest)
			if got := kickedConns(log.String(), "alice"); len(got) != 4 {
				t.Errorf("%d connections of alice kicked, want 4 (on A and B, twice): %v", len(got), got)
			}
			if got := kickedConns(log.String(), "bob"); len(got) != 0 {
				t.Errorf("bob's connections kicked: %v", got)
			}
			if n := strings.Count(log.String(), "kick not done"); n != 0 {
				t.Errorf("%d kicks not done, want 0: the relay kicked connections it should have forgotten", n)
			}

			select {
			case <-bob.disconnected:
				t.Error("bob's connection on B was closed by changes to alice")
			default:
			}
			if !bob.nc.IsConnected() {
				t.Error("bob is not connected")
			}
		})
	}
}
