package node_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/node"
	"github.com/authrelay/authrelay/store"
)

// failLogin connects as user with a wrong password and requires the
// refusal.
func failLogin(t *testing.T, url, user string) {
	t.Helper()
	nc, err := connect(url, user, "wrong-password")
	if err == nil {
		nc.Close()
		t.Fatalf("connect as %s with a wrong password through %s succeeded", user, url)
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect as %s with a wrong password through %s: %v, want Authorization Violation", user, url, err)
	}
}

// lockedIn reports whether l's copy has a login of name from addr locked
// out now, as the relay's guard reads it.
func lockedIn(t *testing.T, l deploy.Layout, name, addr string) bool {
	t.Helper()
	db, err := l.OpenLocal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	locked, err := db.Lockouts(accounts.DefaultLockoutPolicy).Locked(t.Context(), name, addr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return locked
}

// pairState returns the failures counted in l's copy for name from addr,
// and whether it has a row.
func pairState(t *testing.T, l deploy.Layout, name, addr string) (failures int, found bool) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+l.Path(deploy.DatabaseFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(t.Context(), `SELECT failures FROM lockouts WHERE kind = 'user+addr' AND user = ? AND addr = ?`, name, addr).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("read the lockouts of %s: %v", l.Dir, err)
	}
	return n, true
}

// waitFor polls cond every 10 ms until it holds or d has passed, and
// returns how long it took.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// unlock runs 'user unlock' on l as the command does: one admin change,
// through the store deploy opens for the directory.
func unlock(t *testing.T, l deploy.Layout, name string) error {
	t.Helper()
	return admin(t, l, "user unlock", func(ctx context.Context, db *store.DB) error {
		_, err := db.Unlock(ctx, name, "")
		return err
	})
}

// TestClusterLockoutsAcrossNodes: failed logins spread over servers 1 and
// 2 (each answered by some relay of the cluster) are counted once each on
// every node (four leave node 3 with four, not
// locked); the fifth, on node 2, locks the user from that address on nodes
// 3 and 1 within 1 s, and the right password through servers 3 and 1 is
// refused with locked_out. An unlock on node 2 lifts it on nodes 1 and 3.
func TestClusterLockoutsAcrossNodes(t *testing.T) {
	c := newCluster(t, nil)
	for i := range 3 {
		startRelay(t, c.dirs[i], c.urls[i], true)
	}
	addUserAdmin(t, c.dirs[0], "alice", "pw-alice-1")
	// The positive control: the right password works through node 3.
	nc, _ := eventually(t, time.Second, c.urls[2], "alice", "pw-alice-1")
	nc.Close()

	const addr = "127.0.0.1"
	for i := range 4 {
		failLogin(t, c.urls[i%2], "alice") // nodes 1, 2, 1, 2
	}
	// Counted once on every node, whichever relay answered each: four
	// (twice would have locked it at the threshold of five).
	for i := range 3 {
		waitFor(t, time.Second, fmt.Sprintf("node %d counts the four failures", i+1), func() bool {
			n, _ := pairState(t, c.dirs[i], "alice", addr)
			return n >= 4
		})
	}
	time.Sleep(100 * time.Millisecond) // no fifth count arriving late
	for i := range 3 {
		if n, _ := pairState(t, c.dirs[i], "alice", addr); n != 4 {
			t.Errorf("node %d counts %d failures of alice from %s, want 4", i+1, n, addr)
		}
		if lockedIn(t, c.dirs[i], "alice", addr) {
			t.Errorf("node %d has alice locked after four failures (threshold five)", i+1)
		}
	}
	failLogin(t, c.urls[1], "alice")
	// The fifth, through server 2, locks the pair on every node (whichever
	// relay answered it, at least two have it from the events); any relay
	// answers any server's logins, so every one must hold the lock before
	// the right password is tried, or one would grant and clear it.
	took := waitFor(t, time.Second, "the lock set by the fifth failure on every node", func() bool {
		return lockedIn(t, c.dirs[0], "alice", addr) && lockedIn(t, c.dirs[1], "alice", addr) && lockedIn(t, c.dirs[2], "alice", addr)
	})
	t.Logf("lock propagation to every node: %v", took)
	// The relays refuse the right password, each asked after the last's
	// refusal is seen, so that each reason read is the attempt's.
	for _, i := range []int{2, 0} {
		requireDenied(t, authErrors(t, c.dirs[i], c.urls[i]), accounts.ReasonLockedOut, c.urls[i], "alice", "pw-alice-1")
	}

	if err := unlock(t, c.dirs[1], "alice"); err != nil {
		t.Fatalf("unlock on node 2: %v", err)
	}
	for _, i := range []int{0, 2} {
		nc, took := eventually(t, time.Second, c.urls[i], "alice", "pw-alice-1")
		roundTrip(t, nc, "orders.unlocked")
		nc.Close()
		t.Logf("unlocked on node 2, logged in through node %d after %v", i+1, took)
	}
}

