package deploy

// Setting a cluster up, the directory side. A cluster node's directory is
// a single node's plus three things:
//
//   - cluster.json (mode 0644, no secret): the cluster's name, the stream
//     of the cluster log and its replicas; it puts the directory in
//     cluster mode.
//   - cluster.conf (mode 0600): nats.conf's cluster block, which nats.conf
//     includes at its end. Its route URLs carry the route password
//     (nats-server dials routes with the credentials in the URL), so the
//     file is as private as secrets.json, and nats.conf stays 0644 and free
//     of secrets.
//   - route_user and route_password in secrets.json: every route, in and
//     out, authenticates with them. An unauthenticated route port would let
//     any host that reaches it join the cluster and read the AUTH account's
//     login requests.
//
// The first node generates the route credentials with its other keys
// (init --cluster-listen --routes, or 'cluster enable' on an existing
// single node); the others copy them with every other key from its
// secrets.json (init --join), so that every server of the cluster trusts
// the same issuer and xkey and every relay logs in with the same password.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
)

// ClusterConf is the cluster block that a cluster node's nats.conf
// includes (mode 0600: its route URLs carry the route password).
const ClusterConf = "cluster.conf"

// RouteUser is the user every route of a cluster logs in as.
const RouteUser = "route"

// ClusterOptions are a cluster node's settings, for init and for 'cluster
// enable'. The zero value is a single node.
type ClusterOptions struct {
	// Listen is the route listen address (HOST:PORT) of this node.
	Listen string
	// Routes are the route URLs of every node of the cluster, this one
	// included, without credentials: nats://HOST:PORT.
	Routes []string
	// Join is the path of the first node's secrets.json: this node takes
	// every key, password and the route credentials from it, and the
	// cluster's name, stream and replicas from the cluster.json beside it
	// when there is one. Empty for the first node.
	Join string
	// Name is the NATS cluster name; empty means the joined cluster's, or
	// DefaultClusterName.
	Name string
	// Replicas is how many servers keep the cluster log; 0 means the
	// joined cluster's, or DefaultClusterReplicas.
	Replicas int
}

// enabled reports whether o asks for a cluster node at all.
func (o ClusterOptions) enabled() bool {
	return o.Listen != "" || len(o.Routes) > 0 || o.Join != "" || o.Name != "" || o.Replicas != 0
}

// clusterPlan is a validated ClusterOptions: what a cluster node's files
// get.
type clusterPlan struct {
	cluster Cluster
	listen  string
	routes  []string // nats://HOST:PORT, without credentials
	// joined, when set, is the first node's secrets (Join).
	joined *Secrets
}

// planCluster validates o and reads the joined node's files. It returns
// nil for a single node.
func planCluster(o ClusterOptions) (*clusterPlan, error) {
	if !o.enabled() {
		return nil, nil
	}
	if o.Listen == "" || len(o.Routes) == 0 {
		what := "--cluster-name or --replicas"
		if o.Join != "" {
			what = "--join"
		}
		return nil, invalidf("%s makes a cluster node, which needs --cluster-listen HOST:PORT (this node's route port) and --routes (every node's nats://HOST:PORT, this one included)", what)
	}
	if err := validateAddr("--cluster-listen", o.Listen, false); err != nil {
		return nil, err
	}
	p := &clusterPlan{listen: o.Listen}
	seen := map[string]bool{}
	for _, r := range o.Routes {
		hostport, err := parseRoute(r)
		if err != nil {
			return nil, err
		}
		if seen[hostport] {
			return nil, invalidf("--routes lists %s twice: give each node's route once", hostport)
		}
		seen[hostport] = true
		p.routes = append(p.routes, "nats://"+hostport)
	}
	if !RoutesInclude(p.routes, o.Listen) {
		return nil, invalidf("--routes %s do not include this node's --cluster-listen %s: list every node of the cluster, this one included, the same on every node", strings.Join(p.routes, ","), o.Listen)
	}
	p.cluster = Cluster{Name: DefaultClusterName, Stream: DefaultClusterStream, Replicas: DefaultClusterReplicas}
	if o.Join != "" {
		s, c, err := readJoin(o.Join)
		if err != nil {
			return nil, err
		}
		p.joined = &s
		if c != nil {
			if o.Name != "" && o.Name != c.Name {
				return nil, invalidf("--cluster-name %q: the cluster of %s is named %q; leave --cluster-name out to join it", o.Name, o.Join, c.Name)
			}
			if o.Replicas != 0 && o.Replicas != c.Replicas {
				return nil, invalidf("--replicas %d: the cluster of %s keeps %d; leave --replicas out to join it", o.Replicas, o.Join, c.Replicas)
			}
			p.cluster = *c
		}
	}
	if o.Name != "" {
		p.cluster.Name = o.Name
	}
	if o.Replicas != 0 {
		p.cluster.Replicas = o.Replicas
	}
	if err := p.cluster.Check(); err != nil {
		return nil, err
	}
	if p.cluster.Replicas > len(p.routes) {
		return nil, invalidf("--replicas %d needs at least %d servers, and --routes lists %d: add the other nodes' routes, or lower --replicas", p.cluster.Replicas, p.cluster.Replicas, len(p.routes))
	}
	return p, nil
}

