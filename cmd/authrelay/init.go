package main

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/deploy"
)

const initUsage = `
Usage: authrelay init [--dir DIR] [--account NAME]... [--listen HOST:PORT]

Creates an authrelay directory: the SQLite user database, secrets.json
(mode 0600: the issuer and xkey seeds, the relay's NATS password and the
system account's admin password) and nats.conf, a complete config that a
stock nats-server runs unedited, with accounts.conf for the application
accounts. init never overwrites an existing directory's keys.

Examples:

  authrelay init --dir ./data
  authrelay init --dir /var/lib/authrelay --account ORDERS --account BILLING --listen 0.0.0.0:4222
`

func (m *Main) runInit(ctx context.Context, args []string) error {
	fs := m.newFlagSet("init", initUsage)
	dir := m.dirFlag(fs)
	var accts stringList
	fs.Var(&accts, "account", "application account to create (repeatable; default APP)")
	listen := fs.String("listen", deploy.DefaultListen, "client listen address written into nats.conf")
	if err := parseNoArgs(fs, args, "init"); err != nil {
		return err
	}
	if len(accts) == 0 {
		accts = stringList{"APP"}
	}
	l := deploy.Layout{Dir: *dir}
	if err := deploy.Init(ctx, l, deploy.InitOptions{Accounts: accts, Listen: *listen, BcryptCost: m.bcryptCost()}); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "initialised %s\n", *dir)
	fmt.Fprintf(m.Stdout, "  %-14s users (SQLite)\n", deploy.DatabaseFile)
	fmt.Fprintf(m.Stdout, "  %-14s seeds and passwords (mode 0600: keep it secret)\n", deploy.SecretsFile)
	fmt.Fprintf(m.Stdout, "  %-14s server config: nats-server -c %s\n", deploy.ServerConf, l.Path(deploy.ServerConf))
	fmt.Fprintf(m.Stdout, "  %-14s application accounts: %v\n", deploy.AccountsConf, []string(accts))
	fmt.Fprintf(m.Stdout, "next: authrelay serve --dir %s --nats nats://%s\n", *dir, *listen)
	return nil
}
