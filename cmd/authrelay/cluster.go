package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/authrelay/authrelay/deploy"
)

const clusterUsage = `
Usage: authrelay cluster <subcommand> [flags]

Subcommands:

  enable   make a single-node directory the first node of a cluster
  status   the cluster log's end and how far each relay's copy is behind

A new cluster's nodes are made by 'authrelay init --cluster-listen
--routes' (the first) and 'authrelay init --join' (the others).
`

const clusterEnableUsage = `
Usage: authrelay cluster enable [--dir DIR] --cluster-listen HOST:PORT --routes URL,URL,...
                                [--cluster-name NAME] [--replicas N]

Makes a single-node directory the first node of a cluster, with every key,
password, user and account kept: route credentials in secrets.json,
cluster.json, cluster.conf (mode 0600) included from nats.conf. Restart
nats-server then; the other nodes 'authrelay init --join DIR/secrets.json'.

Example:

  authrelay cluster enable --dir n1 --cluster-listen 127.0.0.1:6222 \
      --routes nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224
`

func (m *Main) runCluster(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "cluster", clusterUsage, []subcommand{
		{[]string{"enable"}, m.runClusterEnable},
		{[]string{"status"}, m.runClusterStatus},
	}, args)
}

func (m *Main) runClusterEnable(ctx context.Context, args []string) error {
	fs := m.newFlagSet("cluster enable", clusterEnableUsage)
	dir := m.dirFlag(fs)
	var cl deploy.ClusterOptions
	clusterFlags(fs, &cl)
	if err := parseNoArgs(fs, args, "cluster enable"); err != nil {
		return err
	}
	l := deploy.Layout{Dir: *dir}
	c, err := deploy.EnableCluster(l, cl)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "%s is the first node of cluster %s; restart its nats-server (nats-server -c %s), then on every other node:\n",
		*dir, c.Name, l.Path(deploy.ServerConf))
	fmt.Fprintf(m.Stdout, "  authrelay init --dir DIR --join %s --listen HOST:PORT --cluster-listen HOST:PORT --routes %s\n",
		l.Path(deploy.SecretsFile), strings.Join(cl.Routes, ","))
	return nil
}

// clusterFlags registers the cluster settings of init and cluster enable.
func clusterFlags(fs *flag.FlagSet, cl *deploy.ClusterOptions) {
	fs.StringVar(&cl.Listen, "cluster-listen", "", "this node's route listen address (HOST:PORT)")
	fs.Func("routes", "every node's route, this one included: nats://HOST:PORT,...", func(v string) error {
		cl.Routes = append(cl.Routes, strings.Split(v, ",")...)
		return nil
	})
	fs.StringVar(&cl.Name, "cluster-name", "", "the NATS cluster name (default "+deploy.DefaultClusterName+", or the joined cluster's)")
	fs.IntVar(&cl.Replicas, "replicas", 0, fmt.Sprintf("servers that keep the cluster log (default %d, or the joined cluster's)", deploy.DefaultClusterReplicas))
}
