package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

func (m *Main) runRoleShow(ctx context.Context, args []string) error {
	fs := m.newFlagSet("role show", `
Usage: authrelay role show NAME [--json]

Shows a role's permissions (templates unexpanded) and the users holding it.

Example:

  authrelay role show svc
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneRole, "show")
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := db.Role(ctx, name)
	if err != nil {
		return roleError(err, name)
	}
	holders, err := db.RoleHolders(ctx, name)
	if err != nil {
		return roleError(err, name)
	}
	v := newRoleView(r, holders)
	if *asJSON {
		return writeJSON(m.Stdout, v)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	writePermLines(tw, v.Pub, v.Sub, v.Resp)
	fmt.Fprintf(tw, "holders:\t%s\n", listText(v.Holders))
	return tw.Flush()
}

func (m *Main) runRoleList(ctx context.Context, args []string) error {
	fs := m.newFlagSet("role list", `
Usage: authrelay role list [--json]

Lists roles with their permissions and number of holders. A long cell is
cut to 60 characters, ending in '…'; --json prints everything, and
'authrelay role show NAME' one role whole.

Examples:

  authrelay role list
  authrelay role list --json
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseNoArgs(fs, args, "role list"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	roles, err := db.Roles(ctx)
	if err != nil {
		return err
	}
	holders, err := db.AllRoleHolders(ctx)
	if err != nil {
		return err
	}
	views := make([]roleView, 0, len(roles))
	for _, r := range roles {
		h := holders[r.Name]
		if h == nil { // removed since Roles read it
			h = []string{}
		}
		views = append(views, newRoleView(r, h))
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tHOLDERS\tPUB\tSUB")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", tableCell(v.Name), len(v.Holders), tableCell(ruleText(v.Pub)), tableCell(ruleText(v.Sub)))
	}
	return tw.Flush()
}
