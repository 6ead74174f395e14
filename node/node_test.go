package node_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/node"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// envs are the modes every test runs in: with the auth_callout xkey in
// nats.conf, and without it.
var envs = []struct {
	name string
	xkey bool
}{
	{"xkey", true},
	{"no-xkey", false},
}

// syncBuffer is a bytes.Buffer safe for concurrent writers: the node's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// initDir initialises a directory as 'authrelay init' does, without the
// xkey line in nats.conf when xkey is false, with the lightest hash policy
// the store takes.
func initDir(t *testing.T, xkey bool) deploy.Layout {
	t.Helper()
	l := deploy.Layout{Dir: t.TempDir()}
	if err := deploy.Init(t.Context(), l, deploy.InitOptions{Accounts: []string{"APP"}, Listen: deploy.DefaultListen, BcryptCost: 4}); err != nil {
		t.Fatalf("init: %v", err)
	}
	cheapHashPolicy(t, l)
	if !xkey {
		path := l.Path(deploy.ServerConf)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "xkey:") {
				kept = append(kept, line)
			}
		}
		if len(kept) == strings.Count(string(b), "\n")+1 {
			t.Fatalf("%s has no xkey line to remove", path)
		}
		if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// cheapHashPolicy stores in l's database the lightest argon2id policy the
// hash code takes (8 MiB, one pass): under the race detector the default
// costs hundreds of milliseconds a login, enough to push a loaded machine
// past the server's 2 s auth timeout. It writes the setting row directly,
// as only a test may.
func cheapHashPolicy(t *testing.T, l deploy.Layout) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+l.Path(deploy.DatabaseFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO settings (key, value, updated) VALUES ('argon2id', ?, '')
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		`{"memory_kib":8192,"time":1,"threads":1,"salt_len":16,"key_len":32}`); err != nil {
		t.Fatal(err)
	}
}

// addUser adds a user of account APP who may publish and subscribe on
// orders.>, through the store.
func addUser(t *testing.T, l deploy.Layout, name, password string) {
	t.Helper()
	db, err := l.OpenDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := accounts.User{Name: name, Account: "APP", Permissions: accounts.Permissions{
		Pub: accounts.Rule{Allow: []string{"orders.>"}},
		Sub: accounts.Rule{Allow: []string{"orders.>", "_INBOX.>"}},
	}}
	if err := db.AddUser(t.Context(), u, password); err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
}

// running is a node started by start.
type running struct {
	url    string
	log    *syncBuffer
	reload chan struct{}
	// ready receives the URL when the relay answers logins (startRelay).
	ready chan string
	// stop cancels the node's context and returns what Run returned.
	stop func() error
}

// start runs an embedded node on l, on any free loopback port, and waits
// for OnReady. The node is stopped when the test ends, if it was not.
func start(t *testing.T, l deploy.Layout) *running {
	t.Helper()
	log := &syncBuffer{}
	ready := make(chan string, 2)
	reload := make(chan struct{})
	cfg := node.Config{
		Layout:          l,
		Embedded:        true,
		Listen:          "127.0.0.1:0",
		BcryptCost:      4,
		SessionTTL:      time.Hour,
		DecisionTimeout: relay.DefaultDecisionTimeout,
		CacheTTL:        relay.DefaultCacheTTL,
		CacheSize:       relay.DefaultCacheSize,
		MaxClockSkew:    relay.DefaultMaxClockSkew,
		Lockout:         accounts.DefaultLockoutPolicy,
		Revoke:          true,
		RevokePoll:      relay.DefaultRevokePoll,
		RevokeReplay:    node.DefaultRevokeReplay,
		AuditRetention:  30 * 24 * time.Hour,
		ServiceVersion:  "0.0.0-test",
		Logger:          slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:             time.Now,
		Reload:          reload,
		OnReady:         func(url string) { ready <- url },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, cfg) }()
	r := &running{log: log, reload: reload}
	select {
	case r.url = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("node stopped before it was ready: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("node not ready after 30s\n%s", log.String())
	}
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("node did not stop within 30s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
		if t.Failed() {
			t.Logf("node log:\n%s", log.String())
		}
	})
	return r
}

