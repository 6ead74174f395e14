package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestEndToEndSeveralRelays runs two relays as real processes on one stock
// nats-server while clients keep logging in, then SIGKILLs one, starts it
// again and SIGTERMs the other: a login may need one retry, but none fails
// for good.
func TestEndToEndSeveralRelays(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr).wantCode(t, exitOK)
	ns := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, ns)
	const users = 4
	for i := range users {
		name := fmt.Sprintf("svc-%d", i)
		e.authrelay(t, "pw-"+name+"\n", "user", "add", name, "--dir", e.dir, "--password-stdin").wantCode(t, exitOK)
	}
	relay := func(name string) *e2eProcess {
		p := e.start(t, name, bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url)
		e.waitFor(t, 20*time.Second, name+" to answer logins", func() error {
			p.mustRun(t)
			if !stderrHas(p, "relay ready") {
				return errors.New("not ready")
			}
			return nil
		})
		return p
	}
	a := relay("relay A")
	b := relay("relay B")

	var attempts, retried, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("svc-%d", i%users)
			login := func() error {
				nc, err := nats.Connect(e.url, nats.UserInfo(name, "pw-"+name), nats.Timeout(5*time.Second), nats.NoReconnect())
				if err == nil {
					nc.Close()
				}
				return err
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				attempts.Add(1)
				if err := login(); err != nil {
					retried.Add(1)
					if err := login(); err != nil {
						failed.Add(1)
						lastErr.Store(err.Error())
					}
				}
			}
		}()
	}
	phase := func(d time.Duration) {
		time.Sleep(d) // load runs meanwhile; the phases are the test's clock
	}
	phase(2 * time.Second)
	a.kill(t) // SIGKILL: in-flight requests on A are lost
	phase(2 * time.Second)
	a2 := relay("relay A again")
	phase(time.Second)
	if code := b.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("relay B exited %d after SIGTERM, want 0 (drained)", code)
	}
	phase(2 * time.Second)
	close(stop)
	wg.Wait()
	if code := a2.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("relay A exited %d after SIGTERM", code)
	}
	t.Logf("%d logins, %d needed a retry, %d failed for good", attempts.Load(), retried.Load(), failed.Load())
	if attempts.Load() < 20 {
		t.Errorf("only %d logins during the test", attempts.Load())
	}
	if failed.Load() > 0 {
		t.Errorf("%d logins failed even after a retry (last: %v)", failed.Load(), lastErr.Load())
	}
}

// TestEndToEndRevokeAfterRelayKilled grants alice and bob connections
// through relay A, starts relay B, SIGKILLs A, and disables alice with the
// CLI: B, which never granted her connection, finds it by asking the
// server and closes it within a second; her reconnect is refused; bob's
// connection stays.
func TestEndToEndRevokeAfterRelayKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr).wantCode(t, exitOK)
	ns := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, ns)
	for _, name := range []string{"alice", "bob"} {
		e.authrelay(t, "pw-"+name+"-123\n", "user", "add", name, "--dir", e.dir, "--password-stdin", "--sub", "_INBOX.>").wantCode(t, exitOK)
	}
	relay := func(name string) *e2eProcess {
		p := e.start(t, name, bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url, "--log-level", "debug")
		e.waitFor(t, 20*time.Second, name+" to answer logins", func() error {
			p.mustRun(t)
			if !stderrHas(p, "relay ready") {
				return errors.New("not ready")
			}
			return nil
		})
		return p
	}
	// Relay B replays the changes that added them, whose time it knows to
	// the second only: it kicks what started up to 1.25s after. Bob's
	// connection, which must stay, starts later.
	time.Sleep(1500 * time.Millisecond)
	a := relay("relay A")
	e.waitFor(t, 10*time.Second, "a login through relay A", func() error {
		nc, err := e.connect("bob", "pw-bob-123")
		if err == nil {
			nc.Close()
		}
		return err
	})
	alice := liveOn(t, e.url, "alice", "pw-alice-123")
	bob := liveOn(t, e.url, "bob", "pw-bob-123")
	b := relay("relay B")
	a.kill(t) // SIGKILL: A's memory of its grants is gone

	e.authrelay(t, "", "user", "disable", "alice", "--dir", e.dir).wantCode(t, exitOK)
	alice.kickedWithin(t, "user disable after the granting relay died", time.Now(), 1500*time.Millisecond)
	alice.wantClosed(t, "user disable after the granting relay died")
	if !stderrHas(b, "found=query") {
		t.Errorf("relay B logged no kick of a connection found by the server query:\n%s", b.stderr.String())
	}
	select {
	case <-bob.disconnected:
		t.Error("bob's connection was closed by the change to alice")
	default:
	}
	if !permitted(t, bob.nc, false, "_INBOX.bob") {
		t.Error("bob can no longer subscribe to _INBOX.bob")
	}
	if code := b.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("relay B exited %d after SIGTERM, want 0", code)
	}
}

// stderrHas reports whether the process has written s to stderr.
func stderrHas(p *e2eProcess, s string) bool {
	return strings.Contains(p.stderr.String(), s)
}
