package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/deploy"
)

// TestClusterDirectoryWithoutItsServer drives the real commands on a
// directory in cluster mode whose server does not run: reads work from the
// copy with one warning, writes fail with the no-quorum error and exit 1,
// and cluster status on a single node says there is no cluster.
func TestClusterDirectoryWithoutItsServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "n1")
	mustRun(t, "", "init", "--dir", dir, "--listen", listen)
	cheapHashPolicy(t, dir)
	if r := run(t, "", "cluster", "status", "--dir", dir); r.code != 1 || !strings.Contains(r.stderr, "is a single node") {
		t.Errorf("cluster status on a single node: exit %d, stderr %q", r.code, r.stderr)
	}
	mustRun(t, "pw-alice-1\n", "user", "add", "alice", "--dir", dir, "--account", "APP", "--password-stdin")

	if err := (deploy.Layout{Dir: dir}).WriteCluster(deploy.Cluster{Name: "c", Stream: "AUTHRELAY", Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "", "user", "list", "--dir", dir)
	if !strings.Contains(r.stdout, "alice") || strings.Count(r.stderr, "warning:") != 1 || !strings.Contains(r.stderr, "reading this node's copy") {
		t.Errorf("user list with the log unreachable: stdout %q, stderr %q; want alice and one warning", r.stdout, r.stderr)
	}
	r = run(t, "pw-bob-1\n", "user", "add", "bob", "--dir", dir, "--account", "APP", "--password-stdin")
	if r.code != 1 || !strings.Contains(r.stderr, "no JetStream quorum") || !strings.Contains(r.stderr, "the change is not made") {
		t.Errorf("user add with the log unreachable: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := mustRun(t, "", "user", "list", "--dir", dir); strings.Contains(r.stdout, "bob") {
		t.Errorf("the refused user add left bob in the copy:\n%s", r.stdout)
	}
}
