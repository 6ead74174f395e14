package metrics

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// env is one way of running the server and relay; every integration test
// body runs in each.
type env struct {
	name string
	xkey bool // auth_callout.xkey set: requests and responses sealed
}

func envs() []env { return []env{{"xkey", true}, {"plain", false}} }

// confTmpl is the test server's config (the relay package's test server,
// cut to what these tests need): AUTH is the callout account with the
// relay's user, SYS the system account with the admin user that kicks
// connections.
const confTmpl = `
listen: 127.0.0.1:-1
server_name: metricstest
accounts {
	AUTH { users: [ {user: auth, password: auth-pw} ] }
	APP { }
	SYS { users: [ {user: admin, password: admin-pw} ] }
}
system_account: SYS
authorization {
	timeout: 2
	auth_callout {
		issuer: %q
		account: AUTH
		auth_users: [ auth ]
		allowed_accounts: [ APP ]
		%s
	}
}
`

// harness is a real in-process nats-server configured for auth callout, a
// real store in a temporary directory, and a relay with revocation on,
// observed by metrics as serve wires them.
type harness struct {
	srv   *server.Server
	db    *store.DB
	relay *relay.Relay
	met   *Metrics
	mux   http.Handler
	stop  func() // stops the relay and waits for Run
	logs  *syncBuffer
}

func newHarness(t *testing.T, e env) *harness {
	t.Helper()
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	var xkey *accounts.XKey
	xline := ""
	if e.xkey {
		if xkey, err = accounts.NewXKey(keys.XKeySeed); err != nil {
			t.Fatal(err)
		}
		xline = fmt.Sprintf("xkey: %q", xkey.PublicKey())
	}
	h := &harness{logs: &syncBuffer{}}
	h.srv = runServer(t, fmt.Sprintf(confTmpl, issuer.PublicKey(), xline))

	ctx := t.Context()
	h.db, err = store.Open(ctx, filepath.Join(t.TempDir(), "authrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.db.Close(); err != nil {
			t.Error(err)
		}
	})
	h.db.Params = store.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	if err := h.db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	logger := newLogger(h.logs)
	audit := h.db.NewAuditWriter(store.AuditOptions{Logger: logger})
	guard := h.db.Lockouts(accounts.DefaultLockoutPolicy)

	h.met = New()
	h.met.WatchStore(h.db, audit, guard)
	r, err := relay.New(relay.Config{
		URL: h.srv.ClientURL(), User: "auth", Password: "auth-pw",
		Issuer: issuer, XKey: xkey,
		Users: h.db, Guard: guard, Audit: audit, Positions: h.db,
		CacheTTL: time.Minute, Workers: 2, HashWorkers: 2,
		Observer: h.met,
		Revoke: &relay.RevokeConfig{
			AdminUser: "admin", AdminPassword: "admin-pw",
			Changes: h.db, Poll: 50 * time.Millisecond,
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.relay = r
	h.met.WatchRelay(r)
	h.met.WatchRevocation(r)
	h.mux = Mux(h.met, ReadyChecks(r, h.db, audit, guard))

	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := r.Run(runCtx)
		if cerr := audit.Close(context.Background()); cerr != nil && err == nil {
			err = cerr
		}
		done <- err
	}()
	select {
	case <-r.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("relay run: %v", err)
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("relay not ready after 5s")
	}
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("relay run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("relay run did not return 10s after cancel")
			}
		})
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("relay log:\n%s", h.logs.String())
		}
	})
	return h
}

// runServer starts nats-server from conf and stops it when the test ends.
func runServer(t *testing.T, conf string) *server.Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("process config: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// addUser adds a user of APP who may publish and subscribe on app.>.
func (h *harness) addUser(t *testing.T, name, password string) {
	t.Helper()
	u := accounts.User{Name: name, Account: "APP", Permissions: accounts.Permissions{
		Pub: accounts.Rule{Allow: []string{"app.>"}},
		Sub: accounts.Rule{Allow: []string{"app.>", "_INBOX.>"}},
	}}
	if err := h.db.AddUser(t.Context(), u, password); err != nil {
		t.Fatal(err)
	}
}

// connect logs in as user without reconnecting, and returns the connection
// with a channel closed when the server drops it.
func (h *harness) connect(t *testing.T, user, password string) (*nats.Conn, <-chan struct{}) {
	t.Helper()
	dropped := make(chan struct{})
	var once sync.Once
	nc, err := nats.Connect(h.srv.ClientURL(), nats.UserInfo(user, password), nats.NoReconnect(),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { once.Do(func() { close(dropped) }) }))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, dropped
}

// get returns the status and body of path on h's mux.
func (h *harness) get(t *testing.T, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w.Code, w.Body.String()
}

// metric returns the value of series in h's /metrics.
func (h *harness) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, body := h.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	v, ok := samples(t, body)[series]
	if !ok {
		t.Fatalf("no %s in /metrics", series)
	}
	return v
}