// auditRows returns the login rows of user in l's audit trail.
func auditRows(t *testing.T, l deploy.Layout, user string) []store.AuditEntry {
	t.Helper()
	db, err := l.OpenLocal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Audit(t.Context(), store.AuditFilter{User: user, Kind: store.AuditLogin})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// serverName returns the name of the server at url, as the relay user
// sees it.
func serverName(t *testing.T, l deploy.Layout, url string) string {
	t.Helper()
	sec, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := connect(url, sec.RelayUser, sec.RelayPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	return nc.ConnectedServerName()
}

// TestClusterLoginAuditAcrossNodes: every login row, whichever relay
// wrote it (any relay of the cluster answers any server's logins), is in
// the audit trail of every node once: unmarked on the node that wrote it,
// marked with that node's server elsewhere; a follower of node 3's trail
// (audit --follow) sees the others' rows as they arrive. The rows node 1
// wrote while relay 3 was stopped reach node 3 when it starts again, and
// the admin row of the user's creation, which comes through the cluster
// log, is on every node once.
func TestClusterLoginAuditAcrossNodes(t *testing.T) {
	c := newCluster(t, nil)
	var relays []*running
	for i := range 3 {
		relays = append(relays, startRelay(t, c.dirs[i], c.urls[i], true))
	}
	names := make([]string, 3)
	for i := range 3 {
		names[i] = serverName(t, c.dirs[i], c.urls[i])
	}
	addUserAdmin(t, c.dirs[0], "alice", "pw-alice-1")
	nc, _ := eventually(t, time.Second, c.urls[0], "alice", "pw-alice-1")
	nc.Close()

	db3, err := c.dirs[2].OpenLocal(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	after, err := db3.LastAuditID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	followed := make(chan store.AuditEntry, 64)
	fctx, stop := context.WithCancel(t.Context())
	followDone := make(chan error, 1)
	go func() {
		followDone <- db3.FollowAudit(fctx, store.AuditFilter{AfterID: after, Kind: store.AuditLogin}, 50*time.Millisecond, func(rows []store.AuditEntry) error {
			for _, r := range rows {
				followed <- r
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-followDone; err != nil {
			t.Errorf("follow node 3's audit trail: %v", err)
		}
	})
	// follow waits until node 3's follower has seen a row of each user
	// and returns them (rows of others, such as alice's login above
	// arriving late, are passed over).
	follow := func(users ...string) map[string]store.AuditEntry {
		t.Helper()
		got := map[string]store.AuditEntry{}
		deadline := time.After(5 * time.Second)
		for len(got) < len(users) {
			select {
			case r := <-followed:
				if slices.Contains(users, r.User) {
					got[r.User] = r
				}
			case <-deadline:
				t.Fatalf("node 3's audit follower got rows of %d of %v within 5 s", len(got), users)
			}
		}
		return got
	}

	// Wrong passwords of six names (each a row of its own, and no name
	// locked), through server 1: some relay answers each.
	var users []string
	for i := range 6 {
		u := fmt.Sprintf("user-%d", i)
		users = append(users, u)
		failLogin(t, c.urls[0], u)
	}
	for u, r := range follow(users...) {
		if r.Node != "" && r.Node != names[0] && r.Node != names[1] {
			t.Errorf("node 3's row of %s says node %q, not another node's server (%v)", u, r.Node, names)
		}
	}
	// The other nodes' copies too: a follower whose first try met the
	// streams still electing their leaders tries again a second later.
	deadline := time.Now().Add(5 * time.Second)
	for i := range 3 {
		for _, u := range users {
			for len(auditRows(t, c.dirs[i], u)) == 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // and no row twice
	for _, u := range users {
		writers := 0
		for i := range 3 {
			rows := auditRows(t, c.dirs[i], u)
			if len(rows) != 1 {
				t.Fatalf("node %d has %d login rows of %s, want 1: %+v", i+1, len(rows), u, rows)
			}
			switch rows[0].Node {
			case "":
				writers++
			case names[i]:
				t.Errorf("node %d marks its own row of %s with its own server", i+1, u)
			}
		}
		if writers != 1 {
			t.Errorf("%d nodes hold %s's row unmarked, want the one that wrote it", writers, u)
		}
	}

	// Relays 2 and 3 stop: relay 1 answers the next logins alone, and
	// relay 3, started again, brings its copy up to them.
	for _, r := range relays[1:] {
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
	}
	failLogin(t, c.urls[0], "late-1")
	failLogin(t, c.urls[0], "late-2")
	startRelay(t, c.dirs[2], c.urls[2], true)
	for u, r := range follow("late-1", "late-2") {
		if r.Node != names[0] || r.Result != store.AuditDenied {
			t.Errorf("node 3's row of %s's login while it was stopped: node %q result %s, want node %q denied", u, r.Node, r.Result, names[0])
		}
	}
	for i := range 3 {
		db, err := c.dirs[i].OpenLocal(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.Audit(t.Context(), store.AuditFilter{Kind: store.AuditAdmin})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range rows {
			if r.Action == "user add" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("node %d has %d admin rows of the one user add: %+v", i+1, n, rows)
		}
	}
}

// metric returns the value of the sample of /metrics at addr whose line
// starts with series, or -1.
func metric(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric %s: %q: %v", series, line, err)
			}
			return v
		}
	}
	return -1
}

// TestClusterEventsWithoutQuorum: with two of three servers down (and
// their relays), logins through the survivor go on and its failed logins
// still count and lock there; the events it could not send are held (the
// metrics say how many) and reach node 3, its relay started again once the
// servers are back: the lock and the login rows, none lost.
func TestClusterEventsWithoutQuorum(t *testing.T) {
	c := newCluster(t, nil)
	httpAddr := loopback.Addr(t)
	startRelay(t, c.dirs[0], c.urls[0], true, func(cfg *node.Config) { cfg.HTTPAddr = httpAddr })
	var relays []*running
	for i := 1; i < 3; i++ {
		relays = append(relays, startRelay(t, c.dirs[i], c.urls[i], true))
	}
	addUserAdmin(t, c.dirs[0], "alice", "pw-alice-1")
	addUserAdmin(t, c.dirs[0], "bob", "pw-bob-1")
	for _, u := range []string{"alice", "bob"} {
		nc, _ := eventually(t, time.Second, c.urls[0], u, "pw-"+u+"-1")
		nc.Close()
	}
	name1 := serverName(t, c.dirs[0], c.urls[0])
	waitFor(t, 5*time.Second, "node 3 has node 1's login rows", func() bool { return len(auditRows(t, c.dirs[2], "bob")) == 1 })

	// Relays 2 and 3 stop with their servers (a relay whose server is
	// gone answers through another server, and would count part of the
	// failures below by itself).
	for i, r := range relays {
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		c.stop(i + 1)
	}
	nc, _ := eventually(t, 2*time.Second, c.urls[0], "bob", "pw-bob-1")
	roundTrip(t, nc, "orders.no-quorum") // logins go on from the copy
	nc.Close()
	for range 5 {
		failLogin(t, c.urls[0], "alice")
	}
	requireDenied(t, authErrors(t, c.dirs[0], c.urls[0]), accounts.ReasonLockedOut, c.urls[0], "alice", "pw-alice-1")
	waitFor(t, 5*time.Second, "node 1 holds the events it cannot send", func() bool {
		return metric(t, httpAddr, `authrelay_cluster_events_waiting{stream="lockouts"}`) > 0
	})

	c.start(1)
	c.start(2)
	// Relay 3 resumes from its positions in the events streams.
	startRelay(t, c.dirs[2], c.urls[2], true)
	took := waitFor(t, 60*time.Second, "node 3 gets the lock node 1 set without quorum", func() bool {
		return lockedIn(t, c.dirs[2], "alice", "127.0.0.1")
	})
	t.Logf("after the servers came back, node 3 had node 1's lock after %v", took)
	waitFor(t, 30*time.Second, "node 3 gets the login rows node 1 wrote without quorum", func() bool {
		n := 0
		for _, r := range auditRows(t, c.dirs[2], "alice") {
			if r.Node == name1 && r.Result == store.AuditDenied {
				n += int(r.Count)
			}
		}
		return n >= 6 // five wrong passwords and the locked-out attempt
	})
	waitFor(t, 10*time.Second, "node 1 has sent everything", func() bool {
		return metric(t, httpAddr, `authrelay_cluster_events_waiting{stream="lockouts"}`) == 0 &&
			metric(t, httpAddr, `authrelay_cluster_events_waiting{stream="audit"}`) == 0
	})
	for _, s := range []string{"lockouts", "audit"} {
		if lost := metric(t, httpAddr, `authrelay_cluster_events_lost_total{stream="`+s+`"}`); lost != 0 {
			t.Errorf("node 1 lost %v %s events", lost, s)
		}
		if sent := metric(t, httpAddr, `authrelay_cluster_events_sent_total{stream="`+s+`"}`); sent <= 0 {
			t.Errorf("node 1 sent %v %s events", sent, s)
		}
	}
}
