package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/store"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// testParams make argon2id cheap: these tests are about replication.
var testParams = store.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// natsCluster is three nats-servers in this process, routed on loopback,
// with JetStream in the AUTH account. Ports are fixed at the start, so that
// a server shut down comes back where its peers and clients look for it.
// Every route goes through a proxy of the test's (one for each server and
// peer it dials), so that kill can cut a server off at once, as a crash
// does: its peers see their routes to it close, and hear nothing more from
// it (a server shut down hands over its JetStream leaderships first).
type natsCluster struct {
	t       *testing.T
	confs   []string
	clients []int
	servers []*server.Server
	// proxies[i] are the proxies of routes to or from server i.
	proxies [][]*proxy
}

const clusterConf = `
listen: 127.0.0.1:%d
server_name: n%d
jetstream { store_dir: '%s' }
cluster {
	name: authrelay-test
	listen: 127.0.0.1:%d
	# Routes only as listed (through the proxies), never to a peer's
	# own address learnt from another.
	no_advertise: true
	routes: [%s]
}
accounts {
	AUTH { jetstream: enabled, users: [{user: relay, password: relay-pw}] }
	$SYS { users: [{user: sys, password: sys-pw}] }
}
`

func newNATSCluster(t *testing.T) *natsCluster {
	t.Helper()
	ports := loopback.Ports(t, 6)
	c := &natsCluster{t: t, clients: ports[:3], servers: make([]*server.Server, 3), proxies: make([][]*proxy, 3)}
	dir := t.TempDir()
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if j == i {
				continue
			}
			p := newProxy(t, fmt.Sprintf("127.0.0.1:%d", ports[3+j]))
			c.proxies[i] = append(c.proxies[i], p)
			c.proxies[j] = append(c.proxies[j], p)
			routes = append(routes, "nats-route://"+p.addr())
		}
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
		text := fmt.Sprintf(clusterConf, c.clients[i], i+1, filepath.Join(dir, fmt.Sprintf("js%d", i+1)), ports[3+i], strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		c.confs = append(c.confs, conf)
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

// start starts server i (0-based) from its config, its routes open.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	for _, p := range c.proxies[i] {
		p.cut(false)
	}
	opts, err := server.ProcessConfigFile(c.confs[i])
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

// kill cuts server i off from its peers, then shuts it down: to them it is
// a crash (no leadership handed over, no goodbye).
func (c *natsCluster) kill(i int) {
	for _, p := range c.proxies[i] {
		p.cut(true)
	}
	c.stop(i)
}

// proxy forwards the TCP connections it accepts to target, until cut.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	off   bool
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(in)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		p.cut(true)
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// track keeps c to close on a cut, and reports false if cut already.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.off {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) forward(in net.Conn) {
	if !p.track(in) {
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		in.Close()
		return
	}
	if !p.track(out) {
		in.Close()
		return
	}
	go func() {
		io.Copy(out, in)
		out.Close()
	}()
	io.Copy(in, out)
	in.Close()
}

