package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/nats-io/nats.go"
)

// clusterNode is one node of the real-binary cluster test.
type clusterNode struct {
	dir, listen, clusterListen string
	server                     *e2eProcess
}

func (n *clusterNode) conf() string { return filepath.Join(n.dir, "nats.conf") }

// TestClusterInitRealBinaries sets up a three-node cluster with the init
// lines of the README (first node, then two --join), on loopback with free
// ports, and runs three stock nats-server processes from the files init
// wrote, unedited: 'nats-server -t' accepts each, the servers form one
// cluster (every server has routes to the two others), JetStream elects a
// meta leader, a fourth server with the right keys but a wrong route
// password is not admitted, and the same server with the right one is.
func TestClusterInitRealBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	tmp := t.TempDir()
	nodes := make([]*clusterNode, 4)
	var routes []string
	for i := range nodes {
		nodes[i] = &clusterNode{
			dir:           filepath.Join(tmp, "n"+strconv.Itoa(i+1)),
			listen:        loopback.Addr(t),
			clusterListen: loopback.Addr(t),
		}
		if i < 3 {
			routes = append(routes, "nats://"+nodes[i].clusterListen)
		}
	}
	three := strings.Join(routes, ",")

	// authrelay init --dir n1 --listen … --cluster-listen … --routes <three>
	// authrelay init --dir n2 --join n1/secrets.json --listen … --cluster-listen … --routes <three>
	// authrelay init --dir n3 --join n1/secrets.json …
	join := filepath.Join(nodes[0].dir, "secrets.json")
	for i, n := range nodes[:3] {
		args := []string{"init", "--dir", n.dir}
		if i > 0 {
			args = append(args, "--join", join)
		}
		args = append(args, "--listen", n.listen, "--cluster-listen", n.clusterListen, "--routes", three)
		e.authrelay(t, "", args...).wantCode(t, exitOK)
		e.run(t, "", bin.natsServer, "-t", "-c", n.conf()).wantCode(t, 0)
		r := e.authrelay(t, "", "doctor", "--dir", n.dir, "--offline")
		r.wantCode(t, exitOK)
		r.wantOutput(t, "routes on "+n.clusterListen+" to 3 servers")
		for name, want := range map[string]os.FileMode{"secrets.json": 0o600, "cluster.conf": 0o600, "nats.conf": 0o644, "cluster.json": 0o644} {
			fi, err := os.Stat(filepath.Join(n.dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s/%s has mode %#o, want %#o", n.dir, name, got, want)
			}
		}
	}
	s := e.secretsOf(t, nodes[0].dir)
	for _, n := range nodes[1:3] {
		if got := e.secretsOf(t, n.dir); got != s {
			t.Errorf("%s/secrets.json differs from the first node's: every node needs the same keys and passwords", n.dir)
		}
	}
	conf, err := os.ReadFile(nodes[0].conf())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(conf), s.RoutePassword) {
		t.Errorf("nats.conf (mode 0644) holds the route password")
	}

	// nats-server -c n1/nats.conf, and n2, n3.
	started := time.Now()
	for i, n := range nodes[:3] {
		n.server = e.start(t, "nats-server n"+strconv.Itoa(i+1), bin.natsServer, "-c", n.conf())
	}
	admin := func(n *clusterNode) *nats.Conn {
		t.Helper()
		var nc *nats.Conn
		e.waitFor(t, 15*time.Second, "the admin login to "+n.listen, func() error {
			n.server.mustRun(t)
			var err error
			nc, err = nats.Connect("nats://"+n.listen, nats.UserInfo(s.AdminUser, s.AdminPassword), nats.Timeout(2*time.Second), nats.NoReconnect())
			return err
		})
		t.Cleanup(nc.Close)
		return nc
	}
	nc := admin(nodes[0])
	var names []string
	e.waitFor(t, 20*time.Second, "three servers with routes to each other", func() error {
		if names = serverNames(t, nc, 3); len(names) != 3 {
			return fmt.Errorf("servers answering: %v", names)
		}
		return checkMesh(nc, names)
	})
	meshed := time.Since(started)
	e.waitFor(t, 30*time.Second, "a JetStream meta leader known to all three servers", func() error {
		return checkMetaLeader(nc, names)
	})
	t.Logf("from starting the three servers: routes up in %v, JetStream meta leader in %v", meshed.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))

	// A fourth node with every key of the cluster but a wrong route
	// password: its routes are refused, the cluster stays three.
	n4 := nodes[3]
	four := three + ",nats://" + n4.clusterListen
	e.authrelay(t, "", "init", "--dir", n4.dir, "--join", join, "--listen", n4.listen, "--cluster-listen", n4.clusterListen, "--routes", four).wantCode(t, exitOK)
	clusterConf := filepath.Join(n4.dir, "cluster.conf")
	good, err := os.ReadFile(clusterConf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(good), s.RoutePassword) {
		t.Fatalf("cluster.conf does not hold the route password:\n%s", good)
	}
	wrong := strings.ReplaceAll(string(good), s.RoutePassword, strings.Repeat("0", len(s.RoutePassword)))
	if err := os.WriteFile(clusterConf, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	n4.server = e.start(t, "nats-server n4 (wrong route password)", bin.natsServer, "-c", n4.conf())
	e.waitFor(t, 15*time.Second, "the first node to refuse n4's routes", func() error {
		n4.server.mustRun(t)
		if !strings.Contains(nodes[0].server.stderr.String(), `authentication error - User "route"`) {
			return fmt.Errorf("no route authentication error in n1's log yet")
		}
		return nil
	})
	if got := serverNames(t, nc, 3); len(got) != 3 {
		t.Fatalf("servers in the cluster with n4's wrong route password: %v, want the three", got)
	}
	if err := checkMesh(nc, names); err != nil {
		t.Fatal(err)
	}
	n4.server.kill(t)

	// The positive control: the same node with the right password joins.
	if err := os.WriteFile(clusterConf, good, 0o600); err != nil {
		t.Fatal(err)
	}
	n4.server = e.start(t, "nats-server n4", bin.natsServer, "-c", n4.conf())
	e.waitFor(t, 20*time.Second, "n4 to join with the right route password", func() error {
		n4.server.mustRun(t)
		names4 := serverNames(t, nc, 4)
		if len(names4) != 4 {
			return fmt.Errorf("servers answering: %v", names4)
		}
		return checkMesh(nc, names4)
	})
}

