package doctor

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"strconv"

	"github.com/authrelay/authrelay/deploy"
)

// checkCluster checks a cluster node: cluster.json valid, secrets.json's
// route credentials, cluster.conf private, and a cluster block in the
// server config whose routes include this node and authenticate with those
// credentials. A single node (no cluster.json) gives no result.
func (d *checker) checkCluster() {
	const check = "cluster"
	l := deploy.Layout{Dir: d.cfg.Dir}
	c, ok, err := l.Cluster()
	switch {
	case err != nil:
		d.fail(check, "%v", err)
		return
	case !ok:
		return
	}
	bad := false
	if d.secrets != nil && (d.secrets.RouteUser == "" || d.secrets.RoutePassword == "") {
		d.fail(check, "%s has no route_user or route_password, though %s puts the directory in cluster mode: copy secrets.json from the cluster's first node (mode 0600)", d.cfg.SecretsPath, deploy.ClusterFile)
		bad = true
	}
	conf := l.Path(deploy.ClusterConf)
	if fi, err := os.Stat(conf); err == nil && fi.Mode().Perm()&0o077 != 0 {
		d.fail(check, "%s has mode %#o: it holds the route password, with which any host can join a server to the cluster and read the AUTH account's login requests; run 'chmod 600 %s'", conf, fi.Mode().Perm(), conf)
		bad = true
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.fail(check, "%s: %v", conf, err)
		bad = true
	}
	if d.opts == nil {
		return // the server config check said why
	}
	o := d.opts.Cluster
	path := d.cfg.ConfigPath
	switch {
	case o.Port == 0:
		d.fail(check, "%s has no cluster block, though %s is in cluster mode: it should end with include \"%s\" (authrelay writes it with init --cluster-listen or cluster enable)", path, d.cfg.Dir, deploy.ClusterConf)
		return
	case o.Name != c.Name:
		d.fail(check, "%s names cluster %q, %s %q: every node needs the same name; copy cluster.json from the first node or fix the cluster block", path, o.Name, deploy.ClusterFile, c.Name)
		bad = true
	case o.Username == "":
		d.fail(check, "the cluster block of %s has no authorization: any host that reaches port %d can join the cluster and read the AUTH account's login requests; put the route credentials of secrets.json in (cluster.conf as authrelay writes it)", path, o.Port)
		bad = true
	case d.secrets != nil && (o.Username != d.secrets.RouteUser || o.Password != d.secrets.RoutePassword):
		d.fail(check, "the cluster block of %s does not take secrets.json's route credentials: the other nodes' routes will be refused; rewrite cluster.conf from the first node's secrets.json", path)
		bad = true
	}
	var routes []string
	for _, u := range d.opts.Routes {
		routes = append(routes, "nats://"+u.Host)
		pass, _ := u.User.Password()
		if d.secrets != nil && (u.User.Username() != d.secrets.RouteUser || pass != d.secrets.RoutePassword) {
			d.fail(check, "route %s in %s does not carry secrets.json's route credentials: the other node refuses it", u.Host, path)
			bad = true
		}
	}
	listen := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	if !deploy.RoutesInclude(routes, listen) {
		d.fail(check, "the routes of %s do not include this node's cluster listen %s: list every node, this one included, the same on every node", path, listen)
		bad = true
	}
	if !d.opts.JetStream || d.opts.ServerName == "" {
		d.fail(check, "%s lacks jetstream or server_name: a cluster node keeps the cluster log in JetStream, which needs both", path)
		bad = true
	}
	if !bad {
		d.ok(check, "cluster %q: routes on %s to %d servers with the route credentials of secrets.json; log %s, %d replicas", c.Name, listen, len(routes), c.Stream, c.Replicas)
	}
}
