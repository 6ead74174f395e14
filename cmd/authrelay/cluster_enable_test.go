package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/deploy"
)

// TestClusterEnableKeepsUsers: 'cluster enable' makes a single-node
// directory a cluster's first node with nothing lost: a user added before
// logs in afterwards with the same password, through the server running
// the converted nats.conf (now with its cluster block and JetStream), and
// the relay that runs the same secrets.json. A second enable is refused.
func TestClusterEnableKeepsUsers(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	cheapHashPolicy(t, dir)
	mustRun(t, "pw-alice-1\n", "user", "add", "alice", "--dir", dir, "--account", "APP", "--password-stdin", "--pub", ">", "--sub", ">")
	before, err := os.ReadFile(deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}

	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(e2eFreePort(t)))
	enable := []string{"cluster", "enable", "--dir", dir, "--cluster-listen", listen, "--routes", "nats://" + listen, "--replicas", "1"}
	r := mustRun(t, "", enable...)
	if !strings.Contains(r.stdout, "init --dir DIR --join "+deploy.Layout{Dir: dir}.Path(deploy.SecretsFile)) {
		t.Errorf("enable does not say how the other nodes join:\n%s", r.stdout)
	}
	after, err := os.ReadFile(deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile))
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

	s := serveOn(t, dir)
	nc, err := s.connect("alice", "pw-alice-1")
	if err != nil {
		t.Fatalf("alice cannot log in after cluster enable: %v", err)
	}
	defer nc.Close()
	if _, err := s.connect("alice", "pw-alice-2"); err == nil {
		t.Errorf("alice logs in with a wrong password after cluster enable")
	}
}
