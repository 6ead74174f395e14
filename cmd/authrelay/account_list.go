package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/authrelay/authrelay/accounts"
)

// accountView is an account as list prints it.
type accountView struct {
	accounts.Account
	Users int `json:"users"`
}

func (m *Main) runAccountList(ctx context.Context, args []string) error {
	fs := m.newFlagSet("account list", `
Usage: authrelay account list [--json]

Lists the application accounts with their limits and number of users.

Examples:

  authrelay account list
  authrelay account list --json
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseNoArgs(fs, args, "account list"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := db.AccountList(ctx)
	if err != nil {
		return err
	}
	counts, err := db.AccountUserCounts(ctx)
	if err != nil {
		return err
	}
	views := make([]accountView, 0, len(list))
	for _, a := range list {
		views = append(views, accountView{Account: a, Users: counts[a.Name]})
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUSERS\tJETSTREAM\tLIMITS")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", v.Name, v.Users, v.JetStreamText("-"), limitsText(v.Limits))
	}
	return tw.Flush()
}