// cut closes every connection through p and refuses new ones (off), or
// lets them through again.
func (p *proxy) cut(off bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.off = off
	if off {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// connect returns a relay's connection to server i that reconnects to it
// for ever.
func (c *natsCluster) connect(i int) *nats.Conn {
	c.t.Helper()
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", c.clients[i]),
		nats.UserInfo("relay", "relay-pw"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// node is one relay's part: its store, on its own file, attached to its log
// through its own server.
type node struct {
	db  *store.DB
	log *Log
}

func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "authrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Params = testParams
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// openLog opens the log through server i, waiting for JetStream to elect
// its leaders.
func (c *natsCluster) openLog(i int) *Log {
	c.t.Helper()
	nc := c.connect(i)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := Open(c.t.Context(), nc, Config{RetryWait: 100 * time.Millisecond, Logger: logger})
		if err == nil {
			return l
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("open cluster log through n%d: %v", i+1, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// follow attaches db to l, runs Follow and answers for the stream's
// servers (AnswerPeers) as a relay does, until the test ends.
func follow(t *testing.T, l *Log, db *store.DB) {
	t.Helper()
	l.Attach(db)
	stop, err := l.AnswerPeers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Follow(ctx, db) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow: %v", err)
		}
	})
}

// newNodes starts three servers and three relays' stores, each following
// the log through its own server.
func newNodes(t *testing.T) (*natsCluster, []node) {
	t.Helper()
	c := newNATSCluster(t)
	nodes := make([]node, 3)
	for i := range nodes {
		nodes[i] = node{db: openStore(t), log: c.openLog(i)}
		follow(t, nodes[i].log, nodes[i].db)
	}
	return c, nodes
}

func adminDo(ctx context.Context, db *store.DB, action string, fn func(ctx context.Context) error) error {
	return adminUser(ctx, db, action, "", fn)
}

// adminUser is adminDo of a change to the user called name, which its audit
// row names.
func adminUser(ctx context.Context, db *store.DB, action, name string, fn func(ctx context.Context) error) error {
	return db.Admin(ctx, "root", action, func(ctx context.Context) (string, error) {
		return fmt.Sprintf(`{"action":%q,"user":%q}`, action, name), fn(ctx)
	})
}

func mustAdmin(t *testing.T, db *store.DB, action string, fn func(ctx context.Context) error) {
	t.Helper()
	if err := adminDo(t.Context(), db, action, fn); err != nil {
		t.Fatalf("%s: %v", action, err)
	}
}

// waitFor polls cond every few milliseconds until it holds or d passes, and
// returns how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// converged waits until every node has applied the log's last entry and
// holds the same rows, and returns the digest.
func converged(t *testing.T, nodes []node) string {
	t.Helper()
	ctx := t.Context()
	var digests []string
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last state: %s", last)
		}
	}()
	waitFor(t, 15*time.Second, "every node caught up", func() bool {
		for i, n := range nodes {
			behind, err := n.log.Behind(ctx, n.db)
			if err != nil || behind > 0 {
				last = fmt.Sprintf("node %d: behind %d, %v", i+1, behind, err)
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		d, err := n.db.StateDigest(ctx)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	for i, d := range digests[1:] {
		if d != digests[0] {
			t.Fatalf("node %d's copy differs from node 1's", i+2)
		}
	}
	return digests[0]
}

// (a) A user added on node 1 is on nodes 2 and 3 within a second, logs in
// there with the password, and moves their change feed and the user's
// version, which is what the relays' revoker and credential cache watch.
func TestUserAddedOnOneNodeLogsInOnTheOthers(t *testing.T) {
	ctx := t.Context()
	_, nodes := newNodes(t)
	n1, n3 := nodes[0].db, nodes[2].db
	mustAdmin(t, n1, "account add", func(ctx context.Context) error { return n1.AddAccount(ctx, "APP") })
	converged(t, nodes)

	var lats, writes []time.Duration
	for i := range 7 {
		name := fmt.Sprintf("alice%d", i)
		feeds := make([]int64, 3)
		for j, n := range nodes {
			var err error
			if feeds[j], err = n.db.LastUserChange(ctx); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		mustAdmin(t, n1, "user add", func(ctx context.Context) error {
			return n1.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "pw-"+name+"-1")
		})
		writes = append(writes, time.Since(start))
		for j, n := range nodes[1:] {
			waitFor(t, time.Second, name+" on node "+fmt.Sprint(j+2), func() bool {
				_, err := n.db.User(ctx, name)
				return err == nil
			})
		}
		lats = append(lats, time.Since(start))
		if _, err := n3.Authenticate(ctx, name, "pw-"+name+"-1"); err != nil {
			t.Fatalf("%s logs in on node 3: %v", name, err)
		}
		if _, err := n3.Authenticate(ctx, name, "pw-"+name+"-2"); !errors.Is(err, accounts.ErrInvalidCredentials) {
			t.Fatalf("%s with a wrong password on node 3: %v, want ErrInvalidCredentials", name, err)
		}
		for j, n := range nodes {
			changes, err := n.db.UserChangesSince(ctx, feeds[j])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(changes, func(c accounts.UserChange) bool { return c.User == name }) {
				t.Errorf("node %d's change feed has no row for %s: %+v", j+1, name, changes)
			}
		}
	}
	for _, d := range [][]time.Duration{lats, writes} {
		slices.Sort(d)
	}
	t.Logf("user add on node 1, from its start: returned after median %v (min %v, max %v); applied on nodes 2 and 3 after median %v (min %v, max %v); %d runs",
		writes[len(writes)/2], writes[0], writes[len(writes)-1], lats[len(lats)/2], lats[0], lats[len(lats)-1], len(lats))

	// A password change on node 2 moves alice0's version on node 3 (its
	// cache drops her), and the old password stops working there.
	v0, err := n3.UserVersion(ctx, "alice0")
	if err != nil {
		t.Fatal(err)
	}
	n2 := nodes[1].db
	mustAdmin(t, n2, "user passwd", func(ctx context.Context) error { return n2.SetPassword(ctx, "alice0", "pw-alice0-new") })
	waitFor(t, time.Second, "alice0's version moves on node 3", func() bool {
		v, err := n3.UserVersion(ctx, "alice0")
		return err == nil && v != v0
	})
	if _, err := n3.Authenticate(ctx, "alice0", "pw-alice0-new"); err != nil {
		t.Errorf("alice0's new password on node 3: %v", err)
	}
	if _, err := n3.Authenticate(ctx, "alice0", "pw-alice0-1"); err == nil {
		t.Error("alice0's old password still logs in on node 3")
	}
	converged(t, nodes)
}

// The same admin commands give the same errors on a single node and in a
// cluster: a duplicate add, a missing user, an unknown account. In a
// cluster the command that fails runs on another node than the one that
// made the change just before, with no wait between.
func TestAdminErrorsAreTheSameInClusterMode(t *testing.T) {
	ctx := t.Context()
	_, nodes := newNodes(t)
	single := openStore(t)
	// A node that does not follow the log: its copy is behind until an
	// admin command on it catches up.
	lagging := openStore(t)
	nodes[1].log.Attach(lagging)
	for _, mode := range []struct {
		name string
		a, b *store.DB // b sees a's changes (the same store on one node)
	}{
		{"single node", single, single},
		{"cluster", nodes[0].db, lagging},
	} {
		t.Run(mode.name, func(t *testing.T) {
			a, b := mode.a, mode.b
			mustAdmin(t, a, "account add", func(ctx context.Context) error { return a.AddAccount(ctx, "APP") })
			mustAdmin(t, a, "user add", func(ctx context.Context) error {
				return a.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob-12345")
			})
			// No wait: an admin change on b begins where the log ends,
			// so it sees a's change at once, even on a copy that is
			// behind.
			for _, tc := range []struct {
				what string
				fn   func(ctx context.Context) error
				want error
			}{
				// Fails on a copy that has not applied the add yet.
				{"set bob's password", func(ctx context.Context) error { return b.SetPassword(ctx, "bob", "pw-bob-24680") }, nil},
				{"add bob again", func(ctx context.Context) error {
					return b.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob-67890")
				}, store.ErrExists},
				{"remove a missing user", func(ctx context.Context) error { return b.RemoveUser(ctx, "carol") }, store.ErrNotFound},
				{"add a user to an unknown account", func(ctx context.Context) error {
					return b.AddUser(ctx, accounts.User{Name: "dave", Account: "NOPE"}, "pw-dave-12345")
				}, store.ErrUnknownAccount},
			} {
				if err := adminDo(ctx, b, tc.what, tc.fn); !errors.Is(err, tc.want) || err != nil && tc.want == nil {
					t.Errorf("%s: %v, want %v", tc.what, err, tc.want)
				}
			}
		})
	}
}

// (b) Conflicting writes from two nodes at once lose nothing: every write
// that succeeded is in the final state, each loser got the single-node
// error, and all copies are equal.
func TestConflictingWritesFromTwoNodes(t *testing.T) {
	ctx := t.Context()
	_, nodes := newNodes(t)
	n1, n2 := nodes[0].db, nodes[1].db
	mustAdmin(t, n1, "account add", func(ctx context.Context) error { return n1.AddAccount(ctx, "APP") })
	converged(t, nodes)

	t.Run("the same user added on two nodes", func(t *testing.T) {
		for round := range 10 {
			name := fmt.Sprintf("alice%d", round)
			errs := make([]error, 2)
			roundStart := time.Now()
			var wg sync.WaitGroup
			for i, db := range []*store.DB{n1, n2} {
				wg.Go(func() {
					errs[i] = adminDo(ctx, db, "user add", func(ctx context.Context) error {
						return db.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, fmt.Sprintf("pw-%s-node%d", name, i+1))
					})
				})
			}
			wg.Wait()
			t.Logf("round %d: %v", round, time.Since(roundStart))
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("%s: both adds succeeded", name)
				case err == nil:
					winner = i
				case !errors.Is(err, store.ErrExists):
					t.Fatalf("%s: the losing add on node %d: %v, want ErrExists", name, i+1, err)
				}
			}
			if winner < 0 {
				t.Fatalf("%s: no add succeeded: %v", name, errs)
			}
			converged(t, nodes)
			for _, n := range nodes {
				if _, err := n.db.Authenticate(ctx, name, fmt.Sprintf("pw-%s-node%d", name, winner+1)); err != nil {
					t.Errorf("%s with the winner's password: %v", name, err)
				}
			}
		}
	})

	t.Run("passwd racing rm", func(t *testing.T) {
		for round := range 10 {
			name := fmt.Sprintf("bob%d", round)
			if err := adminUser(ctx, n1, "user add", name, func(ctx context.Context) error {
				return n1.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "pw-"+name+"-old")
			}); err != nil {
				t.Fatal(err)
			}
			converged(t, nodes)
			var pwErr, rmErr error
			var wg sync.WaitGroup
			wg.Go(func() {
				pwErr = adminUser(ctx, n1, "user passwd", name, func(ctx context.Context) error { return n1.SetPassword(ctx, name, "pw-"+name+"-new") })
			})
			wg.Go(func() {
				rmErr = adminUser(ctx, n2, "user rm", name, func(ctx context.Context) error { return n2.RemoveUser(ctx, name) })
			})
			wg.Wait()
			// rm always succeeds: before it or after the passwd, the
			// user exists. passwd fails only if rm came first, with the
			// single-node error.
			if rmErr != nil {
				t.Fatalf("%s: rm: %v", name, rmErr)
			}
			if pwErr != nil && !errors.Is(pwErr, store.ErrNotFound) {
				t.Fatalf("%s: passwd: %v, want nil or ErrNotFound", name, pwErr)
			}
			converged(t, nodes)
			for _, n := range nodes {
				if _, err := n.db.User(ctx, name); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s after rm: %v, want ErrNotFound", name, err)
				}
			}
			// Both orders end with the user gone; the audit trail says
			// which one happened, the same on every node.
			var trail []string
			for _, n := range nodes {
				rows, err := n.db.Audit(ctx, store.AuditFilter{Kind: store.AuditAdmin, User: name})
				if err != nil {
					t.Fatal(err)
				}
				var actions []string
				for _, r := range rows {
					actions = append(actions, r.Action)
				}
				trail = append(trail, strings.Join(actions, ","))
			}
			want := "user add,user rm"
			if pwErr == nil {
				want = "user add,user passwd,user rm"
			}
			sort.Strings(trail)
			if trail[0] != trail[2] || !sameActions(trail[0], want) {
				t.Errorf("%s: audit trails %q, want %q on every node", name, trail, want)
			}
		}
	})
}

// sameActions compares two comma-separated lists of actions as sets in
// order of time, where the audit's order is newest or oldest first.
func sameActions(got, want string) bool {
	g, w := strings.Split(got, ","), strings.Split(want, ",")
	if slices.Equal(g, w) {
		return true
	}
	slices.Reverse(g)
	return slices.Equal(g, w)
}

// (c) With two of three servers down (killed) a write fails at once (within a
// second), saying there is no quorum, and writes nothing, whether the
// survivor led the log's stream (it believes its peers current for
// seconds) or followed (it believes the gone leader leads for seconds);
// logins on the survivor go on from its copy. With the servers back,
// writes work and nothing is lost.
func TestNoQuorum(t *testing.T) {
	for _, survivorLeads := range []bool{true, false} {
		t.Run(fmt.Sprintf("survivor leads %v", survivorLeads), func(t *testing.T) { testNoQuorum(t, survivorLeads) })
	}
}

func testNoQuorum(t *testing.T, survivorLeads bool) {
	ctx := t.Context()
	c, nodes := newNodes(t)
	n1 := nodes[0].db
	mustAdmin(t, n1, "account add", func(ctx context.Context) error { return n1.AddAccount(ctx, "APP") })
	mustAdmin(t, n1, "user add", func(ctx context.Context) error {
		return n1.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "pw-alice-12345")
	})
	before := converged(t, nodes)
	if survivorLeads {
		moveLeader(t, nodes[0], 0)
	} else {
		moveLeader(t, nodes[0], 1)
	}

	c.kill(1)
	c.kill(2)
	start := time.Now()
	err := adminDo(ctx, n1, "user add", func(ctx context.Context) error {
		return n1.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob-12345")
	})
	took := time.Since(start)
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("user add without quorum: %v, want ErrNoQuorum", err)
	}
	for _, want := range []string{"no JetStream quorum", "not made", "majority"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	if took > time.Second {
		t.Errorf("the write took %v to fail, want a second at most", took)
	}
	t.Logf("a write without quorum failed after %v: %v", took, err)
	if _, err := n1.User(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob after the failed write: %v, want ErrNotFound", err)
	}
	if d, err := n1.StateDigest(ctx); err != nil || d != before {
		t.Errorf("node 1's copy changed after the failed write (%v)", err)
	}
	if _, err := n1.Authenticate(ctx, "alice", "pw-alice-12345"); err != nil {
		t.Errorf("alice logs in on the survivor without quorum: %v", err)
	}

	c.start(1)
	c.start(2)
	// An error that says "not made" means so: the add run again succeeds.
	// Only if the quorum check passed before the servers' loss was known
	// (the error says "not confirmed") may the survivor, had it led the
	// stream, have kept bob's entry and commit it now: the add run again
	// then finds bob, as an add of an existing user does.
	unconfirmed := strings.Contains(err.Error(), "not confirmed")
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := adminDo(ctx, n1, "user add", func(ctx context.Context) error {
			return n1.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob-12345")
		})
		if err == nil || errors.Is(err, store.ErrExists) && unconfirmed {
			t.Logf("user add after recovery: %v", err)
			break
		}
		t.Logf("user add while the servers come back: %v", err)
		unconfirmed = unconfirmed || strings.Contains(err.Error(), "not confirmed")
		if time.Now().After(deadline) {
			t.Fatalf("user add after the servers came back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustAdmin(t, n1, "user add", func(ctx context.Context) error {
		return n1.AddUser(ctx, accounts.User{Name: "carol", Account: "APP"}, "pw-carol-12345")
	})
	converged(t, nodes)
	rows, err := n1.Audit(ctx, store.AuditFilter{Kind: store.AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	adds := 0
	for _, r := range rows {
		if r.Action == "user add" {
			adds++
		}
	}
	if adds != 3 {
		t.Errorf("user add rows in the audit trail: %d; want 3 (alice, bob once, carol)", adds)
	}
	for _, n := range nodes {
		for name, pw := range map[string]string{"alice": "pw-alice-12345", "bob": "pw-bob-12345", "carol": "pw-carol-12345"} {
			if _, err := n.db.Authenticate(ctx, name, pw); err != nil {
				t.Errorf("%s after recovery: %v", name, err)
			}
		}
	}
}

// (d) An existing single-node database becomes the first node: its users
// reach a fresh node with their password hashes.
func TestBootstrapAnExistingDatabase(t *testing.T) {
	ctx := t.Context()
	c := newNATSCluster(t)
	first := openStore(t)
	if err := first.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := first.AddRole(ctx, accounts.Role{Name: "ops"}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		u := accounts.User{Name: fmt.Sprintf("user%02d", i), Account: "APP", Roles: []string{"ops"}}
		if err := first.AddUser(ctx, u, fmt.Sprintf("pw-user%02d-x", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Enough users that the snapshot takes several entries (one atomic
	// batch).
	hash, err := store.HashPassword("pw-bulk", testParams)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if err := first.AddUserWithHash(ctx, accounts.User{Name: fmt.Sprintf("bulk%04d", i), Account: "APP", Roles: []string{}}, hash); err != nil {
			t.Fatal(err)
		}
	}
	l1 := c.openLog(0)
	last, err := l1.Bootstrap(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if last < 2 {
		t.Fatalf("the snapshot took %d entries, want several", last)
	}
	if _, err := l1.Bootstrap(ctx, openStore(t)); err == nil || !strings.Contains(err.Error(), "holds") {
		t.Errorf("a second Bootstrap: %v, want a refusal of the non-empty log", err)
	}
	follow(t, l1, first)

	fresh := openStore(t)
	l3 := c.openLog(2)
	l3.Attach(fresh)
	if err := l3.CatchUp(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if seq, err := fresh.AppliedSeq(ctx); err != nil || seq != last {
		t.Errorf("fresh node's position %d, %v; want %d", seq, err, last)
	}
	for _, name := range []string{"user00", "user49"} {
		if _, err := fresh.Authenticate(ctx, name, "pw-"+name+"-x"); err != nil {
			t.Errorf("%s on the fresh node: %v", name, err)
		}
	}
	if _, err := fresh.Authenticate(ctx, "bulk2999", "pw-bulk"); err != nil {
		t.Errorf("bulk2999, in the snapshot's last entry, on the fresh node: %v", err)
	}
	// The fresh node writes, and the first node sees it.
	mustAdmin(t, fresh, "user rm", func(ctx context.Context) error { return fresh.RemoveUser(ctx, "user07") })
	waitFor(t, time.Second, "user07 gone on the first node", func() bool {
		_, err := first.User(ctx, "user07")
		return errors.Is(err, store.ErrNotFound)
	})
	converged(t, []node{{first, l1}, {fresh, l3}})
}

// A change larger than one entry of the log (an import of thousands of
// users in one admin change) goes in as one atomic batch, and reaches the
// other nodes whole, in one transaction.
func TestLargeChangeInParts(t *testing.T) {
	ctx := t.Context()
	_, nodes := newNodes(t)
	n1, n3 := nodes[0].db, nodes[2].db
	mustAdmin(t, n1, "account add", func(ctx context.Context) error { return n1.AddAccount(ctx, "APP") })
	hash, err := store.HashPassword("pw-of-the-import", testParams)
	if err != nil {
		t.Fatal(err)
	}
	const users = 6000
	before, err := n1.AppliedSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	mustAdmin(t, n1, "import", func(ctx context.Context) error {
		for i := range users {
			u := accounts.User{Name: fmt.Sprintf("imported%05d", i), Account: "APP", Roles: []string{}}
			if err := n1.AddUserWithHash(ctx, u, hash); err != nil {
				return err
			}
		}
		return nil
	})
	wrote := time.Since(start)
	after, err := n1.AppliedSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 2 {
		t.Fatalf("the import took %d entries of the log, want several: it is larger than one", after-before)
	}
	// All or nothing on the other nodes: never a part of the import.
	waitFor(t, 10*time.Second, "the import on node 3", func() bool {
		list, err := n3.Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 0 && len(list) != users {
			t.Fatalf("node 3 holds %d of the %d imported users", len(list), users)
		}
		return len(list) == users
	})
	t.Logf("%d users in one change: %d entries; written on node 1 in %v, on node 3 after %v", users, after-before, wrote, time.Since(start))
	if _, err := n3.Authenticate(ctx, "imported04321", "pw-of-the-import"); err != nil {
		t.Errorf("an imported user on node 3: %v", err)
	}
	converged(t, nodes)
}

// (b) Twenty conflicting admin writes at once, ten from each of two nodes,
// over a few users: every copy ends equal, and equal to one serial order of
// the writes that succeeded (the order of the log, which every node's audit
// trail shows); every write that succeeded is in it, and each that failed
// got the error a single node gives.
func TestConcurrentWritesAreOneSerialOrder(t *testing.T) {
	ctx := t.Context()
	_, nodes := newNodes(t)
	n1 := nodes[0].db
	mustAdmin(t, n1, "account add", func(ctx context.Context) error { return n1.AddAccount(ctx, "APP") })
	names := []string{"u0", "u1", "u2"}
	for _, name := range names[:2] {
		if err := adminUser(ctx, n1, "user add", name, func(ctx context.Context) error {
			return n1.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "pw-"+name+"-start")
		}); err != nil {
			t.Fatal(err)
		}
	}
	start := map[string]string{"u0": "pw-u0-start", "u1": "pw-u1-start"}
	converged(t, nodes)

	type op struct {
		id   int
		kind string // add, passwd, rm
		name string
		err  error
	}
	kinds := []string{"add", "passwd", "rm", "passwd", "add"}
	ops := make([]*op, 20)
	var wg sync.WaitGroup
	for i := range ops {
		o := &op{id: i, kind: kinds[i%len(kinds)], name: names[i%len(names)]}
		ops[i] = o
		db := nodes[i%2].db
		pw := fmt.Sprintf("pw-%s-op%02d", o.name, i)
		wg.Go(func() {
			detail := fmt.Sprintf(`{"user":%q,"op":%d}`, o.name, o.id)
			o.err = db.Admin(ctx, "root", "user "+o.kind, func(ctx context.Context) (string, error) {
				switch o.kind {
				case "add":
					return detail, db.AddUser(ctx, accounts.User{Name: o.name, Account: "APP"}, pw)
				case "passwd":
					return detail, db.SetPassword(ctx, o.name, pw)
				default:
					return detail, db.RemoveUser(ctx, o.name)
				}
			})
		})
	}
	wg.Wait()
	converged(t, nodes)

	// The serial order: the admin rows of the ops on node 3, by id (the
	// order node 3 applied the log in).
	rows, err := nodes[2].db.Audit(ctx, store.AuditFilter{Kind: store.AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b store.AuditEntry) int { return int(a.ID - b.ID) })
	var order []int
	for _, r := range rows {
		var d struct {
			Op *int `json:"op"`
		}
		if err := json.Unmarshal([]byte(r.Detail), &d); err == nil && d.Op != nil {
			order = append(order, *d.Op)
		}
	}
	// Every op that succeeded is in the order once, and no other.
	var succeeded []int
	for _, o := range ops {
		switch {
		case o.err == nil:
			succeeded = append(succeeded, o.id)
		case o.kind == "add" && !errors.Is(o.err, store.ErrExists),
			o.kind != "add" && !errors.Is(o.err, store.ErrNotFound):
			t.Errorf("op %d (%s %s) failed with %v, not the single-node error", o.id, o.kind, o.name, o.err)
		}
	}
	if got := slices.Sorted(slices.Values(order)); !slices.Equal(got, succeeded) {
		t.Fatalf("the log holds ops %v, the ops that succeeded are %v", order, succeeded)
	}
	// Replayed in that order on a model of a single node, each op
	// succeeds (the log holds only successes, so each must have been
	// possible where it stands) and the model ends as every copy did.
	model := maps.Clone(start)
	for _, id := range order {
		o := ops[id]
		_, exists := model[o.name]
		switch {
		case o.kind == "add" && exists, o.kind != "add" && !exists:
			t.Fatalf("op %d (%s %s) stands in the log where a single node would refuse it: order %v", id, o.kind, o.name, order)
		case o.kind == "rm":
			delete(model, o.name)
		default:
			model[o.name] = fmt.Sprintf("pw-%s-op%02d", o.name, id)
		}
	}
	for i, n := range nodes {
		for _, name := range names {
			pw, want := model[name]
			_, err := n.db.User(ctx, name)
			if got := err == nil; got != want {
				t.Errorf("node %d: %s exists = %v, the serial order says %v", i+1, name, got, want)
				continue
			}
			if want {
				if _, err := n.db.Authenticate(ctx, name, pw); err != nil {
					t.Errorf("node %d: %s with the serial order's last password: %v", i+1, name, err)
				}
			}
		}
	}
	t.Logf("serial order of the %d ops that succeeded: %v", len(order), order)
}

// streamLeader returns the index of the server that leads the log's stream,
// as node n's log sees it.
func streamLeader(t *testing.T, n node) int {
	t.Helper()
	var leader int
	waitFor(t, 15*time.Second, "the stream has a leader", func() bool {
		info, err := n.log.stream.Info(t.Context())
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
			return false
		}
		_, err = fmt.Sscanf(info.Cluster.Leader, "n%d", &leader)
		return err == nil
	})
	return leader - 1
}

// (e) The server that leads the log's stream is killed (cut off, then shut
// down: it hands over no leadership) while a node makes one change after
// another: no change fails with ErrNoQuorum while two of three servers run;
// those made during the election wait for the new leader, for no longer
// than Config.ElectionWait; every change made is on both survivors.
// AUTHRELAY_ELECTION_RUNS runs it that many times (default 1) and reports
// the longest write of each run.
func TestWritesGoOnThroughTheLeadersLoss(t *testing.T) {
	runs := 1
	if v := os.Getenv("AUTHRELAY_ELECTION_RUNS"); v != "" {
		if _, err := fmt.Sscanf(v, "%d", &runs); err != nil || runs < 1 {
			t.Fatalf("AUTHRELAY_ELECTION_RUNS=%q: give a positive count", v)
		}
	}
	var worst []time.Duration
	for run := range runs {
		t.Run(fmt.Sprint(run+1), func(t *testing.T) {
			ctx := t.Context()
			c, nodes := newNodes(t)
			n0 := nodes[0].db
			mustAdmin(t, n0, "account add", func(ctx context.Context) error { return n0.AddAccount(ctx, "APP") })
			converged(t, nodes)
			leader := streamLeader(t, nodes[0])
			writer := nodes[(leader+1)%3]
			var survivors []node
			for i, n := range nodes {
				if i != leader {
					survivors = append(survivors, n)
				}
			}
			var longest time.Duration
			var killedAt time.Time
			added := 0
			for i := 0; ; i++ {
				if i == 5 {
					killedAt = time.Now()
					c.kill(leader)
				}
				name := fmt.Sprintf("user%d", i)
				began := time.Now()
				err := adminUser(ctx, writer.db, "user add", name, func(ctx context.Context) error {
					return writer.db.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "pw-"+name+"-12345")
				})
				took := time.Since(began)
				if err != nil {
					t.Fatalf("write %d (%v after the leader's server went) failed after %v: %v", i, began.Sub(killedAt), took, err)
				}
				added++
				longest = max(longest, took)
				if took > time.Second {
					t.Logf("write %d, %v after the leader's server went, took %v", i, began.Sub(killedAt).Round(time.Millisecond), took.Round(time.Millisecond))
				}
				if !killedAt.IsZero() && time.Since(killedAt) > 3*time.Second && took < 100*time.Millisecond && i > 10 {
					break // through the election, and writes fast again
				}
				if time.Since(killedAt) > 2*DefaultElectionWait && !killedAt.IsZero() {
					t.Fatalf("writes still slow %v after the leader's server went", time.Since(killedAt))
				}
			}
			if longest > DefaultElectionWait+2*DefaultTimeout {
				t.Errorf("the longest write took %v, more than the election wait (%v)", longest, DefaultElectionWait)
			}
			converged(t, survivors)
			for i := range added {
				name := fmt.Sprintf("user%d", i)
				for j, n := range survivors {
					if _, err := n.db.Authenticate(ctx, name, "pw-"+name+"-12345"); err != nil {
						t.Errorf("%s on survivor %d: %v", name, j+1, err)
					}
				}
			}
			t.Logf("leader n%d went; %d writes, the longest %v", leader+1, added, longest)
			worst = append(worst, longest)
		})
	}
	if len(worst) > 1 {
		slices.Sort(worst)
		t.Logf("longest write per run over %d runs: min %v, median %v, max %v (all %v)", len(worst), worst[0], worst[len(worst)/2], worst[len(worst)-1], worst)
	}
}

// moveLeader has the log's stream elect server to (0-based) its leader,
// as node n's log reaches it, and waits until it leads.
func moveLeader(t *testing.T, n node, to int) {
	t.Helper()
	want := fmt.Sprintf("n%d", to+1)
	nc := n.log.js.Conn()
	deadline := time.Now().Add(30 * time.Second)
	for streamLeader(t, n) != to {
		if time.Now().After(deadline) {
			t.Fatalf("the stream's leader did not move to %s", want)
		}
		req, err := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: want}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Request(fmt.Sprintf(server.JSApiStreamLeaderStepDownT, DefaultStream), req, 2*time.Second); err != nil {
			t.Logf("step down: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// policyB is a hash policy within the floor, other than the one the users
// were added at.
var policyB = store.Argon2Params{Memory: 7 << 10, Time: 5, Threads: 1, SaltLen: 16, KeyLen: 32}

// (f) 'hash set' on node 1 reaches the other nodes without a restart: a
// user added on node 2 afterwards is hashed at the new policy (node 1,
// which set it, finds the hash current). A login on node 2 whose hash is
// at the old policy queues a rehash that RehashLoop stores as an admin
// change, replicated: node 3 holds the new hash, as a rehash (the user's
// version and the change feed do not move, so no relay drops the user's
// cached logins or closes their connections). A rehash whose user's
// password changed meanwhile changes nothing: passwd wins.
func TestHashPolicyAndRehashAcrossNodes(t *testing.T) {
	ctx := t.Context()
	c, nodes := newNodes(t)
	n1, n2, n3 := nodes[0].db, nodes[1].db, nodes[2].db
	mustAdmin(t, n1, "account add", func(ctx context.Context) error { return n1.AddAccount(ctx, "APP") })
	for _, name := range []string{"alice", "carol", "dave"} {
		mustAdmin(t, n1, "user add", func(ctx context.Context) error {
			return n1.AddUser(ctx, accounts.User{Name: name, Account: "APP"}, "pw-"+name+"-12345")
		})
	}
	mustAdmin(t, n1, "hash set", func(ctx context.Context) error { return n1.SetHashPolicy(ctx, policyB) })
	converged(t, nodes)

	t.Run("a new user on node 2 is hashed at node 1's new policy", func(t *testing.T) {
		mustAdmin(t, n2, "user add", func(ctx context.Context) error {
			return n2.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob-12345")
		})
		converged(t, nodes)
		if _, current, err := n1.HashInfo(ctx, "bob"); err != nil || !current {
			t.Errorf("bob, added on node 2 after 'hash set' on node 1: hash at node 1's policy %v (%v), want true", current, err)
		}
	})

	t.Run("a login's rehash is replicated", func(t *testing.T) {
		var mu sync.Mutex
		outcomes := map[string]error{}
		n2.OnRehash = func(name string, err error) {
			mu.Lock()
			defer mu.Unlock()
			outcomes[name] = err
		}
		stop := rehashLoop(t, n2)

		v3, err := n3.UserVersion(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		feed3, err := n3.LastUserChange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, current, err := n3.HashInfo(ctx, "alice"); err != nil || current {
			t.Fatalf("alice before her login: current %v (%v), want an old hash", current, err)
		}
		if _, err := n2.Authenticate(ctx, "alice", "pw-alice-12345"); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		n2.Rehash(ctx, "alice", "pw-alice-12345") // what the relay does after the answer
		t.Logf("the rehash at login returned after %v", time.Since(began))
		waitFor(t, 5*time.Second, "alice's rehash on node 3", func() bool {
			_, current, err := n3.HashInfo(ctx, "alice")
			return err == nil && current
		})
		waitFor(t, 5*time.Second, "OnRehash for alice", func() bool {
			mu.Lock()
			defer mu.Unlock()
			_, ok := outcomes["alice"]
			return ok
		})
		mu.Lock()
		if err := outcomes["alice"]; err != nil {
			t.Errorf("OnRehash for alice: %v, want nil", err)
		}
		mu.Unlock()
		if _, err := n3.Authenticate(ctx, "alice", "pw-alice-12345"); err != nil {
			t.Errorf("alice on node 3 after the rehash: %v", err)
		}
		if v, err := n3.UserVersion(ctx, "alice"); err != nil || v != v3 {
			t.Errorf("alice's version on node 3 moved with the rehash: %d, was %d (%v)", v, v3, err)
		}
		if f, err := n3.LastUserChange(ctx); err != nil || f != feed3 {
			t.Errorf("node 3's change feed moved with the rehash: %d, was %d (%v)", f, feed3, err)
		}
		converged(t, nodes)
		rows, err := n3.Audit(ctx, store.AuditFilter{Kind: store.AuditAdmin, User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(rows, func(r store.AuditEntry) bool { return r.Action == store.RehashAction }) {
			t.Errorf("no %q row for alice in node 3's audit trail", store.RehashAction)
		}

		// carol's rehash is queued, then her password changes on node 1
		// before it is stored: the rehash must not bring back the old one.
		stop()
		n2.Rehash(ctx, "carol", "pw-carol-12345")
		mustAdmin(t, n1, "user passwd", func(ctx context.Context) error { return n1.SetPassword(ctx, "carol", "pw-carol-67890") })
		converged(t, nodes)
		rehashLoop(t, n2)
		time.Sleep(time.Second)
		converged(t, nodes)
		for i, n := range nodes {
			if _, err := n.db.Authenticate(ctx, "carol", "pw-carol-67890"); err != nil {
				t.Errorf("carol's new password on node %d: %v", i+1, err)
			}
			if _, err := n.db.Authenticate(ctx, "carol", "pw-carol-12345"); !errors.Is(err, accounts.ErrInvalidCredentials) {
				t.Errorf("carol's old password on node %d: %v, want refused", i+1, err)
			}
		}
	})

	t.Run("a login's rehash never waits on the log", func(t *testing.T) {
		type outcome struct {
			err error
			at  time.Time
		}
		failed := make(chan outcome, 1)
		n1.OnRehash = func(name string, err error) {
			if name == "dave" {
				failed <- outcome{err, time.Now()}
			}
		}
		rehashLoop(t, n1)
		c.kill(1)
		c.kill(2)
		if _, err := n1.Authenticate(ctx, "dave", "pw-dave-12345"); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		n1.Rehash(ctx, "dave", "pw-dave-12345")
		returned := time.Now()
		select {
		case o := <-failed:
			if !errors.Is(o.err, ErrNoQuorum) {
				t.Errorf("dave's rehash without quorum: %v, want ErrNoQuorum", o.err)
			}
			if !returned.Before(o.at) {
				t.Errorf("the rehash at login returned after %v, once its change had failed (after %v): it waited for the log", returned.Sub(began), o.at.Sub(began))
			}
			t.Logf("with no quorum, the rehash at login returned after %v; its change failed after %v", returned.Sub(began), o.at.Sub(began))
		case <-time.After(5 * time.Second):
			t.Fatal("dave's rehash not reported within 5 s")
		}
		if _, current, err := n1.HashInfo(ctx, "dave"); err != nil || current {
			t.Errorf("dave's hash after a rehash without quorum: current %v (%v), want the old one kept", current, err)
		}
		if _, err := n1.Authenticate(ctx, "dave", "pw-dave-12345"); err != nil {
			t.Errorf("dave logs in on the survivor after the refused rehash: %v", err)
		}
	})
}

// rehashLoop runs db.RehashLoop until the test ends or stop is called.
func rehashLoop(t *testing.T, db *store.DB) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); db.RehashLoop(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// (g) A new process (an admin command) that opens the log while its
// stream elects a new leader, on a server that reloaded its config (which
// answers a ping to all servers with one), learns the stream's servers
// from the relays and waits for the election, as a relay would, rather
// than fail for want of a quorum; with two of three gone it still fails at
// once.
func TestANewProcessWaitsThroughTheElection(t *testing.T) {
	ctx := t.Context()
	c, nodes := newNodes(t)
	n0 := nodes[0].db
	mustAdmin(t, n0, "account add", func(ctx context.Context) error { return n0.AddAccount(ctx, "APP") })
	converged(t, nodes)
	leader := streamLeader(t, nodes[0])
	w := (leader + 1) % 3
	if err := c.servers[w].Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	c.kill(leader)
	began := time.Now()
	l, err := Open(ctx, c.connect(w), Config{})
	if err != nil {
		t.Fatalf("open the log %v after the leader's server went: %v", time.Since(began), err)
	}
	db := openStore(t)
	l.Attach(db)
	if err := l.CatchUp(ctx, db); err != nil {
		t.Fatal(err)
	}
	err = adminUser(ctx, db, "user add", "nina", func(ctx context.Context) error {
		return db.AddUser(ctx, accounts.User{Name: "nina", Account: "APP"}, "pw-nina-12345")
	})
	if err != nil {
		t.Fatalf("user add by a new process %v after the leader's server went: %v", time.Since(began), err)
	}
	t.Logf("a new process opened the log and made a change %v after the leader's server went", time.Since(began).Round(time.Millisecond))

	c.kill((leader + 2) % 3)
	began = time.Now()
	l, err = Open(ctx, c.connect(w), Config{})
	if err == nil {
		db := openStore(t)
		l.Attach(db)
		err = adminUser(ctx, db, "user add", "olaf", func(ctx context.Context) error {
			return db.AddUser(ctx, accounts.User{Name: "olaf", Account: "APP"}, "pw-olaf-12345")
		})
	}
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("a new process with two of three servers gone: %v, want ErrNoQuorum", err)
	}
	if took := time.Since(began); took > DefaultTimeout+time.Second {
		t.Errorf("a new process with two of three servers gone failed after %v", took)
	}
	t.Logf("with two of three gone a new process failed after %v: %v", time.Since(began).Round(time.Millisecond), err)
}
