package main

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestZeroDowntimeRotation rotates a service's password with --grace while
// a client keeps sending it requests: the old instance keeps answering
// through the grace, the new one (new password) joins, an instance started
// late with the old password still gets in, and when the grace ends the
// old password's connections are closed and the new one's are not. No
// request goes unanswered (a client retries a request whose responder was
// closed under it, as NATS clients do). Afterwards the old password is
// refused as bad_credentials, and retrying it many times locks nothing: the
// new instance still logs in from the same address.
func TestZeroDowntimeRotation(t *testing.T) {
	s := serveEmbedded(t, true)
	s.addUser(t, "calc", "calc-old-pass-1", "--sub", "svc.calc", "--allow-responses")
	s.addUser(t, "client", "client-pass-1", "--pub", "svc.calc", "--sub", "_INBOX.>")
	events := s.authErrors(t)

	type instance struct {
		nc     *nats.Conn
		closed chan struct{}
	}
	start := func(name, password string) *instance {
		t.Helper()
		in := &instance{closed: make(chan struct{})}
		nc, err := s.connect("calc", password, nats.ClosedHandler(func(*nats.Conn) { close(in.closed) }), nats.NoReconnect())
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		if _, err := nc.QueueSubscribe("svc.calc", "calc", func(m *nats.Msg) { m.Respond([]byte(name)) }); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		in.nc = nc
		t.Cleanup(nc.Close)
		return in
	}
	old := start("old", "calc-old-pass-1")

	cl, err := s.connect("client", "client-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var (
		mu      sync.Mutex
		served  = map[string]int{}
		failed  atomic.Int64
		stopped = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stopped:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var answer string
			for try := 0; try < 3 && answer == ""; try++ {
				if m, err := cl.Request("svc.calc", nil, time.Second); err == nil {
					answer = string(m.Data)
				}
			}
			mu.Lock()
			if answer == "" {
				failed.Add(1)
			} else {
				served[answer]++
			}
			mu.Unlock()
		}
	}()

	time.Sleep(300 * time.Millisecond)
	const grace = 4 * time.Second
	r := mustRun(t, "calc-new-pass-2\n", "user", "passwd", "calc", "--dir", s.dir, "--password-stdin", "--grace", grace.String())
	rotated := time.Now()
	if !strings.Contains(r.stdout, "the previous one works until") {
		t.Errorf("user passwd --grace: %q", r.stdout)
	}
	time.Sleep(500 * time.Millisecond)
	newer := start("new", "calc-new-pass-2")
	late := start("late", "calc-old-pass-1") // a replica restarted with the old config
	select {
	case <-old.closed:
		t.Fatal("the old instance was closed in the grace")
	case <-time.After(time.Until(rotated.Add(grace - 500*time.Millisecond))):
	}
	for name, in := range map[string]*instance{"old": old, "late": late} {
		select {
		case <-in.closed:
		case <-time.After(time.Until(rotated.Add(grace + 5*time.Second))):
			t.Errorf("the %s instance (previous password) is still connected 5s after the grace", name)
		}
	}
	time.Sleep(500 * time.Millisecond)
	select {
	case <-newer.closed:
		t.Fatal("the new instance was closed at the grace's end")
	default:
	}
	close(stopped)
	<-done
	mu.Lock()
	t.Logf("answered by %v, %d unanswered", served, failed.Load())
	if failed.Load() != 0 || served["old"] == 0 || served["new"] == 0 {
		t.Errorf("answered by %v with %d requests unanswered: want every request answered, by the old instance and then the new", served, failed.Load())
	}
	mu.Unlock()

	// The previous password now: refused as a wrong one, but not a guess.
	for i := range 8 {
		if got := s.loginReason(t, events, "calc", "calc-old-pass-1"); got != "bad_credentials" {
			t.Fatalf("old password after the grace, try %d: reason %q, want bad_credentials", i+1, got)
		}
	}
	nc, err := s.connect("calc", "calc-new-pass-2", from("127.0.0.1"))
	if err != nil {
		t.Fatalf("the new password after 8 stale attempts from the same address: %v (locked out?)", err)
	}
	nc.Close()
	if r := mustRun(t, "", "user", "lockouts", "--dir", s.dir); strings.Contains(r.stdout, "calc") {
		t.Errorf("stale attempts locked something:\n%s", r.stdout)
	}
}
