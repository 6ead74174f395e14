package main

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/deploy"
)

const initUsage = `
Usage: authrelay init [--dir DIR] [--operator [--nsc KEYDIR]] [--account NAME]... [--listen HOST:PORT]
                      [--tls-cert FILE --tls-key FILE] [--nats-context NAME]
                      [--server-name NAME] [--mqtt-listen HOST:PORT]
                      [--cluster-listen HOST:PORT --routes URL,URL,... [--join FILE]
                       [--cluster-name NAME] [--replicas N]]

Creates an authrelay directory: the SQLite user database, secrets.json
(mode 0600: the issuer and xkey seeds, the relay's NATS password and the
system account's admin password) and nats.conf, a complete config that a
stock nats-server runs unedited, with accounts.conf for the application
accounts. init never overwrites an existing directory's keys.

--tls-cert and --tls-key write nats.conf's tls block, so that the server
takes TLS clients only; authrelay's own connections then take the CA with
--tlsca (serve, doctor, reload, the account commands).

nats.conf names the server (--server-name; default the host's name and the
client port, such as web-1-4222: every server of a cluster needs its own) and
enables JetStream with its store in DIR/jetstream, for the accounts given
--jetstream ('authrelay account add|set'). --mqtt-listen adds an mqtt block:
MQTT clients log in through the relay and need an account with JetStream.

--operator makes an operator (decentralized JWT) deployment instead: an
operator, the system account, the callout account AUTH and the application
accounts as JWTs in DIR/jwt (seeds in secrets.json), and a nats.conf whose
default_sentinel sends username/password logins through the relay. With
--nsc KEYDIR the operator and its accounts are nsc's: init takes the keys a
relay needs from an nsc key export (README, "An operator managed with nsc").

--nats-context NAME also saves a nats CLI context for the system account's
admin (~/.config/nats/context/NAME.json, mode 0600, with the admin's
password), so that 'nats --context NAME server list' works; it refuses to
replace an existing context.

--cluster-listen and --routes (every node, this one included) make a
cluster node: cluster.json, and cluster.conf (mode 0600, the cluster block
with the route credentials). The other nodes --join FIRST/secrets.json
(copied to their hosts, mode 0600): same keys, no state of their own.

Examples:

  authrelay init --dir ./data --nats-context authrelay-admin
  authrelay init --dir /var/lib/authrelay --account ORDERS --account BILLING --listen 0.0.0.0:4222
  authrelay init --dir n2 --join n1/secrets.json --listen 127.0.0.1:4223 --cluster-listen 127.0.0.1:6223 --routes URL,URL,URL
`

func (m *Main) runInit(ctx context.Context, args []string) error {
	fs := m.newFlagSet("init", initUsage)
	dir := m.dirFlag(fs)
	var accts stringList
	fs.Var(&accts, "account", "application account to create (repeatable; default APP)")
	listen := fs.String("listen", deploy.DefaultListen, "client listen address written into nats.conf")
	natsContext := fs.String("nats-context", "", "also save a nats CLI context of this name for the system admin")
	tlsCert := fs.String("tls-cert", "", "the server's TLS certificate (PEM), for a tls block in nats.conf")
	tlsKey := fs.String("tls-key", "", "the private key (PEM) of --tls-cert")
	clientCA := fs.String("tls-client-ca", "", "with --tls-cert: require of every client a certificate of this CA (tls verify), which certificate logins need")
	var cl deploy.ClusterOptions
	clusterFlags(fs, &cl)
	fs.StringVar(&cl.Join, "join", "", "the first node's secrets.json: join its cluster with its keys")
	serverName := fs.String("server-name", "", "nats.conf's server_name (default HOSTNAME-PORT)")
	mqttListen := fs.String("mqtt-listen", "", "MQTT listen address (HOST:PORT) for an mqtt block in nats.conf")
	operator := fs.Bool("operator", false, "operator (decentralized JWT) mode: account JWTs and a resolver instead of accounts in nats.conf")
	nsc := fs.String("nsc", "", "with --operator: an nsc key export directory of an operator nsc manages")
	if err := parseNoArgs(fs, args, "init"); err != nil {
		return err
	}
	var ctxPath string
	if *natsContext != "" {
		var err error
		// Checked before init writes anything.
		if ctxPath, err = deploy.NewNATSContextPath(*natsContext, m.Getenv); err != nil {
			return err
		}
	}
	if len(accts) == 0 && cl.Join == "" && *nsc == "" {
		accts = stringList{"APP"}
	}
	l := deploy.Layout{Dir: *dir}
	if err := deploy.Init(ctx, l, deploy.InitOptions{Accounts: accts, Listen: *listen, BcryptCost: m.bcryptCost(),
		TLS: deploy.TLSFiles{Cert: *tlsCert, Key: *tlsKey, ClientCA: *clientCA}, ServerName: *serverName, MQTTListen: *mqttListen, Cluster: cl, Operator: *operator,
		Nsc: *nsc, Notes: func(n string) { fmt.Fprintf(m.Stdout, "%s\n", n) }}); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "initialised %s\n", *dir)
	fmt.Fprintf(m.Stdout, "  %-14s users (SQLite)\n", deploy.DatabaseFile)
	fmt.Fprintf(m.Stdout, "  %-14s seeds and passwords (mode 0600: keep it secret)\n", deploy.SecretsFile)
	fmt.Fprintf(m.Stdout, "  %-14s server config: nats-server -c %s\n", deploy.ServerConf, l.Path(deploy.ServerConf))
	if *nsc == "" {
		fmt.Fprintf(m.Stdout, "  %-14s application accounts: %v\n", l.AccountsFile(), []string(accts))
	}
	if c, ok, err := l.Cluster(); err != nil {
		return err
	} else if ok {
		fmt.Fprintf(m.Stdout, "  %-14s cluster %q, routes on %s (%s: the cluster block, mode 0600)\n", deploy.ClusterFile, c.Name, cl.Listen, deploy.ClusterConf)
	}
	if ctxPath != "" {
		if err := l.SaveAdminContext(ctxPath); err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "  nats CLI as the system admin: nats --context %s server list (%s)\n", *natsContext, ctxPath)
	}
	fmt.Fprintf(m.Stdout, "next: authrelay serve --dir %s --nats nats://%s\n", *dir, *listen)
	return nil
}