// secretsOf reads dir's secrets.json.
func (e *e2e) secretsOf(t *testing.T, dir string) clusterSecrets {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s clusterSecrets
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s/secrets.json: %v", dir, err)
	}
	return s
}

// clusterSecrets is what a cluster node's secrets.json holds.
type clusterSecrets struct {
	IssuerSeed    string `json:"issuer_seed"`
	XKeySeed      string `json:"xkey_seed"`
	RelayUser     string `json:"relay_user"`
	RelayPassword string `json:"relay_password"`
	AdminUser     string `json:"admin_user"`
	AdminPassword string `json:"admin_password"`
	RouteUser     string `json:"route_user"`
	RoutePassword string `json:"route_password"`
}

// pingServers sends a $SYS.REQ.SERVER.PING request and returns every
// server's answer that arrives within a second, or once want have.
func pingServers(nc *nats.Conn, what string, want int) ([][]byte, error) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$SYS.REQ.SERVER.PING."+what, inbox, nil); err != nil {
		return nil, err
	}
	var out [][]byte
	deadline := time.Now().Add(time.Second)
	for len(out) < want+1 { // one more, to see a server too many
		m, err := sub.NextMsg(time.Until(deadline))
		if err == nats.ErrTimeout {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m.Data)
	}
	return out, nil
}

// serverReply is the part of a $SYS.REQ.SERVER.PING answer the test reads.
type serverReply struct {
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Data struct {
		Routes []struct {
			RemoteName string `json:"remote_name"`
		} `json:"routes"`
		Meta *struct {
			Leader string `json:"leader"`
			Size   int    `json:"cluster_size"`
		} `json:"meta_cluster"`
	} `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

func decodeReplies(raw [][]byte) ([]serverReply, error) {
	out := make([]serverReply, len(raw))
	for i, b := range raw {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			return nil, fmt.Errorf("decode %s: %w", b, err)
		}
		if out[i].Error != nil {
			return nil, fmt.Errorf("server %s: %s", out[i].Server.Name, out[i].Error.Description)
		}
	}
	return out, nil
}

// serverNames returns the names of the servers that answer a ping through
// nc: those of its cluster.
func serverNames(t *testing.T, nc *nats.Conn, want int) []string {
	t.Helper()
	raw, err := pingServers(nc, "ROUTEZ", want)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := decodeReplies(raw)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rs {
		names = append(names, r.Server.Name)
	}
	slices.Sort(names)
	return names
}

// checkMesh checks that each of the servers names has a route to each of
// the others, and to no other server.
func checkMesh(nc *nats.Conn, names []string) error {
	raw, err := pingServers(nc, "ROUTEZ", len(names))
	if err != nil {
		return err
	}
	rs, err := decodeReplies(raw)
	if err != nil {
		return err
	}
	if len(rs) != len(names) {
		return fmt.Errorf("%d servers answered, want %d", len(rs), len(names))
	}
	for _, r := range rs {
		var remotes []string
		for _, rt := range r.Data.Routes {
			if !slices.Contains(remotes, rt.RemoteName) {
				remotes = append(remotes, rt.RemoteName)
			}
		}
		slices.Sort(remotes)
		want := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == r.Server.Name })
		if !slices.Equal(remotes, want) {
			return fmt.Errorf("server %s has routes to %v, want %v", r.Server.Name, remotes, want)
		}
	}
	return nil
}

// checkMetaLeader checks that every server of names reports the same
// JetStream meta leader, one of them, in a meta group of all of them.
func checkMetaLeader(nc *nats.Conn, names []string) error {
	raw, err := pingServers(nc, "JSZ", len(names))
	if err != nil {
		return err
	}
	rs, err := decodeReplies(raw)
	if err != nil {
		return err
	}
	if len(rs) != len(names) {
		return fmt.Errorf("%d servers answered, want %d", len(rs), len(names))
	}
	leader := ""
	for _, r := range rs {
		m := r.Data.Meta
		switch {
		case m == nil || m.Leader == "":
			return fmt.Errorf("server %s knows no JetStream meta leader", r.Server.Name)
		case m.Size != len(names):
			return fmt.Errorf("server %s has a meta group of %d, want %d", r.Server.Name, m.Size, len(names))
		case leader != "" && m.Leader != leader:
			return fmt.Errorf("servers disagree on the meta leader: %s and %s", leader, m.Leader)
		}
		leader = m.Leader
	}
	if !slices.Contains(names, leader) {
		return fmt.Errorf("meta leader %s is none of %v", leader, names)
	}
	return nil
}
