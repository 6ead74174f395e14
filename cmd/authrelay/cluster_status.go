package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/node"
)

func (m *Main) runClusterStatus(ctx context.Context, args []string) error {
	fs := m.newFlagSet("cluster status", `
Usage: authrelay cluster status [--json]

Shows the cluster log's last entry, this directory's copy's position, and,
for each relay that reports (every second, into the AUTHRELAY_NODES bucket
of the AUTH account), how many entries its copy is behind and how old its
last report is: a relay that stopped reporting shows an old report.

Examples:

  authrelay cluster status --dir n1
  authrelay cluster status --dir n1 --json
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
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(m.Stdout, st)
	}
	fmt.Fprintf(m.Stdout, "cluster log %s: last entry %d; this copy (%s) has applied %d\n", st.Stream, st.Last, l.Dir, st.Applied)
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tAPPLIED\tBEHIND\tREPORTED")
	for _, r := range st.Relays {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1fs ago\n", accounts.ClientText(r.Server), r.Applied, r.Behind, r.AgeSeconds)
	}
	return tw.Flush()
}

const clusterUsage = `
Usage: authrelay cluster <subcommand> [flags]

Subcommands:

  status      the cluster log's end and how far each relay's copy is behind

See the README's Clusters section.
`

func (m *Main) runCluster(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "cluster", clusterUsage, []subcommand{
		{[]string{"status"}, m.runClusterStatus},
	}, args)
}