// connect logs in to url as user with password.
func connect(url, user, password string) (*nats.Conn, error) {
	// One attempt, on url alone: a refused client would try every server
	// of a cluster it learnt of.
	return nats.Connect(url, nats.UserInfo(user, password), nats.Timeout(5*time.Second), nats.NoReconnect(), nats.IgnoreDiscoveredServers())
}

// authErrors subscribes, as the relay's user of secrets.json (in the
// callout account), to the server's $SYS.ACCOUNT.CLIENT.AUTH.ERR events,
// and returns the reasons of the connects it refused.
func authErrors(t *testing.T, l deploy.Layout, url string) <-chan string {
	t.Helper()
	sec, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := connect(url, sec.RelayUser, sec.RelayPassword)
	if err != nil {
		t.Fatalf("connect as the relay user: %v", err)
	}
	t.Cleanup(nc.Close)
	reasons := make(chan string, 16)
	if _, err := nc.Subscribe("$SYS.ACCOUNT.CLIENT.AUTH.ERR", func(m *nats.Msg) {
		var ev struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			ev.Reason = "decode event: " + err.Error()
		}
		reasons <- ev.Reason
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return reasons
}

// requireDenied connects as user and checks that the server refuses it
// with Authorization Violation and that the relay gave reason want.
func requireDenied(t *testing.T, reasons <-chan string, want, url, user, password string) {
	t.Helper()
	nc, err := connect(url, user, password)
	if err == nil {
		nc.Close()
		t.Fatalf("connect as %q succeeded, want Authorization Violation", user)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect as %q: %v, want Authorization Violation", user, err)
	}
	select {
	case got := <-reasons:
		if !strings.HasSuffix(got, ": "+want) {
			t.Errorf("auth error reason = %q, want it to end in %q", got, want)
		}
	case <-time.After(3 * time.Second):
		t.Errorf("no auth error event for %q", user)
	}
}

// roundTrip checks that nc can publish on subject and receive it back.
func roundTrip(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(subject, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("receive on %s: %v", subject, err)
	}
	if string(m.Data) != "hi" {
		t.Fatalf("received %q on %s, want %q", m.Data, subject, "hi")
	}
}

// TestRunServesLogins starts a node in-process on a fresh directory: a
// user added through the store logs in at the URL OnReady gave, and uses
// the permissions the relay granted; a wrong password is refused with the
// relay's reason; cancelling the context stops the node with no error,
// after every login's audit row is written, the repeated logins that the
// audit writer aggregates included.
func TestRunServesLogins(t *testing.T) {
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) {
			l := initDir(t, env.xkey)
			addUser(t, l, "alice", "alice-pw-5b2e91")
			n := start(t, l)

			const logins = 3
			for i := range logins {
				nc, err := connect(n.url, "alice", "alice-pw-5b2e91")
				if err != nil {
					t.Fatalf("login %d as alice at %s: %v", i+1, n.url, err)
				}
				if i == 0 {
					roundTrip(t, nc, "orders.new")
				}
				nc.Close()
			}
			reasons := authErrors(t, l, n.url)
			requireDenied(t, reasons, relay.ReasonBadCredentials, n.url, "alice", "not-alices-password")

			if err := n.stop(); err != nil {
				t.Fatalf("Run after cancel: %v, want nil", err)
			}
			db, err := l.OpenDatabase(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			entries, err := db.Audit(t.Context(), store.AuditFilter{User: "alice", Kind: store.AuditLogin})
			if err != nil {
				t.Fatal(err)
			}
			var allowed, denied int64
			for _, e := range entries {
				switch {
				case e.Result == store.AuditAllowed:
					allowed += e.Count
				case e.Result == store.AuditDenied && e.Reason == relay.ReasonBadCredentials:
					denied += e.Count
				default:
					t.Errorf("unexpected audit row %+v", e)
				}
			}
			if allowed != logins || denied != 1 {
				t.Errorf("audit trail after stop: %d allowed logins of alice and %d bad_credentials, want %d and 1: %+v", allowed, denied, logins, entries)
			}
		})
	}
}

