package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/cluster"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/node"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// natsCluster is three nats-servers in this process, each run from the
// nats.conf of its own cluster node's directory, so that every login goes
// through auth_callout to the relays.
type natsCluster struct {
	t       *testing.T
	dirs    []deploy.Layout
	urls    []string
	servers []*server.Server
}

// newCluster makes three cluster nodes' directories as the commands do —
// the first with 'init --cluster-listen --routes', the others with 'init
// --join' its secrets.json — and starts their servers from their nats.conf.
// single, when not nil, runs on the first directory while it is still a
// single node, which 'cluster enable' then makes the first node.
func newCluster(t *testing.T, single func(l deploy.Layout)) *natsCluster {
	t.Helper()
	ports := loopback.Ports(t, 6)
	c := &natsCluster{t: t, servers: make([]*server.Server, 3)}
	var routes []string
	for _, p := range ports[3:] {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i := range 3 {
		l := deploy.Layout{Dir: t.TempDir()}
		listen := fmt.Sprintf("127.0.0.1:%d", ports[i])
		o := deploy.InitOptions{Accounts: []string{"APP"}, Listen: listen, BcryptCost: 4,
			Cluster: deploy.ClusterOptions{Listen: fmt.Sprintf("127.0.0.1:%d", ports[3+i]), Routes: routes}}
		switch {
		case i > 0:
			o.Accounts, o.Cluster.Join = nil, c.dirs[0].Path(deploy.SecretsFile)
			if err := deploy.Init(t.Context(), l, o); err != nil {
				t.Fatalf("init --join: %v", err)
			}
		case single != nil:
			cl := o.Cluster
			o.Cluster = deploy.ClusterOptions{}
			if err := deploy.Init(t.Context(), l, o); err != nil {
				t.Fatalf("init: %v", err)
			}
			cheapHashPolicy(t, l)
			single(l)
			if _, err := deploy.EnableCluster(l, cl); err != nil {
				t.Fatalf("cluster enable: %v", err)
			}
		default:
			if err := deploy.Init(t.Context(), l, o); err != nil {
				t.Fatalf("init: %v", err)
			}
			cheapHashPolicy(t, l) // the first node's, which the log carries to the others
		}
		c.dirs = append(c.dirs, l)
		c.urls = append(c.urls, "nats://"+listen)
	}
	for i := range 3 {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.servers {
			c.stop(i)
		}
	})
	return c
}

// start starts server i (0-based) from its directory's nats.conf.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	opts, err := server.ProcessConfigFile(c.dirs[i].Path(deploy.ServerConf))
	if err != nil {
		c.t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		c.t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("server n%d not ready", i+1)
	}
	c.servers[i] = s
}

// stop shuts server i down, if it runs.
func (c *natsCluster) stop(i int) {
	if s := c.servers[i]; s != nil {
		s.Shutdown()
		s.WaitForShutdown()
		c.servers[i] = nil
	}
}

// startRelay runs node.Run on l against the separate server at url, and
// returns once the relay answers logins (ready true) or, with ready
// false, at once.
func startRelay(t *testing.T, l deploy.Layout, url string, wait bool, opts ...func(*node.Config)) *running {
	t.Helper()
	log := &syncBuffer{}
	ready := make(chan string, 1)
	cfg := node.Config{
		Layout:          l,
		URL:             url,
		SessionTTL:      time.Hour,
		DecisionTimeout: relay.DefaultDecisionTimeout,
		CacheTTL:        relay.DefaultCacheTTL,
		CacheSize:       relay.DefaultCacheSize,
		MaxClockSkew:    relay.DefaultMaxClockSkew,
		Lockout:         accounts.DefaultLockoutPolicy,
		Revoke:          true,
		RevokePoll:      50 * time.Millisecond,
		RevokeReplay:    node.DefaultRevokeReplay,
		ServiceVersion:  "0.0.0-test",
		Logger:          slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:             time.Now,
		OnReady:         func(url string) { ready <- url },
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, cfg) }()
	r := &running{log: log, ready: ready}
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				var b strings.Builder
				pprof.Lookup("goroutine").WriteTo(&b, 1)
				runErr = errors.New("node did not stop within 30s of cancel\n" + b.String())
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
		if t.Failed() {
			t.Logf("node %s log:\n%s", l.Dir, log.String())
		}
	})
	if wait {
		select {
		case r.url = <-ready:
		case err := <-done:
			t.Fatalf("node stopped before it was ready: %v\n%s", err, log.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("node not ready after 30s\n%s", log.String())
		}
	}
	return r
}

