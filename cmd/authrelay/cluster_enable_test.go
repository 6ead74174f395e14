package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/loopback"
)

// TestClusterEnableKeepsUsers: 'cluster enable' makes a single-node
// directory a cluster's first node with nothing lost. alice, added before,
// logs in with the same password through the third node of the cluster
// the converted directory starts (two nodes made by 'init --join'), whose
// copy has her only from the cluster log the first relay wrote the old
// database into. A second enable is refused, and enable leaves the
// database as it was.
func TestClusterEnableKeepsUsers(t *testing.T) {
	root := t.TempDir()
	addr := func() string { return loopback.Addr(t) }
	dirs := []string{filepath.Join(root, "n1"), filepath.Join(root, "n2"), filepath.Join(root, "n3")}
	routesList := []string{"nats://" + addr(), "nats://" + addr(), "nats://" + addr()}
	routes := strings.Join(routesList, ",")
	listen := func(i int) string { return strings.TrimPrefix(routesList[i], "nats://") }

	// Distinct client addresses in init, so that the servers' default
	// names differ (serve --embedded listens on a free port anyway).
	mustRun(t, "", "init", "--dir", dirs[0], "--listen", addr())
	cheapHashPolicy(t, dirs[0])
	mustRun(t, "pw-alice-1\n", "user", "add", "alice", "--dir", dirs[0], "--account", "APP", "--password-stdin", "--pub", ">", "--sub", ">")
	before, err := os.ReadFile(deploy.Layout{Dir: dirs[0]}.Path(deploy.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}

	enable := []string{"cluster", "enable", "--dir", dirs[0], "--cluster-listen", listen(0), "--routes", routes}
	r := mustRun(t, "", enable...)
	if !strings.Contains(r.stdout, "init --dir DIR --join "+deploy.Layout{Dir: dirs[0]}.Path(deploy.SecretsFile)) {
		t.Errorf("enable does not say how the other nodes join:\n%s", r.stdout)
	}
	after, err := os.ReadFile(deploy.Layout{Dir: dirs[0]}.Path(deploy.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("enable changed the database")
	}
	r = run(t, "", enable...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "already in cluster mode") {
		t.Errorf("second enable: exit %d, %s; want exit %d saying the directory is already in cluster mode", r.code, r.stderr, exitFailure)
	}
	for i := 1; i < 3; i++ {
		mustRun(t, "", "init", "--dir", dirs[i], "--join", deploy.Layout{Dir: dirs[0]}.Path(deploy.SecretsFile),
			"--listen", addr(), "--cluster-listen", listen(i), "--routes", routes)
	}

	var waits []func() *servedDir
	for _, d := range dirs {
		waits = append(waits, serveStart(t, d))
	}
	var nodes []*servedDir
	for _, wait := range waits {
		nodes = append(nodes, wait())
	}
	nc, err := nodes[2].connect("alice", "pw-alice-1")
	if err != nil {
		t.Fatalf("alice cannot log in through the third node after cluster enable: %v", err)
	}
	nc.Close()
}
