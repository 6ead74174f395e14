package deploy

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// testRoutes are the routes of a three-node cluster on loopback.
var testRoutes = []string{"nats://127.0.0.1:6222", "nats://127.0.0.1:6223", "nats://127.0.0.1:6224"}

// initFirst initialises the first node of a test cluster in a new
// directory.
func initFirst(t *testing.T, extra ClusterOptions) Layout {
	t.Helper()
	l := Layout{Dir: filepath.Join(t.TempDir(), "n1")}
	cl := extra
	cl.Listen, cl.Routes = "127.0.0.1:6222", testRoutes
	if err := Init(t.Context(), l, InitOptions{Accounts: []string{"APP"}, Listen: "127.0.0.1:4222", BcryptCost: testCost, Cluster: cl}); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestInitClusterNode: the first node of a cluster gets route credentials
// in secrets.json, cluster.json, and a nats.conf that includes
// cluster.conf (mode 0600), whose cluster block listens on
// --cluster-listen, requires the route credentials and dials every route
// with them; nats.conf itself holds no route password, and the server has
// the name and JetStream a cluster needs.
func TestInitClusterNode(t *testing.T) {
	l := initFirst(t, ClusterOptions{})
	s, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if s.RouteUser != RouteUser || len(s.RoutePassword) != 64 {
		t.Fatalf("route credentials %q/%d characters, want %q and a 64-character password", s.RouteUser, len(s.RoutePassword), RouteUser)
	}
	c, ok, err := l.Cluster()
	if err != nil || !ok {
		t.Fatalf("cluster.json: %v, %v", ok, err)
	}
	if want := (Cluster{Name: DefaultClusterName, Stream: DefaultClusterStream, Replicas: DefaultClusterReplicas}); c != want {
		t.Errorf("cluster.json %+v, want %+v", c, want)
	}
	for name, want := range map[string]os.FileMode{ClusterConf: 0o600, ClusterFile: 0o644, ServerConf: 0o644} {
		fi, err := os.Stat(l.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %#o, want %#o", name, got, want)
		}
	}
	conf, err := os.ReadFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(conf, []byte(s.RoutePassword)) {
		t.Errorf("nats.conf (mode 0644) holds the route password:\n%s", conf)
	}
	opts, err := server.ProcessConfigFile(l.Path(ServerConf))
	if err != nil {
		t.Fatalf("nats-server rejects the config: %v", err)
	}
	if opts.Cluster.Name != DefaultClusterName || opts.Cluster.Host != "127.0.0.1" || opts.Cluster.Port != 6222 {
		t.Errorf("cluster %q listens on %s:%d, want %q on 127.0.0.1:6222", opts.Cluster.Name, opts.Cluster.Host, opts.Cluster.Port, DefaultClusterName)
	}
	if opts.Cluster.Username != s.RouteUser || opts.Cluster.Password != s.RoutePassword {
		t.Errorf("cluster authorization %q, want the route credentials of secrets.json", opts.Cluster.Username)
	}
	var routes []string
	for _, u := range opts.Routes {
		p, _ := u.User.Password()
		if u.User.Username() != s.RouteUser || p != s.RoutePassword {
			t.Errorf("route %s does not carry the route credentials", u.Host)
		}
		routes = append(routes, "nats://"+u.Host)
	}
	if !slices.Equal(routes, testRoutes) {
		t.Errorf("routes %v, want %v", routes, testRoutes)
	}
	if opts.ServerName == "" || !opts.JetStream || !strings.HasPrefix(opts.StoreDir, mustAbs(t, l.Dir)) {
		t.Errorf("server_name %q, jetstream %v, store_dir %q: a clustered JetStream needs a name and a store under the directory", opts.ServerName, opts.JetStream, opts.StoreDir)
	}
	// The cluster log's stream lives in the callout account: JetStream
	// is enabled there (the real-binary cluster tests show the relays use
	// it), and not in the system account.
	conf, err = os.ReadFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	auth, _, _ := strings.Cut(string(conf)[strings.Index(string(conf), "  "+AuthAccount+": {"):], "\n  }")
	sys, _, _ := strings.Cut(string(conf)[strings.Index(string(conf), "  "+SystemAccount+": {"):], "\n  }")
	if !strings.Contains(auth, "jetstream: enabled") || strings.Contains(sys, "jetstream") {
		t.Errorf("nats.conf's %s block:\n%s\n%s block:\n%s\nwant jetstream enabled in %[1]s only", AuthAccount, auth, SystemAccount, sys)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestInitJoin: a node that joins has the first node's keys, passwords and
// route credentials, the first node's cluster.json, and no state of its
// own: no application account in its database or accounts.conf.
func TestInitJoin(t *testing.T) {
	first := initFirst(t, ClusterOptions{Name: "east", Replicas: 3})
	want, err := first.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: filepath.Join(t.TempDir(), "n2")}
	if err := Init(t.Context(), l, InitOptions{Listen: "127.0.0.1:4223", BcryptCost: testCost, Cluster: ClusterOptions{
		Join: first.Path(SecretsFile), Listen: "127.0.0.1:6223", Routes: testRoutes}}); err != nil {
		t.Fatal(err)
	}
	got, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("joined secrets.json differs from the first node's")
	}
	c, ok, err := l.Cluster()
	if err != nil || !ok || c.Name != "east" {
		t.Errorf("joined cluster.json %+v (%v, %v), want the first node's, named east", c, ok, err)
	}
	opts, err := server.ProcessConfigFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Cluster.Name != "east" || opts.Cluster.Port != 6223 {
		t.Errorf("cluster %q on port %d, want east on 6223", opts.Cluster.Name, opts.Cluster.Port)
	}
	for _, a := range opts.Accounts {
		if a.Name != AuthAccount && a.Name != SystemAccount {
			t.Errorf("the joining node's nats.conf has account %s: it must start with none of its own", a.Name)
		}
	}
	db, err := l.OpenDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	accts, err := db.AccountList(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 0 {
		t.Errorf("the joining node's database has accounts %v, want none", accts)
	}
}

// TestInitClusterRefusals: bad cluster options are refused with an
// ErrInvalid error saying what is wrong, and nothing is written.
func TestInitClusterRefusals(t *testing.T) {
	first := initFirst(t, ClusterOptions{})
	single := Layout{Dir: filepath.Join(t.TempDir(), "single")}
	if err := Init(t.Context(), single, InitOptions{Listen: "127.0.0.1:4222", BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(t.TempDir(), "open", SecretsFile)
	copyFile(t, first.Path(SecretsFile), open, 0o644)
	join := first.Path(SecretsFile)
	cases := []struct {
		name     string
		accounts []string
		cl       ClusterOptions
		want     string
	}{
		{"join without cluster-listen", nil, ClusterOptions{Join: join, Routes: testRoutes}, "--join makes a cluster node, which needs --cluster-listen"},
		{"join without routes", nil, ClusterOptions{Join: join, Listen: "127.0.0.1:6223"}, "needs --cluster-listen"},
		{"replicas alone", nil, ClusterOptions{Replicas: 3}, "--cluster-name or --replicas makes a cluster node"},
		{"bad cluster listen", nil, ClusterOptions{Listen: "127.0.0.1", Routes: testRoutes}, `--cluster-listen "127.0.0.1": want HOST:PORT`},
		{"cluster listen port 0", nil, ClusterOptions{Listen: "127.0.0.1:0", Routes: testRoutes}, "--cluster-listen \"127.0.0.1:0\": port must be"},
		{"route not a URL", nil, ClusterOptions{Listen: "127.0.0.1:6223", Routes: []string{"127.0.0.1:6223"}}, "want nats://HOST:PORT"},
		{"route without port", nil, ClusterOptions{Listen: "127.0.0.1:6223", Routes: []string{"nats://127.0.0.1"}}, "--routes entry \"127.0.0.1\": want HOST:PORT"},
		{"route with credentials", nil, ClusterOptions{Listen: "127.0.0.1:6222", Routes: []string{"nats://u:secretpw@127.0.0.1:6222"}}, "carries credentials"},
		{"route twice", nil, ClusterOptions{Listen: "127.0.0.1:6222", Routes: []string{"nats://127.0.0.1:6222", "nats://127.0.0.1:6222"}}, "lists 127.0.0.1:6222 twice"},
		{"own route missing", nil, ClusterOptions{Join: join, Listen: "127.0.0.1:6225", Routes: testRoutes}, "do not include this node's --cluster-listen 127.0.0.1:6225"},
		{"join file too open", nil, ClusterOptions{Join: open, Listen: "127.0.0.1:6223", Routes: testRoutes}, "has mode 0644"},
		{"join file not secrets", nil, ClusterOptions{Join: first.Path(ServerConf), Listen: "127.0.0.1:6223", Routes: testRoutes}, "is not an authrelay secrets.json"},
		{"join file missing", nil, ClusterOptions{Join: filepath.Join(t.TempDir(), SecretsFile), Listen: "127.0.0.1:6223", Routes: testRoutes}, "no such file"},
		{"join a single node", nil, ClusterOptions{Join: single.Path(SecretsFile), Listen: "127.0.0.1:6223", Routes: testRoutes}, "has no route credentials: its directory is a single node"},
		{"join with accounts", []string{"APP"}, ClusterOptions{Join: join, Listen: "127.0.0.1:6223", Routes: testRoutes}, "--account with --join"},
		{"join another name", nil, ClusterOptions{Join: join, Listen: "127.0.0.1:6223", Routes: testRoutes, Name: "west"}, `the cluster of ` + join + ` is named "authrelay"`},
		{"replicas above servers", nil, ClusterOptions{Listen: "127.0.0.1:6222", Routes: testRoutes[:2]}, "--replicas 3 needs at least 3 servers"},
		{"bad cluster name", nil, ClusterOptions{Listen: "127.0.0.1:6222", Routes: testRoutes, Name: "a.b"}, "cluster name \"a.b\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := Layout{Dir: filepath.Join(t.TempDir(), "n")}
			err := Init(t.Context(), l, InitOptions{Accounts: c.accounts, Listen: "127.0.0.1:4223", BcryptCost: testCost, Cluster: c.cl})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Init: %v, want an ErrInvalid error with %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("the error repeats a route password: %v", err)
			}
			if _, err := os.Stat(l.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused init left %s behind (%v)", l.Dir, err)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, perm); err != nil {
		t.Fatal(err)
	}
}

// TestEnableCluster: a single-node directory becomes a cluster's first
// node with every key, password and user kept and nats.conf's own lines
// untouched; a second enable is refused with nothing changed.
func TestEnableCluster(t *testing.T) {
	ctx := t.Context()
	l := Layout{Dir: filepath.Join(t.TempDir(), "single")}
	if err := Init(ctx, l, InitOptions{Accounts: []string{"APP"}, Listen: "127.0.0.1:4222", BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	before, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	oldConf, err := os.ReadFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	c, err := EnableCluster(l, ClusterOptions{Listen: "127.0.0.1:6222", Routes: testRoutes})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != DefaultClusterName {
		t.Errorf("cluster %q, want %q", c.Name, DefaultClusterName)
	}
	after, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if after.RoutePassword == "" {
		t.Fatal("no route credentials after enable")
	}
	kept := after
	kept.RouteUser, kept.RoutePassword = "", ""
	if kept != before {
		t.Errorf("enable changed a key or password of secrets.json")
	}
	newConf, err := os.ReadFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	// enable adds JetStream to the callout account (where the cluster log
	// lives) and appends the include; nats.conf's other lines stay.
	withAuthJS, err := enableAuthJetStream(oldConf)
	if err != nil {
		t.Fatal(err)
	}
	if added := len(withAuthJS) - len(oldConf); added <= 0 || !bytes.HasPrefix(newConf, withAuthJS) {
		t.Errorf("enable changed nats.conf's own lines, not only the %s block and its end", AuthAccount)
	}
	opts, err := server.ProcessConfigFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Cluster.Port != 6222 || opts.Cluster.Password != after.RoutePassword || len(opts.Routes) != 3 || !opts.JetStream || opts.ServerName == "" {
		t.Errorf("nats.conf after enable: cluster port %d, %d routes, jetstream %v, server_name %q", opts.Cluster.Port, len(opts.Routes), opts.JetStream, opts.ServerName)
	}
	if _, ok, err := l.Cluster(); err != nil || !ok {
		t.Errorf("cluster.json after enable: %v, %v", ok, err)
	}

	// Again: refused, nothing changed.
	snapshot := readAll(t, l)
	_, err = EnableCluster(l, ClusterOptions{Listen: "127.0.0.1:6222", Routes: testRoutes})
	if err == nil || !strings.Contains(err.Error(), "already in cluster mode") {
		t.Fatalf("second enable: %v, want a refusal saying the directory is already in cluster mode", err)
	}
	if got := readAll(t, l); !maps.Equal(got, snapshot) {
		t.Errorf("a refused enable changed the directory")
	}
}

// TestEnableClusterRefusals: bad options, or a nats.conf with routes of its
// own, are refused and the directory stays a single node.
func TestEnableClusterRefusals(t *testing.T) {
	l := Layout{Dir: filepath.Join(t.TempDir(), "single")}
	if err := Init(t.Context(), l, InitOptions{Listen: "127.0.0.1:4222", BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	handRoutes := Layout{Dir: filepath.Join(t.TempDir(), "hand")}
	if err := Init(t.Context(), handRoutes, InitOptions{Listen: "127.0.0.1:4222", BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(handRoutes.Path(ServerConf), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\ncluster { name: x, listen: 127.0.0.1:7000 }\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		l    Layout
		o    ClusterOptions
		want string
	}{
		{"no options", l, ClusterOptions{}, "needs --cluster-listen"},
		{"join", l, ClusterOptions{Join: "x/secrets.json", Listen: "127.0.0.1:6222", Routes: testRoutes}, "init --join"},
		{"own route missing", l, ClusterOptions{Listen: "127.0.0.1:6230", Routes: testRoutes}, "do not include"},
		{"hand-written cluster block", handRoutes, ClusterOptions{Listen: "127.0.0.1:6222", Routes: testRoutes}, "already has a cluster block"},
	} {
		t.Run(c.name, func(t *testing.T) {
			snapshot := readAll(t, c.l)
			_, err := EnableCluster(c.l, c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("EnableCluster: %v, want an error with %q", err, c.want)
			}
			if got := readAll(t, c.l); !maps.Equal(got, snapshot) {
				t.Errorf("a refused enable changed the directory")
			}
		})
	}
}

// readAll returns the content of every file in l's directory.
func readAll(t *testing.T, l Layout) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(l.Dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(l.Path(e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestRoutesIncludeWildcard: a node listening on every interface is
// found among the routes by its port and one of this host's addresses.
func TestRoutesIncludeWildcard(t *testing.T) {
	if !RoutesInclude([]string{"nats://10.255.255.1:6222", "nats://127.0.0.1:6222"}, "0.0.0.0:6222") {
		t.Error("0.0.0.0:6222 not found in routes that list 127.0.0.1:6222")
	}
	if RoutesInclude([]string{"nats://10.255.255.1:6222", "nats://127.0.0.1:6223"}, "0.0.0.0:6222") {
		t.Error("0.0.0.0:6222 found in routes with no local address on its port")
	}
}