// parseRoute checks one --routes entry and returns its HOST:PORT.
func parseRoute(r string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(r))
	if err != nil || u.Scheme != "nats" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", invalidf("--routes entry %q: want nats://HOST:PORT, such as nats://10.0.0.2:6222, entries separated by commas", accounts.Clip(r, 80))
	}
	if u.User != nil {
		return "", invalidf("--routes entry %q carries credentials: give nats://HOST:PORT only; init puts the cluster's route credentials (from secrets.json) into %s", accounts.RedactURL(r), ClusterConf)
	}
	if err := validateAddr("--routes entry", u.Host, false); err != nil {
		return "", err
	}
	return u.Host, nil
}

// RoutesInclude reports whether routes (nats://HOST:PORT) name the node
// listening for routes on listen: its HOST:PORT exactly or, when it
// listens on every interface, a route on its port whose host is one of
// this host's addresses.
func RoutesInclude(routes []string, listen string) bool {
	lhost, lport, _ := net.SplitHostPort(listen)
	ip := net.ParseIP(lhost)
	wildcard := ip != nil && ip.IsUnspecified()
	var local map[string]bool
	for _, r := range routes {
		hostport := strings.TrimPrefix(r, "nats://")
		if hostport == listen {
			return true
		}
		host, port, _ := net.SplitHostPort(hostport)
		if !wildcard || port != lport {
			continue
		}
		if local == nil {
			local = localAddrs()
		}
		addrs, err := net.LookupHost(host)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if local[net.ParseIP(a).String()] {
				return true
			}
		}
	}
	return false
}

// localAddrs returns this host's interface addresses.
func localAddrs() map[string]bool {
	out := map[string]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out[n.IP.String()] = true
		}
	}
	return out
}

// readJoin reads the first node's secrets.json at path, and the
// cluster.json beside it when there is one.
func readJoin(path string) (Secrets, *Cluster, error) {
	// What the file is first, so that a wrong file is named as such
	// rather than told to change its mode.
	b, err := os.ReadFile(path)
	if err != nil {
		return Secrets{}, nil, invalidf("--join %s: %v: give the first node's secrets.json (copied to this host, mode 0600)", path, err)
	}
	var probe Secrets
	if err := json.Unmarshal(b, &probe); err != nil || probe.IssuerSeed == "" || probe.XKeySeed == "" {
		return Secrets{}, nil, invalidf("--join %s is not an authrelay secrets.json: give the first node's DIR/secrets.json (copied to this host, mode 0600)", path)
	}
	s, err := readSecretsFile(path)
	if err != nil {
		return Secrets{}, nil, invalidf("--join %s: %v", path, err)
	}
	if s.AdminUser == "" || s.AdminPassword == "" {
		return Secrets{}, nil, invalidf("--join %s lacks admin_user or admin_password: give the secrets.json of the cluster's first node", path)
	}
	if s.RouteUser == "" || s.RoutePassword == "" {
		return Secrets{}, nil, invalidf("--join %s has no route credentials: its directory is a single node, not a cluster's; make it the first node with 'authrelay cluster enable --dir %s --cluster-listen HOST:PORT --routes …' and join its secrets.json then", path, filepath.Dir(path))
	}
	// The same checks as serve's: a seed the relay would refuse is never
	// copied into a new directory.
	if _, err := accounts.NewIssuer(s.IssuerSeed, nil); err != nil {
		return Secrets{}, nil, invalidf("--join %s: %v", path, err)
	}
	if _, err := accounts.NewXKey(s.XKeySeed); err != nil {
		return Secrets{}, nil, invalidf("--join %s: %v", path, err)
	}
	c, ok, err := Layout{Dir: filepath.Dir(path)}.Cluster()
	if err != nil {
		return Secrets{}, nil, invalidf("--join %s: %v", path, err)
	}
	if !ok {
		return s, nil, nil
	}
	return s, &c, nil
}

// newRouteCredentials adds fresh route credentials to s.
func newRouteCredentials(s Secrets) Secrets {
	s.RouteUser, s.RoutePassword = RouteUser, RandomPassword()
	return s
}

