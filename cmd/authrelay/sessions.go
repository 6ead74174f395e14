package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

func (m *Main) runSessions(ctx context.Context, args []string) error {
	fs := m.newFlagSet("sessions", `
Usage: authrelay sessions [NAME] [--json] [--nats URL | --context NAME]

Lists who is connected: every client connection of the user NAME (or of
every user) on every server of the deployment, as the servers report it —
user, account, client address, server, connected since and, when the
server reports the connection's JWT, when it expires. It asks the servers
as the system account's admin from secrets.json
($SYS.REQ.SERVER.PING.CONNZ).

Examples:

  authrelay sessions alice
  authrelay sessions --json | jq -r '.[] | select(.account == "APP") | .user'
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	var nf natsFlags
	nf.register(fs, "server to ask")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("sessions: give at most one NAME, got %d arguments", len(pos))
	}
	var user string
	if len(pos) == 1 {
		if user = pos[0]; accounts.ValidateName(user) != nil {
			return usagef("sessions: %q is not a username", accounts.Clip(user, 64))
		}
	}
	l := deploy.Layout{Dir: *dir}
	if !l.Initialised() {
		return deploy.NotInitialised(*dir)
	}
	url, tls, err := nf.resolve(m, &l)
	if err != nil {
		return err
	}
	nc, err := l.ConnectAdmin(url, "authrelay sessions", reloadWait, tls...)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	defer nc.Close()
	list, truncated, err := deploy.Sessions(ctx, nc, user, reloadWait)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	if truncated {
		fmt.Fprintf(m.Stderr, "authrelay: a server has more connections than it lists (%d each): give a NAME\n", 1024)
	}
	if *asJSON {
		if list == nil {
			list = []deploy.Session{}
		}
		return writeJSON(m.Stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(m.Stdout, "no connections")
		return nil
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tACCOUNT\tCLIENT\tSERVER\tCID\tCONNECTED\tJWT EXPIRES")
	for _, c := range list {
		exp := "-"
		if !c.Expires.IsZero() {
			exp = c.Expires.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", accounts.ClientText(c.User), accounts.ClientText(c.Account), accounts.ClientText(c.Client),
			accounts.ClientText(c.Server), c.ClientID, c.Start.UTC().Format(time.RFC3339), exp)
	}
	return tw.Flush()
}
