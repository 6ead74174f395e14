package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/nats-io/nats.go"
)

// e2eCluster is three nodes of real binaries on loopback: a nats-server
// from each node's nats.conf and an 'authrelay serve' beside it.
type e2eCluster struct {
	// t is the whole test's: processes started in a subtest outlive it.
	t      *testing.T
	e      *e2e
	nodes  []*clusterNode
	relays []*e2eProcess
	sec    clusterSecrets
	srcIP  atomic.Uint32 // the next source address of from()
}

// url is node i's client URL.
func (c *e2eCluster) url(i int) string { return "nats://" + c.nodes[i].listen }

// startServer starts node i's nats-server and waits for its client port.
func (c *e2eCluster) startServer(t *testing.T, i int) {
	t.Helper()
	n := c.nodes[i]
	n.server = c.e.start(c.t, "nats-server n"+strconv.Itoa(i+1), c.e.bin.natsServer, "-c", n.conf())
	c.e.waitFor(t, 15*time.Second, "nats-server n"+strconv.Itoa(i+1)+" on "+n.listen, func() error {
		n.server.mustRun(t)
		conn, err := net.DialTimeout("tcp", n.listen, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// startRelay starts 'authrelay serve --dir nI', which finds its server from
// nats.conf.
func (c *e2eCluster) startRelay(t *testing.T, i int) {
	t.Helper()
	c.relays[i] = c.e.start(c.t, "authrelay serve n"+strconv.Itoa(i+1), c.e.bin.authrelay, "serve", "--dir", c.nodes[i].dir)
}

// waitRelay waits until node i's relay has caught up with the cluster log,
// when it begins to answer logins, and returns when that was.
func (c *e2eCluster) waitRelay(t *testing.T, i int, timeout time.Duration) time.Time {
	t.Helper()
	p := c.relays[i]
	c.e.waitFor(t, timeout, p.name+" to catch up with the cluster log", func() error {
		p.mustRun(t)
		if !strings.Contains(p.stderr.String()+p.stdout.String(), "caught up with the cluster log") {
			return errors.New("not caught up yet")
		}
		return nil
	})
	return time.Now()
}

// kill SIGKILLs node i's relay and server.
func (c *e2eCluster) kill(t *testing.T, i int) {
	t.Helper()
	c.relays[i].kill(t)
	c.nodes[i].server.kill(t)
}

// from gives each login attempt a source address of its own in
// 127.0.0.0/8, so that the failed attempts of a poll never add up to a
// lockout of a username from one address.
func (c *e2eCluster) from() nats.Option {
	n := c.srcIP.Add(1)
	return from(fmt.Sprintf("127.%d.%d.%d", 1+n/62500%250, n/250%250, 1+n%250))
}

// login connects as user to node i and closes the connection.
func (c *e2eCluster) login(i int, user, password string) error {
	nc, err := nats.Connect(c.url(i), nats.UserInfo(user, password), nats.Timeout(3*time.Second), nats.NoReconnect(), c.from())
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

// admin runs an authrelay admin command on node i's directory.
func (c *e2eCluster) admin(t *testing.T, i int, stdin string, args ...string) e2eResult {
	t.Helper()
	return c.e.authrelay(t, stdin, append(args, "--dir", c.nodes[i].dir)...)
}

// addUser adds user on node i with access to all of APP.
func (c *e2eCluster) addUser(t *testing.T, i int, user, password string) e2eResult {
	t.Helper()
	return c.admin(t, i, password+"\n", "user", "add", user, "--account", "APP", "--password-stdin", "--pub", ">", "--sub", ">")
}

// export returns 'authrelay export --json' of node i.
func (c *e2eCluster) export(t *testing.T, i int) string {
	t.Helper()
	r := c.admin(t, i, "", "export", "--json")
	r.wantCode(t, exitOK)
	return r.stdout
}

// waitSame waits until the three nodes export the same state and returns
// it.
func (c *e2eCluster) waitSame(t *testing.T) string {
	t.Helper()
	var state string
	c.e.waitFor(t, 5*time.Second, "the three nodes to export the same state", func() error {
		state = c.export(t, 0)
		for i := 1; i < 3; i++ {
			if got := c.export(t, i); got != state {
				return fmt.Errorf("n%d exports\n%s\nn1 exports\n%s", i+1, got, state)
			}
		}
		return nil
	})
	return state
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(k, len(s)-1))]
}

// TestClusterEndToEnd is issue #13's end-to-end story with the real
// binaries: three nats-server processes routed on loopback, each with an
// 'authrelay serve' beside it, set up with the README's init lines, driven
// by the authrelay and nats commands and by nats.go where a connection
// must stay open. The subtests share the cluster and run in order.
func TestClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	began := time.Now()
	e := newE2E(t, bin)
	tmp := t.TempDir()
	c := &e2eCluster{t: t, e: e, nodes: make([]*clusterNode, 3), relays: make([]*e2eProcess, 3)}
	var routes []string
	for i := range c.nodes {
		c.nodes[i] = &clusterNode{
			dir:           filepath.Join(tmp, "n"+strconv.Itoa(i+1)),
			listen:        loopback.Addr(t),
			clusterListen: loopback.Addr(t),
		}
		routes = append(routes, "nats://"+c.nodes[i].clusterListen)
	}
	join := filepath.Join(c.nodes[0].dir, "secrets.json")
	for i, n := range c.nodes {
		args := []string{"init", "--dir", n.dir}
		if i > 0 {
			args = append(args, "--join", join)
		}
		args = append(args, "--listen", n.listen, "--cluster-listen", n.clusterListen, "--routes", strings.Join(routes, ","))
		e.authrelay(t, "", args...).wantCode(t, exitOK)
	}
	c.sec = e.secretsOf(t, c.nodes[0].dir)
	for i := range c.nodes {
		c.startServer(t, i)
	}
	for i := range c.nodes {
		c.startRelay(t, i)
	}
	for i := range c.nodes {
		c.waitRelay(t, i, 45*time.Second)
	}
	// A cheap hash policy (OWASP's smallest memory × passes), set as any
	// admin change is, through the cluster log, before the users.
	c.admin(t, 0, "", "hash", "set", "--memory", "7168", "--time", "5").wantCode(t, exitOK)
	t.Logf("cluster up (3 servers, 3 relays caught up, hash policy set) in %v", time.Since(began).Round(time.Millisecond))

	passwords := map[string]string{} // every user added, with its password
	addUser := func(t *testing.T, i int, user string) {
		t.Helper()
		pw := "pw-" + user + "-1"
		r := c.addUser(t, i, user, pw)
		r.wantCode(t, exitOK)
		r.wantOutput(t, "added user "+user)
		passwords[user] = pw
	}

	t.Run("added on node 1, logs in through node 3 within 1s", func(t *testing.T) {
		// Each user is polled through n3 and, to have the figure for every
		// relay, through n2 at the same time.
		lags := map[int][]time.Duration{}
		for k := range 10 {
			user := fmt.Sprintf("alice%d", k)
			addUser(t, 0, user)
			added := time.Now()
			pw := passwords[user]
			var wg sync.WaitGroup
			got := make([]time.Duration, 3)
			errs := make([]error, 3)
			for _, i := range []int{1, 2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Since(added) < 3*time.Second {
						if errs[i] = c.login(i, user, pw); errs[i] == nil {
							break
						}
						time.Sleep(5 * time.Millisecond)
					}
					got[i] = time.Since(added)
				}()
			}
			wg.Wait()
			for _, i := range []int{1, 2} {
				if errs[i] != nil {
					t.Fatalf("%s added on n1: no login through n%d within 3s: %v", user, i+1, errs[i])
				}
				if got[i] > time.Second {
					t.Errorf("%s added on n1 logged in through n%d %v after the add exited, want within 1s", user, i+1, got[i])
				}
				lags[i] = append(lags[i], got[i])
			}
			t.Logf("%s: n2 %v, n3 %v", user, got[1].Round(time.Millisecond), got[2].Round(time.Millisecond))
		}
		for _, i := range []int{2, 1} {
			t.Logf("propagation, from 'user add' on n1 exiting to the first successful nats.go connect through n%d (polled every 5ms, each try a whole CONNECT with its callout and password verify): p50 %v, p99 %v, min %v, max %v over %d users",
				i+1, percentile(lags[i], 50).Round(time.Millisecond), percentile(lags[i], 99).Round(time.Millisecond),
				slices.Min(lags[i]).Round(time.Millisecond), slices.Max(lags[i]).Round(time.Millisecond), len(lags[i]))
		}

		// nats --server <n3> --user alice0 --password … pub x hi
		r := e.run(t, "", bin.nats, "--no-context", "--server", c.url(2), "--timeout", "5s",
			"--user", "alice0", "--password", passwords["alice0"], "pub", "x", "hi")
		r.wantCode(t, 0)
		r.wantOutput(t, `Published 2 bytes to "x"`)

		// One audit trail: alice0's login rows, whichever relay wrote
		// them, are on every node (audit --json, the same client ids).
		logins := func(i int) string {
			r := c.admin(t, i, "", "audit", "--user", "alice0", "--kind", "login", "--json")
			r.wantCode(t, exitOK)
			var rows []struct {
				ClientID uint64 `json:"client_id"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
				t.Fatalf("audit --json on n%d: %v\n%s", i+1, err, r.stdout)
			}
			var ids []string
			for _, row := range rows {
				ids = append(ids, fmt.Sprint(row.ClientID))
			}
			slices.Sort(ids)
			return strings.Join(ids, ",")
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			a, b, c3 := logins(0), logins(1), logins(2)
			if a != "" && a == b && b == c3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("alice0's login rows differ between the nodes after 5 s: n1 %s, n2 %s, n3 %s", a, b, c3)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("disabled on node 2, connection through node 1 closes within 1s", func(t *testing.T) {
		const user = "alice1"
		// The server's refused-connect events on n1, as the relay's user.
		ev, err := nats.Connect(c.url(0), nats.UserInfo(c.sec.RelayUser, c.sec.RelayPassword))
		if err != nil {
			t.Fatalf("connect as the relay user: %v", err)
		}
		defer ev.Close()
		events, err := ev.SubscribeSync("$SYS.ACCOUNT.CLIENT.AUTH.ERR")
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Flush(); err != nil {
			t.Fatal(err)
		}

		disconnected := make(chan time.Time, 1)
		closed := make(chan struct{})
		// The client's asynchronous errors (the refused reconnect) are
		// kept here rather than printed by nats.go.
		asyncErrs := make(chan error, 16)
		nc, err := nats.Connect(c.url(0), nats.UserInfo(user, passwords[user]), nats.Timeout(3*time.Second),
			nats.MaxReconnects(1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectJitter(0, 0),
			nats.IgnoreDiscoveredServers(),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case asyncErrs <- err:
				default:
				}
			}),
			nats.DisconnectErrHandler(func(*nats.Conn, error) {
				select {
				case disconnected <- time.Now():
				default:
				}
			}),
			nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
		if err != nil {
			t.Fatalf("connect %s through n1: %v", user, err)
		}
		defer nc.Close()
		// Positive control: the connection works before the disable.
		sub, err := nc.SubscribeSync("ctl.x")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("ctl.x", []byte("ok")); err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(2 * time.Second); err != nil {
			t.Fatalf("%s's own message before the disable: %v", user, err)
		}

		r := c.admin(t, 1, "", "user", "disable", user)
		r.wantCode(t, exitOK)
		done := time.Now()
		select {
		case at := <-disconnected:
			lag := at.Sub(done)
			t.Logf("from 'user disable' on n2 exiting to the client's disconnect on n1: %v", lag.Round(time.Millisecond))
			if lag > time.Second {
				t.Errorf("%s's connection through n1 closed %v after the disable on n2, want within 1s", user, lag)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("%s's connection through n1 still open 3s after the disable on n2", user)
		}
		select {
		case <-closed:
			t.Logf("from 'user disable' on n2 exiting to the client's close after its refused reconnect: %v", time.Since(done).Round(time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Fatalf("%s's client still reconnecting 10s after the disable (last error %v)", user, nc.LastError())
		}
		// The reconnect was refused by the relay, for the disable.
		deadline := time.Now().Add(5 * time.Second)
		for {
			m, err := events.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("no auth error event for %s's reconnect with reason user_disabled: %v", user, err)
			}
			if strings.Contains(string(m.Data), `"user":"`+user+`"`) {
				if !strings.Contains(string(m.Data), `user_disabled"`) {
					t.Fatalf("%s's reconnect refused, event %s; want reason user_disabled", user, m.Data)
				}
				break
			}
		}
		// And a new login through n3 fails too.
		if err := c.login(2, user, passwords[user]); !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s through n3 after the disable: %v, want Authorization Violation", user, err)
		}
	})

	t.Run("locked out through nodes 1 and 2, refused on node 3, unlocked on node 3", func(t *testing.T) {
		const user = "alice5"
		login := func(i int, password string) error {
			nc, err := nats.Connect(c.url(i), nats.UserInfo(user, password), nats.Timeout(3*time.Second),
				nats.NoReconnect(), nats.IgnoreDiscoveredServers(), from("127.0.9.9"))
			if err == nil {
				nc.Close()
			}
			return err
		}
		for k := range 5 { // the threshold of one name from one address
			if err := login(k%2, "wrong-password"); !errors.Is(err, nats.ErrAuthorization) {
				t.Fatalf("wrong password %d through n%d: %v, want Authorization Violation", k+1, k%2+1, err)
			}
		}
		ev, err := nats.Connect(c.url(2), nats.UserInfo(c.sec.RelayUser, c.sec.RelayPassword))
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		events, err := ev.SubscribeSync("$SYS.ACCOUNT.CLIENT.AUTH.ERR")
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // a lock applies on every relay within 1 s
		if err := login(2, passwords[user]); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("the right password through n3 after the lock: %v, want Authorization Violation", err)
		}
		m, err := events.NextMsg(3 * time.Second)
		if err != nil || !strings.Contains(string(m.Data), `locked_out"`) {
			t.Fatalf("refused through n3: event %v, %v; want reason locked_out", m, err)
		}
		r := c.admin(t, 2, "", "user", "unlock", user)
		r.wantCode(t, exitOK)
		r.wantOutput(t, "unlocked user "+user)
		deadline := time.Now().Add(time.Second)
		for login(0, passwords[user]) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s unlocked on n3 cannot log in through n1 after 1 s", user)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("node 2 killed under steady logins", func(t *testing.T) {
		var (
			stop     = make(chan struct{})
			wg       sync.WaitGroup
			mu       sync.Mutex
			tries    int
			retried  int
			failures []string
		)
		pw := passwords["alice2"]
		for _, i := range []int{0, 2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					err := c.login(i, "alice2", pw)
					retry := err != nil
					if retry { // one retry per client
						err = c.login(i, "alice2", pw)
					}
					mu.Lock()
					tries++
					if retry {
						retried++
					}
					if err != nil {
						failures = append(failures, fmt.Sprintf("n%d: %v", i+1, err))
					}
					mu.Unlock()
				}
			}()
		}
		stopped := false
		stopLogins := func() {
			if !stopped {
				stopped = true
				close(stop)
				wg.Wait()
			}
		}
		defer stopLogins()
		time.Sleep(300 * time.Millisecond)
		c.kill(t, 1)
		killed := time.Now()

		// Admin writes on n1 go on while n2 is down. If n2 held the log's
		// stream leader, a write in the seconds until the two others elect
		// a new one is refused as without a quorum, and is not made: the
		// first write is retried until it goes through.
		var refused []e2eResult
		c.e.waitFor(t, 15*time.Second, "the first write on n1 with n2 down", func() error {
			r := c.addUser(t, 0, "while-down-1", "pw-while-down-1-1")
			if r.code != exitOK {
				refused = append(refused, r)
				return errors.New(strings.TrimSpace(r.stderr))
			}
			return nil
		})
		firstWrite := time.Since(killed)
		passwords["while-down-1"] = "pw-while-down-1-1"
		for _, r := range refused {
			if r.code != exitFailure || !strings.Contains(r.stderr, "quorum") || !strings.Contains(r.stderr, "not made") {
				t.Errorf("a write refused while the log elects a leader, without saying there is no quorum and it is not made:\n%s", r)
			}
		}
		for _, u := range []string{"while-down-2", "while-down-3"} {
			start := time.Now()
			addUser(t, 0, u)
			t.Logf("user add %s on n1 with n2 down: %v", u, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(2 * time.Second) // logins go on a while longer
		stopLogins()
		t.Logf("with n2 killed: first write on n1 went through %v after the kill (%d refused before it, no quorum while the log's stream elected a leader); logins through n1 and n3 during the outage: %d, %d needed their one retry, %d failed",
			firstWrite.Round(time.Millisecond), len(refused), tries, retried, len(failures))
		if len(failures) > 0 {
			t.Errorf("logins through n1 and n3 failed twice in a row with n2 down: %v", failures)
		}
		if tries < 20 {
			t.Errorf("only %d logins ran during the outage", tries)
		}

		// n2 comes back; a user added while it was down logs in through it.
		c.startServer(t, 1)
		c.startRelay(t, 1)
		ready := c.waitRelay(t, 1, 30*time.Second)
		var err error
		for time.Since(ready) < 5*time.Second {
			if err = c.login(1, "while-down-3", passwords["while-down-3"]); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("while-down-3, added while n2 was down: no login through n2 within 5s of its relay being ready: %v", err)
		}
		t.Logf("while-down-3 logged in through n2 %v after its relay was ready", time.Since(ready).Round(time.Millisecond))
	})

	t.Run("two of three down: logins go on, writes refused, nothing lost", func(t *testing.T) {
		before := c.admin(t, 0, "", "user", "list", "--json")
		before.wantCode(t, exitOK)
		c.kill(t, 1)
		c.kill(t, 2)

		if err := c.login(0, "alice3", passwords["alice3"]); err != nil {
			t.Errorf("alice3 through the survivor n1 with n2 and n3 down: %v, want logged in from its copy", err)
		}
		start := time.Now()
		r := c.addUser(t, 0, "no-quorum", "pw-no-quorum-1")
		t.Logf("user add with no quorum: exit %d after %v: %s", r.code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
		r.wantCode(t, exitFailure)
		if !strings.Contains(r.stderr, "quorum") {
			t.Errorf("the refused write does not name the missing quorum:\n%s", r)
		}
		after := c.admin(t, 0, "", "user", "list", "--json")
		after.wantCode(t, exitOK)
		if after.stdout != before.stdout {
			t.Errorf("user list on n1 changed by the refused write:\nbefore\n%s\nafter\n%s", before.stdout, after.stdout)
		}
		if err := c.login(0, "alice4", passwords["alice4"]); err != nil {
			t.Errorf("alice4 through n1 after the refused write: %v", err)
		}

		for _, i := range []int{1, 2} {
			c.startServer(t, i)
			c.startRelay(t, i)
		}
		for _, i := range []int{1, 2} {
			c.waitRelay(t, i, 45*time.Second)
		}
		// The log's stream may still elect its leader: retry the write a
		// while, each attempt a whole command that either did it or not.
		var res e2eResult
		c.e.waitFor(t, 30*time.Second, "a write on n1 after recovery", func() error {
			res = c.addUser(t, 0, "after-recovery", "pw-after-recovery-1")
			if res.code != exitOK {
				return errors.New(strings.TrimSpace(res.stderr))
			}
			return nil
		})
		passwords["after-recovery"] = "pw-after-recovery-1"
		state := c.waitSame(t)
		for u := range passwords {
			if !strings.Contains(state, `"`+u+`"`) {
				t.Errorf("user %s is gone after the recovery", u)
			}
		}
		if strings.Contains(state, `"no-quorum"`) {
			t.Errorf("the refused write's user is in the state after the recovery")
		}
		for i := range 3 {
			if err := c.login(i, "after-recovery", passwords["after-recovery"]); err != nil {
				c.e.waitFor(t, 2*time.Second, "after-recovery through n"+strconv.Itoa(i+1), func() error {
					return c.login(i, "after-recovery", passwords["after-recovery"])
				})
			}
		}
	})

	t.Run("20 concurrent conflicting writes from two nodes", func(t *testing.T) {
		addUser(t, 0, "carol")
		type outcome struct {
			node int
			op   string
			pw   string
			r    e2eResult
		}
		var (
			wg   sync.WaitGroup
			outs = make([]outcome, 20)
		)
		for k := range outs {
			node := k % 2 // n1 and n2
			o := outcome{node: node, pw: fmt.Sprintf("pw-race-%02d-x", k)}
			switch {
			case k < 10:
				o.op = "add bob"
			case k < 16:
				o.op = "passwd carol"
			default:
				o.op = "rm carol"
			}
			outs[k] = o
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch o.op {
				case "add bob":
					outs[k].r = c.addUser(t, node, "bob", o.pw)
				case "passwd carol":
					outs[k].r = c.admin(t, node, o.pw+"\n", "user", "passwd", "carol", "--password-stdin")
				case "rm carol":
					outs[k].r = c.admin(t, node, "", "user", "rm", "carol")
				}
			}()
		}
		start := time.Now()
		wg.Wait()
		t.Logf("20 concurrent writes on n1 and n2 done in %v", time.Since(start).Round(time.Millisecond))

		var bobWinner string
		var adds, rms, passwds int
		for _, o := range outs {
			switch {
			case o.r.code == exitOK:
				switch o.op {
				case "add bob":
					adds++
					bobWinner = o.pw
				case "rm carol":
					rms++
				case "passwd carol":
					passwds++
				}
			case o.r.code != exitFailure:
				t.Errorf("n%d %s: %s", o.node+1, o.op, o.r)
			case o.op == "add bob" && !strings.Contains(o.r.stderr, "already exists"):
				t.Errorf("n%d user add bob lost the race without \"already exists\":\n%s", o.node+1, o.r)
			case o.op != "add bob" && !strings.Contains(o.r.stderr, "not found"):
				t.Errorf("n%d user %s lost the race without \"not found\":\n%s", o.node+1, o.op, o.r)
			}
		}
		t.Logf("bob: %d add succeeded; carol: %d passwd and %d rm succeeded", adds, passwds, rms)
		if adds != 1 {
			t.Fatalf("%d of 10 concurrent 'user add bob' succeeded, want exactly 1", adds)
		}
		// In every serial order carol exists until the first rm, which
		// succeeds; the other rms and every passwd after it find no carol.
		if rms != 1 {
			t.Errorf("%d of 4 'user rm carol' succeeded, want exactly 1", rms)
		}
		state := c.waitSame(t)
		// The replicated audit trail is the log's order: on every node,
		// each passwd of carol that exited 0 comes before the one rm, and
		// no other change of carol is there.
		for i := range 3 {
			r := c.admin(t, i, "", "audit", "--user", "carol", "--json")
			r.wantCode(t, exitOK)
			var rows []struct {
				ID     int64  `json:"id"`
				Kind   string `json:"kind"`
				Action string `json:"action"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
				t.Fatalf("audit --json on n%d: %v\n%s", i+1, err, r.stdout)
			}
			slices.SortFunc(rows, func(a, b struct {
				ID     int64  `json:"id"`
				Kind   string `json:"kind"`
				Action string `json:"action"`
			}) int {
				return int(a.ID - b.ID)
			})
			var order []string
			for _, row := range rows {
				if row.Kind == "admin" && (row.Action == "user passwd" || row.Action == "user rm") {
					order = append(order, strings.TrimPrefix(row.Action, "user "))
				}
			}
			want := append(slices.Repeat([]string{"passwd"}, passwds), "rm")
			if !slices.Equal(order, want) {
				t.Errorf("carol's changes in n%d's audit trail: %v, want %v (the passwds that exited 0, then the rm)", i+1, order, want)
			}
		}
		if strings.Contains(state, `"carol"`) {
			t.Errorf("carol is still there after a 'user rm carol' exited 0")
		}
		if !strings.Contains(state, `"bob"`) {
			t.Fatalf("bob is missing after a 'user add bob' exited 0")
		}
		// The winner's password is bob's on every node; a loser's is not.
		loser := "pw-race-00-x"
		if loser == bobWinner {
			loser = "pw-race-01-x"
		}
		for i := range 3 {
			if err := c.login(i, "bob", bobWinner); err != nil {
				t.Errorf("bob with the winning add's password through n%d: %v", i+1, err)
			}
			if err := c.login(i, "bob", loser); !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("bob with a losing add's password through n%d: %v, want Authorization Violation", i+1, err)
			}
		}
	})

	for i := range c.nodes {
		if code := c.relays[i].stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("authrelay serve n%d exited with status %d after SIGTERM, want 0", i+1, code)
		}
	}
	t.Logf("whole cluster story, build excluded: %v", time.Since(began).Round(time.Millisecond))
}