// TestKicksCounted runs the real revocation path: alice holds two
// connections, an admin disables her in the store, the relay has the
// server close both, and authrelay_kicks_total rises by exactly one per
// closed connection, through the relay's Observer (before, serve counted
// kicks by wrapping the revocation's OnKick; a relay built without that
// wrapper counted none). Bob's connection, a positive control, stays up.
func TestKicksCounted(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			h := newHarness(t, e)
			h.addUser(t, "alice", "alice-pw-7f3a")
			h.addUser(t, "bob", "bob-pw-2c9e")
			a1, dropped1 := h.connect(t, "alice", "alice-pw-7f3a")
			a2, dropped2 := h.connect(t, "alice", "alice-pw-7f3a")
			bob, bobDropped := h.connect(t, "bob", "bob-pw-2c9e")
			for _, nc := range []*nats.Conn{a1, a2, bob} {
				if err := nc.Publish("app.hello", nil); err != nil {
					t.Fatal(err)
				}
				if err := nc.Flush(); err != nil {
					t.Fatalf("flush before the change: %v", err)
				}
			}
			if v := h.metric(t, "authrelay_kicks_total"); v != 0 {
				t.Fatalf("authrelay_kicks_total = %v before any change, want 0", v)
			}

			if err := h.db.SetDisabled(t.Context(), "alice", true); err != nil {
				t.Fatal(err)
			}
			for i, dropped := range []<-chan struct{}{dropped1, dropped2} {
				select {
				case <-dropped:
				case <-time.After(5 * time.Second):
					t.Fatalf("alice's connection %d still open 5s after she was disabled", i+1)
				}
			}
			waitFor(t, func() bool { return h.metric(t, "authrelay_kicks_total") >= 2 }, "authrelay_kicks_total 2")
			// Let the server query find the connections gone: a kick of
			// a connection already closed is not counted again.
			waitFor(t, func() bool { return h.relay.RevokeStats().Pending == 0 }, "revocation finished")
			if v := h.metric(t, "authrelay_kicks_total"); v != 2 {
				t.Errorf("authrelay_kicks_total = %v after two connections were kicked, want 2", v)
			}
			if s := h.relay.RevokeStats(); s.Kicks != 2 {
				t.Errorf("RevokeStats().Kicks = %d, want 2", s.Kicks)
			}
			if v := h.metric(t, `authrelay_decisions_total{reason="",result="allowed"}`); v != 3 {
				t.Errorf("allowed decisions = %v, want 3", v)
			}
			// Bob did not change: his connection is still up.
			select {
			case <-bobDropped:
				t.Fatal("bob's connection was closed")
			default:
			}
			if err := bob.Publish("app.hello", nil); err != nil {
				t.Fatal(err)
			}
			if err := bob.Flush(); err != nil {
				t.Errorf("bob after alice's kick: %v", err)
			}
		})
	}
}

// TestReadyChecks runs ReadyChecks against a real relay and store: ready
// while both work; "database file" with the store's file moved away (and
// authrelay_database_file_replaced 1), ready again when it is back; and
// "nats" once the relay has stopped.
func TestReadyChecks(t *testing.T) {
	h := newHarness(t, env{name: "xkey", xkey: true})
	waitFor(t, func() bool { code, _ := h.get(t, "/readyz"); return code == http.StatusOK }, "/readyz 200")
	if code, body := h.get(t, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz: %d %q, want 200 ok", code, body)
	}
	if v := h.metric(t, "authrelay_database_file_replaced"); v != 0 {
		t.Errorf("authrelay_database_file_replaced = %v, want 0", v)
	}

	path := h.db.Path()
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	code, body := h.get(t, "/readyz")
	// The harness opened its database with create on, as 'init' does (serve
	// opens with mode=rw): a pooled connection the relay opens meanwhile
	// creates an empty file at the path, which is "another file".
	want := "not ready: database file: the database file was removed or replaced: " + path
	if code != http.StatusServiceUnavailable || !(strings.HasPrefix(body, want+" no longer exists") || strings.HasPrefix(body, want+" is now another file")) {
		t.Errorf("/readyz with the file away: %d %q, want 503 %q (no longer exists, or another file)", code, body, want)
	}
	if v := h.metric(t, "authrelay_database_file_replaced"); v != 1 {
		t.Errorf("authrelay_database_file_replaced = %v with the file away, want 1", v)
	}
	if err := os.Rename(path+".moved", path); err != nil {
		t.Fatal(err)
	}
	if code, body := h.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the file back: %d %q", code, body)
	}

	h.stop()
	if code, body := h.get(t, "/readyz"); code != http.StatusServiceUnavailable || body != "not ready: nats: relay not connected to nats or not subscribed\n" {
		t.Errorf("/readyz after the relay stopped: %d %q", code, body)
	}
	if code, body := h.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz after the relay stopped: %d %q", code, body)
	}
}

// syncBuffer is a log destination safe for the relay's goroutines and the
// test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newLogger logs at debug level to w.
func newLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
