package main

import (
	"context"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/node"
)

func (m *Main) runClusterStatus(ctx context.Context, args []string) error {
	fs := m.newFlagSet("cluster status", `
Usage: authrelay cluster status [--json] [--nats URL]

The cluster log's last entry, this directory's copy's position, and for
each relay (reporting every second) how far behind it is and how old its
report is: a relay that stopped reporting shows an old report.
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	var nf natsFlags
	nf.register(fs, "this node's server")
	if err := parseNoArgs(fs, args, "cluster status"); err != nil {
		return err
	}
	l := deploy.Layout{Dir: *dir}
	url, opts, err := nf.resolve(m, &l)
	if err != nil {
		return err
	}
	st, err := node.Status(ctx, l, url, opts, m.Now())
	switch {
	case err != nil:
		return err
	case *asJSON:
		return writeJSON(m.Stdout, st)
	}
	return st.WriteText(m.Stdout, l.Dir)
}
