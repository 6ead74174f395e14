package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/authrelay/authrelay/deploy"
)

// newClusterDir makes the first node of a three-node cluster with
// deploy.Init, as 'authrelay init --cluster-listen --routes' does.
func newClusterDir(t *testing.T) testDir {
	t.Helper()
	d := testDir{dir: filepath.Join(t.TempDir(), "n1")}
	l := deploy.Layout{Dir: d.dir}
	if err := deploy.Init(context.Background(), l, deploy.InitOptions{Accounts: []string{"APP"}, Listen: "127.0.0.1:4222", BcryptCost: bcrypt.MinCost,
		Cluster: deploy.ClusterOptions{Listen: "127.0.0.1:6222", Routes: []string{"nats://127.0.0.1:6222", "nats://127.0.0.1:6223", "nats://127.0.0.1:6224"}}}); err != nil {
		t.Fatal(err)
	}
	var err error
	if d.secrets, err = l.LoadSecrets(); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestClusterNode: a cluster node as init writes it passes the cluster
// check; a single node gives no cluster result; each fault a node can have
// fails it, saying what to do.
func TestClusterNode(t *testing.T) {
	t.Run("as written", func(t *testing.T) {
		d := newClusterDir(t)
		results := Run(context.Background(), d.config())
		if failed(results) {
			t.Errorf("a fresh cluster node fails doctor:\n%s", dump(results))
		}
		want(t, results, OK, "cluster", `cluster "authrelay": routes on 127.0.0.1:6222 to 3 servers`)
	})
	t.Run("single node", func(t *testing.T) {
		results := Run(context.Background(), newTestDir(t, "127.0.0.1:4222").config())
		if got := find(results, "cluster"); len(got) != 0 {
			t.Errorf("a single node has cluster results: %v", got)
		}
	})
	faults := []struct {
		name  string
		fault func(t *testing.T, d testDir)
		want  string
	}{
		{"cluster.conf readable by others", func(t *testing.T, d testDir) {
			if err := os.Chmod(d.path(deploy.ClusterConf), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "it holds the route password"},
		{"no authorization", func(t *testing.T, d testDir) {
			d.edit(t, deploy.ClusterConf, func(s string) string {
				s = replaceLine(s, "user:", "")
				return replaceLine(s, "password:", "")
			})
		}, "has no authorization: any host that reaches port 6222"},
		{"own route missing", func(t *testing.T, d testDir) {
			d.edit(t, deploy.ClusterConf, func(s string) string { return strings.ReplaceAll(s, "@127.0.0.1:6222", "@127.0.0.1:6225") })
		}, "do not include this node's cluster listen 127.0.0.1:6222"},
		{"wrong route password", func(t *testing.T, d testDir) {
			d.edit(t, deploy.ClusterConf, func(s string) string { return strings.ReplaceAll(s, d.secrets.RoutePassword+"@", "wrong@") })
		}, "does not carry secrets.json's route credentials"},
		{"no cluster block", func(t *testing.T, d testDir) {
			d.edit(t, deploy.ServerConf, func(s string) string { return replaceLine(s, "include \""+deploy.ClusterConf, "") })
		}, "has no cluster block"},
		{"other cluster name", func(t *testing.T, d testDir) {
			d.edit(t, deploy.ClusterFile, func(s string) string { return strings.Replace(s, `"authrelay"`, `"west"`, 1) })
		}, `names cluster "authrelay", cluster.json "west"`},
		{"no route credentials in secrets.json", func(t *testing.T, d testDir) {
			d.edit(t, deploy.SecretsFile, func(s string) string { return strings.Replace(s, `"route_password": "`, `"other": "`, 1) })
			if err := os.Chmod(d.path(deploy.SecretsFile), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "has no route_user or route_password"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			d := newClusterDir(t)
			f.fault(t, d)
			want(t, Run(context.Background(), d.config()), Fail, "cluster", f.want)
		})
	}
}