// varzLoadTime asks the server, as the admin user of secrets.json, when it
// last loaded its config.
func varzLoadTime(l deploy.Layout, url string) (time.Time, error) {
	sec, err := l.LoadSecrets()
	if err != nil {
		return time.Time{}, err
	}
	nc, err := connect(url, sec.AdminUser, sec.AdminPassword)
	if err != nil {
		return time.Time{}, fmt.Errorf("connect as the admin user: %w", err)
	}
	defer nc.Close()
	m, err := nc.Request("$SYS.REQ.SERVER.PING.VARZ", nil, 5*time.Second)
	if err != nil {
		return time.Time{}, fmt.Errorf("varz: %w", err)
	}
	var resp struct {
		Data struct {
			ConfigLoadTime time.Time `json:"config_load_time"`
		} `json:"data"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return time.Time{}, fmt.Errorf("varz response %q: %w", m.Data, err)
	}
	if resp.Data.ConfigLoadTime.IsZero() {
		return time.Time{}, fmt.Errorf("varz response without config_load_time: %s", m.Data)
	}
	return resp.Data.ConfigLoadTime, nil
}

// TestRunReloadsEmbeddedServer: a receive on Config.Reload has the
// embedded server load its config again (the server's own config load
// time moves on), and the server keeps the address Listen gave and keeps
// answering logins through the relay.
func TestRunReloadsEmbeddedServer(t *testing.T) {
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) {
			l := initDir(t, env.xkey)
			addUser(t, l, "alice", "alice-pw-5b2e91")
			n := start(t, l)
			before, err := varzLoadTime(l, n.url)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case n.reload <- struct{}{}:
			case <-time.After(10 * time.Second):
				t.Fatal("the node took no reload request within 10s")
			}
			// A connect while the server reloads may be closed: ask again
			// until the load time moves on.
			deadline := time.Now().Add(10 * time.Second)
			for {
				after, err := varzLoadTime(l, n.url)
				if err == nil && after.After(before) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("config load time still %v 10s after a reload request (last error: %v)", before, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			nc, err := connect(n.url, "alice", "alice-pw-5b2e91")
			if err != nil {
				t.Fatalf("login as alice after reload: %v", err)
			}
			defer nc.Close()
			roundTrip(t, nc, "orders.new")
			if !strings.Contains(n.log.String(), "reloaded nats.conf") {
				t.Errorf("the node did not log the reload:\n%s", n.log.String())
			}
		})
	}
}

// TestRunTwoNodesInOneProcess: two nodes run side by side in one process,
// each on its own directory and server, and share nothing: a user of one
// logs in there and is unknown to the other.
func TestRunTwoNodesInOneProcess(t *testing.T) {
	la, lb := initDir(t, true), initDir(t, true)
	addUser(t, la, "alice", "alice-pw-5b2e91")
	addUser(t, lb, "bob", "bob-pw-0c4d77")
	a, b := start(t, la), start(t, lb)
	if a.url == b.url {
		t.Fatalf("both nodes at %s", a.url)
	}
	for _, c := range []struct {
		url, user, password string
	}{{a.url, "alice", "alice-pw-5b2e91"}, {b.url, "bob", "bob-pw-0c4d77"}} {
		nc, err := connect(c.url, c.user, c.password)
		if err != nil {
			t.Fatalf("login as %s at %s: %v", c.user, c.url, err)
		}
		roundTrip(t, nc, "orders.new")
		nc.Close()
	}
	requireDenied(t, authErrors(t, lb, b.url), relay.ReasonBadCredentials, b.url, "alice", "alice-pw-5b2e91")
	requireDenied(t, authErrors(t, la, a.url), relay.ReasonBadCredentials, a.url, "bob", "bob-pw-0c4d77")
}