// RenderClusterConf renders cluster.conf, the cluster block of a node
// that listens for routes on listen and dials routes (nats://HOST:PORT,
// without credentials) with s's route credentials.
func RenderClusterConf(c Cluster, listen string, routes []string, s Secrets) ([]byte, error) {
	if s.RouteUser == "" || s.RoutePassword == "" {
		return nil, errors.New("render cluster.conf: secrets.json has no route credentials")
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `# cluster.conf, written by authrelay and included at the end of nats.conf.
# Mode 0600: the route URLs carry the route password, which is also in
# secrets.json. Every node of the cluster has the same routes and the same
# credentials; a server that does not know them cannot join.

cluster {
  name: %q
  listen: %q
  authorization {
    user: %q
    password: %q
  }
  routes: [
`, c.Name, listen, s.RouteUser, s.RoutePassword)
	var urls []string
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("render cluster.conf: route %q: %w", r, err)
		}
		u.User = url.UserPassword(s.RouteUser, s.RoutePassword)
		urls = append(urls, u.String())
	}
	// In the order nats-server's reload sorts them into, in place, in the
	// options the running server's route dialers read: already sorted,
	// the sort writes nothing (nats-server 2.15.2, reload.go imposeOrder).
	slices.Sort(urls)
	for _, u := range urls {
		fmt.Fprintf(&b, "    %q\n", u)
	}
	b.WriteString("  ]\n}\n")
	return b.Bytes(), nil
}

// clusterInclude is what a cluster node's nats.conf ends with.
const clusterInclude = `
# Cluster mode ('authrelay init --cluster-listen', 'authrelay cluster
# enable'): the cluster block, with the route credentials, is in
# cluster.conf (mode 0600).
include "` + ClusterConf + `"
`

// appendClusterInclude returns conf with the include of cluster.conf at
// its end, after what a clustered JetStream needs if conf lacks it.
func appendClusterInclude(conf []byte, l Layout, clientListen string) ([]byte, error) {
	out, err := enableAuthJetStream(conf)
	if err != nil {
		return nil, err
	}
	js, err := jetStreamStanza(conf, l, clientListen)
	if err != nil {
		return nil, err
	}
	out = append(out, js...)
	return append(out, clusterInclude...), nil
}

// enableAuthJetStream returns conf with JetStream enabled for the callout
// account, where the cluster log's stream lives (only the relays have users
// there): a "jetstream: enabled" line at the top of the AUTH account's block
// as init writes it. A conf whose AUTH block it cannot find is refused with
// what to add by hand.
func enableAuthJetStream(conf []byte) ([]byte, error) {
	open := "  " + AuthAccount + ": {\n"
	if bytes.Count(conf, []byte(open)) != 1 {
		return nil, invalidf("nats.conf: cannot find the %s account's block as init writes it (%q): add 'jetstream: enabled' to the %s account by hand, then run the command again (nothing changed)", AuthAccount, strings.TrimSpace(open), AuthAccount)
	}
	i := bytes.Index(conf, []byte(open)) + len(open)
	if rest := conf[i:]; bytes.HasPrefix(bytes.TrimLeft(rest, " \t"), []byte("jetstream")) {
		return bytes.Clone(conf), nil
	}
	out := append(bytes.Clone(conf[:i]), "    # The cluster log's stream lives in this account.\n    jetstream: enabled\n"...)
	return append(out, conf[i:]...), nil
}

// jetStreamStanza returns the server_name and jetstream lines that a
// clustered JetStream needs (every server of a cluster has a unique
// name), for those of the two that conf does not set at its top level.
// conf.go renders both for a new nats.conf once that lands; this covers
// a nats.conf written before, which 'cluster enable' converts.
func jetStreamStanza(conf []byte, l Layout, clientListen string) ([]byte, error) {
	var b bytes.Buffer
	if !hasTopLevelKey(conf, "server_name") {
		fmt.Fprintf(&b, "\n# This server's name, unique in the cluster (JetStream needs one).\nserver_name: %q\n", DefaultServerName(clientListen))
	}
	if !hasTopLevelKey(conf, "jetstream") {
		// As init writes it (see newJetStreamConf): the server adds
		// "jetstream" to store_dir itself.
		dir, err := filepath.Abs(l.Dir)
		if err != nil {
			return nil, fmt.Errorf("jetstream store: %w", err)
		}
		fmt.Fprintf(&b, "\n# JetStream keeps the cluster log; its store is DIR/jetstream.\njetstream {\n  store_dir: %q\n}\n", dir)
	}
	return b.Bytes(), nil
}

// hasTopLevelKey reports whether conf sets key on an unindented line.
func hasTopLevelKey(conf []byte, key string) bool {
	for _, line := range strings.Split(string(conf), "\n") {
		rest, ok := strings.CutPrefix(line, key)
		if ok && (rest == "" || strings.ContainsAny(rest[:1], " \t:={")) {
			return true
		}
	}
	return false
}