// admin makes one admin change on l as a command does: through the store
// deploy opens for the directory (in cluster mode attached to the log).
func admin(t *testing.T, l deploy.Layout, action string, fn func(ctx context.Context, db *store.DB) error) error {
	t.Helper()
	var warned []string
	db, err := l.OpenStore(t.Context(), deploy.StoreOptions{Getenv: func(string) string { return "" }, Warn: func(m string) { warned = append(warned, m) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	}()
	return db.Admin(t.Context(), "test", action, func(ctx context.Context) (string, error) { return "", fn(ctx, db) })
}

var appUser = accounts.Permissions{
	Pub: accounts.Rule{Allow: []string{"orders.>"}},
	Sub: accounts.Rule{Allow: []string{"orders.>", "_INBOX.>"}},
}

func addUserAdmin(t *testing.T, l deploy.Layout, name, password string) {
	t.Helper()
	err := admin(t, l, "user add", func(ctx context.Context, db *store.DB) error {
		return db.AddUser(ctx, accounts.User{Name: name, Account: "APP", Permissions: appUser}, password)
	})
	if err != nil {
		t.Fatalf("add user %s: %v", name, err)
	}
}

// eventually retries connect as user to url until it succeeds or d has
// passed, and returns the connection and how long it took.
func eventually(t *testing.T, d time.Duration, url, user, password string, opts ...nats.Option) (*nats.Conn, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		nc, err := nats.Connect(url, append([]nats.Option{nats.UserInfo(user, password), nats.Timeout(5 * time.Second), nats.NoReconnect()}, opts...)...)
		if err == nil {
			return nc, time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("connect as %s to %s: %v after %v", user, url, err, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// modeEnv is where a test of behaviour shared by both modes makes its
// changes and logs in: with one node, all the same node; in a cluster,
// three different ones.
type modeEnv struct {
	addOn, disableOn    deploy.Layout
	loginURL, revokeURL string
	revokeDir           deploy.Layout
	// copies are every node's directory.
	copies []deploy.Layout
}

func singleNode(t *testing.T) modeEnv {
	l := initDir(t, true)
	r := start(t, l)
	return modeEnv{addOn: l, disableOn: l, loginURL: r.url, revokeURL: r.url, revokeDir: l, copies: []deploy.Layout{l}}
}

func threeNodes(t *testing.T) modeEnv {
	c := newCluster(t, nil)
	for i := range 3 {
		startRelay(t, c.dirs[i], c.urls[i], true)
	}
	return modeEnv{addOn: c.dirs[0], loginURL: c.urls[2], disableOn: c.dirs[1], revokeURL: c.urls[0], revokeDir: c.dirs[0], copies: c.dirs}
}

// TestAddDisableLoginAcrossModes is one body in single-node and cluster
// mode: a user added through the admin path logs in within 1 s (in a
// cluster: added on node 1, through server 3); disabled (on node 2), their
// live connection (through server 1) is kicked within 1 s, and the
// reconnect is refused with the relay's reason user_disabled.
func TestAddDisableLoginAcrossModes(t *testing.T) {
	for _, mode := range []struct {
		name string
		env  func(t *testing.T) modeEnv
	}{{"single-node", singleNode}, {"cluster", threeNodes}} {
		t.Run(mode.name, func(t *testing.T) {
			e := mode.env(t)
			addUserAdmin(t, e.addOn, "alice", "pw-alice-1")
			nc, took := eventually(t, time.Second, e.loginURL, "alice", "pw-alice-1")
			nc.Close()
			t.Logf("added, then logged in after %v", took)

			closed := make(chan struct{})
			live, _ := eventually(t, time.Second, e.revokeURL, "alice", "pw-alice-1", nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
			defer live.Close()
			roundTrip(t, live, "orders.new") // the positive control: it works before
			reasons := authErrors(t, e.revokeDir, e.revokeURL)
			began := time.Now()
			if err := admin(t, e.disableOn, "user disable", func(ctx context.Context, db *store.DB) error {
				return db.SetDisabled(ctx, "alice", true)
			}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-closed:
				t.Logf("disabled, then kicked after %v", time.Since(began))
			case <-time.After(time.Second):
				t.Fatal("alice's connection still open 1 s after the disable")
			}
			// The first relay to apply the disable kicked the connection;
			// a login goes to any relay of the queue group, and every
			// copy applies the change within 1 s.
			for _, l := range e.copies {
				waitFor(t, time.Second, "every copy has alice disabled", func() bool { return userDisabled(t, l, "alice") })
			}
			requireDenied(t, reasons, accounts.ReasonUserDisabled, e.revokeURL, "alice", "pw-alice-1")
			// One kick, one audit row, on every copy: the relays that came
			// second found the connection gone.
			deadline := time.Now().Add(2 * time.Second)
			for {
				n := kickRows(t, e.revokeDir, "alice")
				if n > 1 {
					t.Fatalf("%d connection kick rows for alice's one connection, want 1", n)
				}
				if n == 1 && time.Now().After(deadline) {
					break
				}
				if n == 0 && time.Now().After(deadline) {
					t.Fatal("no connection kick row for alice 2 s after the kick")
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// TestClusterWithoutQuorum: a single-node directory becomes the first
// node, its user logging in through another server; with two of three servers down, logins go on
// through the survivor from its relay's copy; a write fails at once with
// the no-quorum error and changes nothing; a relay started meanwhile does
// not answer until the log is back and it has caught up; cluster status
// then shows every relay's position.
func TestClusterWithoutQuorum(t *testing.T) {
	// Node 1 was a single node with a user: its relay, started first,
	// writes its database into the empty log.
	c := newCluster(t, func(l deploy.Layout) { addUserAdmin(t, l, "dora", "pw-dora-1") })
	var relays []*running
	for i := range 3 {
		relays = append(relays, startRelay(t, c.dirs[i], c.urls[i], true))
	}
	nc, _ := eventually(t, time.Second, c.urls[2], "dora", "pw-dora-1")
	nc.Close()
	addUserAdmin(t, c.dirs[0], "alice", "pw-alice-1")
	nc, _ = eventually(t, time.Second, c.urls[0], "alice", "pw-alice-1")
	nc.Close()

	t.Run("an account added on node 1 is served by node 2's server", func(t *testing.T) {
		if err := admin(t, c.dirs[0], "account add", func(ctx context.Context, db *store.DB) error {
			if err := db.AddAccount(ctx, "ORDERS"); err != nil {
				return err
			}
			return db.AddUser(ctx, accounts.User{Name: "olga", Account: "ORDERS", Permissions: appUser}, "pw-olga-1")
		}); err != nil {
			t.Fatal(err)
		}
		// Node 2's relay applies the change, rewrites its accounts.conf and
		// has its server reload it; until then the server has no ORDERS.
		nc, took := eventually(t, 5*time.Second, c.urls[1], "olga", "pw-olga-1")
		roundTrip(t, nc, "orders.o")
		nc.Close()
		t.Logf("account added on node 1, user in it logged in through server 2 after %v", took)
		// The file, which a restart of server 2 reads, has it too (the
		// relay's loop writes it at most a quarter second after the apply;
		// the server may have reloaded from it already or not).
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, err := os.ReadFile(c.dirs[1].Path(deploy.AccountsConf))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "ORDERS") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node 2's accounts.conf has no ORDERS 5 s after the login (%d bytes):\n%s", len(b), b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	// Relay 3 stops; carol is added while it is away.
	if err := relays[2].stop(); err != nil {
		t.Fatal(err)
	}
	addUserAdmin(t, c.dirs[0], "carol", "pw-carol-1")

	c.stop(1)
	c.stop(2)
	t.Run("logins go on from the copy", func(t *testing.T) {
		nc, _ := eventually(t, 2*time.Second, c.urls[0], "alice", "pw-alice-1")
		roundTrip(t, nc, "orders.x")
		nc.Close()
	})
	t.Run("writes fail at once and change nothing", func(t *testing.T) {
		db, err := c.dirs[0].OpenLocal(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		before, err := db.StateDigest(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		err = admin(t, c.dirs[0], "user add", func(ctx context.Context, db *store.DB) error {
			return db.AddUser(ctx, accounts.User{Name: "bob", Account: "APP", Permissions: appUser}, "pw-bob-1")
		})
		if !errors.Is(err, cluster.ErrNoQuorum) {
			t.Fatalf("user add without quorum: %v, want cluster.ErrNoQuorum", err)
		}
		if !strings.Contains(err.Error(), "the change is not made") {
			t.Errorf("error %q does not say the change is not made", err)
		}
		// The command learns the stream's servers from the survivor's
		// relay and asks each: it fails within a second.
		if took := time.Since(began); took > time.Second {
			t.Errorf("the refused write took %v, want a second at most", took)
		}
		after, err := db.StateDigest(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if before != after {
			t.Error("the refused write changed the local copy")
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	})

	// Relay 3 starts with servers 1 and 2 down: its server (3) runs, but
	// the log has no quorum, so it must not answer.
	c.stop(0)
	c.start(2)
	httpAddr := loopback.Addr(t)
	r3 := startRelay(t, c.dirs[2], c.urls[2], false, func(cfg *node.Config) { cfg.HTTPAddr = httpAddr })
	select {
	case <-r3.ready:
		t.Fatal("relay 3 answered logins while the cluster log was unreachable")
	case <-time.After(3 * time.Second):
	}
	if code, body := readyz(t, httpAddr); code != http.StatusServiceUnavailable || !strings.Contains(body, "cluster log") {
		t.Errorf("/readyz while the log is unreachable: %d %q, want 503 naming the cluster log", code, body)
	}
	if !strings.Contains(r3.log.String(), "cannot reach the cluster log") {
		t.Errorf("relay 3 does not log why it waits:\n%s", r3.log.String())
	}
	c.start(0)
	c.start(1)
	select {
	case <-r3.ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("relay 3 not ready 30 s after the servers came back")
	}
	// Only relay 3 answers on server 3 before the others reconnect; either
	// way carol, added while it was away, logs in through it.
	nc, _ = eventually(t, 5*time.Second, c.urls[2], "carol", "pw-carol-1")
	nc.Close()
	if code, body := readyz(t, httpAddr); code != http.StatusOK {
		t.Errorf("/readyz once caught up: %d %q, want 200", code, body)
	}

	t.Run("status", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := node.Status(t.Context(), c.dirs[0], c.urls[0], nil, time.Now())
			if err == nil && len(st.Relays) == 3 && allCaughtUp(st) {
				t.Logf("status: %+v", st)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status after 10 s: %+v, %v; want 3 relays caught up", st, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// readyz returns the status and body of GET /readyz at addr.
func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// userDisabled reports whether l's copy has user disabled.
func userDisabled(t *testing.T, l deploy.Layout, user string) bool {
	t.Helper()
	db, err := l.OpenLocal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.User(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return u.Disabled
}

// kickRows counts the connection kick rows of user in l's audit trail.
func kickRows(t *testing.T, l deploy.Layout, user string) int {
	t.Helper()
	db, err := l.OpenLocal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Audit(t.Context(), store.AuditFilter{User: user, Kind: store.AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.Action == "connection kick" {
			n++
		}
	}
	return n
}

func allCaughtUp(st node.ClusterStatus) bool {
	for _, r := range st.Relays {
		if r.Behind != 0 || r.AgeSeconds > 3 {
			return false
		}
	}
	return st.Last > 0 && st.Applied == st.Last
}

// TestClusterJoiningNodeHasTheAccountsWhenReady: a node that joins starts
// with an accounts.conf without the cluster's accounts; by the time its
// relay answers logins, its server has them, so the first login into an
// account that came from the log succeeds (it used to be refused by the
// server, "account missing", until the relay's background loop rewrote
// accounts.conf, seconds later).
func TestClusterJoiningNodeHasTheAccountsWhenReady(t *testing.T) {
	c := newCluster(t, func(l deploy.Layout) {
		if err := admin(t, l, "account add", func(ctx context.Context, db *store.DB) error {
			if err := db.AddAccount(ctx, "ORDERS"); err != nil {
				return err
			}
			return db.AddUser(ctx, accounts.User{Name: "olga", Account: "ORDERS", Permissions: appUser}, "pw-olga-1")
		}); err != nil {
			t.Fatal(err)
		}
	})
	startRelay(t, c.dirs[0], c.urls[0], true)
	b, err := os.ReadFile(c.dirs[1].Path(deploy.AccountsConf))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "ORDERS") {
		t.Fatalf("node 2's accounts.conf has ORDERS before its relay ran:\n%s", b)
	}
	r := startRelay(t, c.dirs[1], c.urls[1], true)
	nc, err := nats.Connect(c.urls[1], nats.UserInfo("olga", "pw-olga-1"), nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		t.Fatalf("olga, in ORDERS from the log, through node 2 as soon as its relay is ready: %v\n%s", err, r.log.String())
	}
	roundTrip(t, nc, "orders.o")
	nc.Close()
}

// TestClusterJoiningNodeWaitsForTheFirstNode: a node made with 'init
// --join' whose relay starts before the first node's has written its
// database into the (empty) cluster log does not report ready, on /readyz
// or in its log, nor answer a login: its empty copy only looks caught up
// with the empty log. Once the first node's relay has written the log, the
// joining relay is ready, and the first node's user logs in through it at
// the first try.
func TestClusterJoiningNodeWaitsForTheFirstNode(t *testing.T) {
	c := newCluster(t, func(l deploy.Layout) { addUserAdmin(t, l, "dora", "pw-dora-1") })
	httpAddr := loopback.Addr(t)
	r2 := startRelay(t, c.dirs[1], c.urls[1], false, func(cfg *node.Config) { cfg.HTTPAddr = httpAddr })
	select {
	case <-r2.ready:
		t.Fatal("the joining relay reported ready before the first node wrote the cluster log")
	case <-time.After(3 * time.Second):
	}
	if code, body := readyz(t, httpAddr); code != http.StatusServiceUnavailable || !strings.Contains(body, "cluster log") {
		t.Errorf("/readyz of the joining relay before the first node's snapshot: %d %q, want 503 naming the cluster log", code, body)
	}
	if log := r2.log.String(); !strings.Contains(log, "waiting for the cluster's first node") || strings.Contains(log, "caught up with the cluster log") {
		t.Errorf("the joining relay's log does not say it waits for the first node, or says it caught up:\n%s", log)
	}
	startRelay(t, c.dirs[0], c.urls[0], true)
	select {
	case <-r2.ready:
	case <-time.After(15 * time.Second):
		t.Fatalf("the joining relay not ready 15 s after the first node's relay\n%s", r2.log.String())
	}
	if code, body := readyz(t, httpAddr); code != http.StatusOK {
		t.Errorf("/readyz once caught up: %d %q, want 200", code, body)
	}
	nc, err := nats.Connect(c.urls[1], nats.UserInfo("dora", "pw-dora-1"), nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		t.Fatalf("dora, from the first node's snapshot, through node 2 as soon as its relay is ready: %v", err)
	}
	roundTrip(t, nc, "orders.d")
	nc.Close()
}

// TestClusterHashPolicyAndRehash: 'hash set' on node 1 reaches node 2's
// running relay without a restart (it logs the new policy), and a user
// added on node 2 afterwards is hashed at it; a login through node 2 of a
// user whose hash is at the old policy is rehashed by node 2's relay
// through the cluster log: node 3's copy holds the new hash.
func TestClusterHashPolicyAndRehash(t *testing.T) {
	c := newCluster(t, nil)
	var relays []*running
	for i := range 3 {
		relays = append(relays, startRelay(t, c.dirs[i], c.urls[i], true))
	}
	addUserAdmin(t, c.dirs[0], "alice", "pw-alice-1")
	policy := store.Argon2Params{Memory: 8 << 10, Time: 5, Threads: 1, SaltLen: 16, KeyLen: 32}
	if err := admin(t, c.dirs[0], "hash set", func(ctx context.Context, db *store.DB) error {
		return db.SetHashPolicy(ctx, policy)
	}); err != nil {
		t.Fatal(err)
	}
	// Nodes 2 and 3 have the new policy (node 3's copy is read below: a
	// hash is current or not by the copy's own policy).
	deadline := time.Now().Add(5 * time.Second)
	for _, i := range []int{1, 2} {
		for !strings.Contains(relays[i].log.String(), `the hash policy changed on another node: new passwords are hashed at it, and users rehashed at their next login" policy="argon2id m=8192 KiB (8 MiB), t=5`) {
			if time.Now().After(deadline) {
				t.Fatalf("node %d's relay did not log the new policy within 5 s:\n%s", i+1, relays[i].log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// current reports whether the user's hash in l's copy is at l's
	// policy, once the copy has the user.
	current := func(l deploy.Layout, name string) bool {
		t.Helper()
		db, err := l.OpenLocal(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, ok, err := db.HashInfo(t.Context(), name)
			if err == nil {
				return ok
			}
			if !errors.Is(err, store.ErrNotFound) || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	addUserAdmin(t, c.dirs[1], "bob", "pw-bob-1")
	if !current(c.dirs[0], "bob") {
		t.Error("bob, added on node 2 after 'hash set' on node 1, is not hashed at the new policy")
	}
	if current(c.dirs[2], "alice") {
		t.Fatal("alice's hash is at the new policy before she logged in")
	}
	nc, _ := eventually(t, 2*time.Second, c.urls[1], "alice", "pw-alice-1")
	nc.Close()
	deadline = time.Now().Add(5 * time.Second)
	for !current(c.dirs[2], "alice") {
		if time.Now().After(deadline) {
			t.Fatalf("alice's hash on node 3 not at the new policy 5 s after her login through node 2\n%s", relays[1].log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	nc, _ = eventually(t, 2*time.Second, c.urls[2], "alice", "pw-alice-1")
	nc.Close()
}

// TestClusterChangeBeforeTheFirstRelay: an admin change on the first node
// before its relay has ever run (the log still empty) writes the node's
// database into the log first, as the relay would: a joining node then has
// the account the change's user stands on, and both users log in through
// it. (The change used to be the log's first entry alone: the joining
// node, without the account, could not apply it.)
func TestClusterChangeBeforeTheFirstRelay(t *testing.T) {
	c := newCluster(t, func(l deploy.Layout) { addUserAdmin(t, l, "dora", "pw-dora-1") })
	addUserAdmin(t, c.dirs[0], "alice", "pw-alice-1")
	startRelay(t, c.dirs[0], c.urls[0], true)
	r2 := startRelay(t, c.dirs[1], c.urls[1], false)
	select {
	case <-r2.ready:
	case <-time.After(15 * time.Second):
		t.Fatalf("the joining relay not ready after 15 s\n%s", r2.log.String())
	}
	for _, u := range []struct{ name, password string }{{"dora", "pw-dora-1"}, {"alice", "pw-alice-1"}} {
		nc, _ := eventually(t, 2*time.Second, c.urls[1], u.name, u.password)
		nc.Close()
	}
}

// TestClusterRelayStaysOnItsServer: when a node's server goes down, its
// relay does not go on answering logins through another server of the
// cluster (the queue group spans the routes), where it would answer from a
// copy whose follower has stopped with its server; the other nodes' relays
// answer meanwhile.
func TestClusterRelayStaysOnItsServer(t *testing.T) {
	c := newCluster(t, nil)
	for i := range 3 {
		startRelay(t, c.dirs[i], c.urls[i], true)
	}
	relays := func(i int) int {
		t.Helper()
		cz, err := c.servers[i].Connz(&server.ConnzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ci := range cz.Conns {
			if ci.Name == "authrelay" {
				n++
			}
		}
		return n
	}
	// The control: each server has its own relay's connection.
	for i := range 3 {
		if n := relays(i); n != 1 {
			t.Fatalf("server n%d has %d relay connections, want its own relay's", i+1, n)
		}
	}
	addUserAdmin(t, c.dirs[0], "alice", "alice-pass-1")
	c.stop(1)
	// The relay reconnects every 100-200 ms: 3 s is many attempts.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, i := range []int{0, 2} {
			if n := relays(i); n != 1 {
				t.Fatalf("with n2's server down, server n%d has %d relay connections: n2's relay went on through it", i+1, n)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, i := range []int{0, 2} {
		nc, _ := eventually(t, 5*time.Second, c.urls[i], "alice", "alice-pass-1")
		nc.Close()
	}
}