// files renders p's cluster.conf, with s's route credentials, and
// cluster.json.
func (p *clusterPlan) files(s Secrets) (clusterConf, clusterJSON []byte, err error) {
	if clusterConf, err = RenderClusterConf(p.cluster, p.listen, p.routes, s); err != nil {
		return nil, nil, err
	}
	if clusterJSON, err = json.MarshalIndent(p.cluster, "", "  "); err != nil {
		return nil, nil, err
	}
	return clusterConf, append(clusterJSON, '\n'), nil
}

// EnableCluster makes the single-node directory l the first node of a
// cluster, with nothing lost: it adds route credentials to secrets.json
// (every key, password and user stays), writes cluster.conf and
// cluster.json, and appends the include of cluster.conf (and the
// server_name and jetstream a cluster needs, where nats.conf lacks them)
// to nats.conf, whose own lines stay as they are. The database is not
// touched. It refuses a directory already in cluster mode, and restores
// every file if a step fails. nats-server needs a restart to take the
// cluster block.
func EnableCluster(l Layout, o ClusterOptions) (_ Cluster, err error) {
	if o.Join != "" {
		return Cluster{}, invalidf("cluster enable makes an existing directory a cluster's first node; a node that joins starts as a new directory: 'authrelay init --join %s --dir NEW …'", o.Join)
	}
	if !o.enabled() {
		return Cluster{}, invalidf("cluster enable needs --cluster-listen HOST:PORT and --routes")
	}
	s, err := l.LoadSecrets()
	if err != nil {
		return Cluster{}, err
	}
	c, ok, err := l.Cluster()
	switch {
	case err != nil:
		return Cluster{}, err
	case ok:
		return Cluster{}, fmt.Errorf("%s is already in cluster mode (cluster %q in %s): nothing changed", l.Dir, c.Name, l.Path(ClusterFile))
	case s.RoutePassword != "":
		return Cluster{}, fmt.Errorf("%s already has route credentials in %s but no %s: it was set up as a cluster node; restore %s from another node, or remove the route credentials to start over (nothing changed)", l.Dir, SecretsFile, ClusterFile, ClusterFile)
	}
	if _, err := os.Stat(l.Path(ClusterConf)); !errors.Is(err, fs.ErrNotExist) {
		return Cluster{}, fmt.Errorf("%s already holds %s: remove it if it is left over, then run the command again (nothing changed)", l.Dir, ClusterConf)
	}
	confPath := l.Path(ServerConf)
	opts, err := server.ProcessConfigFile(confPath)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: read %s: %w: fix it first (authrelay doctor --offline --dir %s)", confPath, err, l.Dir)
	}
	if opts.Cluster.Port != 0 || len(opts.Routes) > 0 {
		return Cluster{}, invalidf("%s already has a cluster block or routes of its own: authrelay writes the cluster block into %s; remove the routes from nats.conf, then run the command again (nothing changed)", confPath, ClusterConf)
	}
	p, err := planCluster(o)
	if err != nil {
		return Cluster{}, err
	}
	oldConf, err := os.ReadFile(confPath)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: %w", err)
	}
	fi, err := os.Stat(confPath)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: %w", err)
	}
	oldSecrets, err := os.ReadFile(l.Path(SecretsFile))
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: %w", err)
	}
	s = newRouteCredentials(s)
	newConf, err := appendClusterInclude(oldConf, l, net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)))
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: %w", err)
	}
	clusterConf, clusterJSON, err := p.files(s)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: %w", err)
	}
	secrets, err := marshalSecrets(s)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: %w", err)
	}
	defer func() {
		if err != nil {
			// Back to the single node it was.
			os.Remove(l.Path(ClusterFile))
			WriteFileAtomic(l.Path(SecretsFile), oldSecrets, 0o600)
			WriteFileAtomic(confPath, oldConf, fi.Mode().Perm())
			os.Remove(l.Path(ClusterConf))
		}
	}()
	if err := WriteFileAtomic(l.Path(ClusterConf), clusterConf, 0o600); err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: write %s: %w", ClusterConf, err)
	}
	if err := WriteFileAtomic(confPath, newConf, fi.Mode().Perm()); err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: write %s: %w", ServerConf, err)
	}
	if _, err := server.ProcessConfigFile(confPath); err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: %s with the cluster block does not load: %w (nothing changed)", confPath, err)
	}
	if err := WriteFileAtomic(l.Path(SecretsFile), secrets, 0o600); err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: write %s: %w", SecretsFile, err)
	}
	// Last: cluster.json is what puts the directory in cluster mode.
	if err := WriteFileAtomic(l.Path(ClusterFile), clusterJSON, 0o644); err != nil {
		return Cluster{}, fmt.Errorf("cluster enable: write %s: %w", ClusterFile, err)
	}
	return p.cluster, nil
}
