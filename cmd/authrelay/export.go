package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

func (m *Main) runExport(ctx context.Context, args []string) error {
	fs := m.newFlagSet("export", `
Usage: authrelay export [--json] [--with-hashes]

Prints every account, role and user. Password hashes are left out unless
--with-hashes is given; even then, no plain password exists to print.

Examples:

  authrelay export
  authrelay export --json > authrelay-export.json
  authrelay export --json --with-hashes | gpg -e -r ops > users.json.gpg
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object")
	withHashes := fs.Bool("with-hashes", false, "include each user's password hash (PHC/MCF string); treat the output as a secret")
	if err := parseNoArgs(fs, args, "export"); err != nil {
		return err
	}
	if *withHashes && !*asJSON {
		return usagef("--with-hashes needs --json")
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	doc, err := db.Export(ctx, *withHashes)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(m.Stdout, doc)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tUSERS\tLIMITS")
	for _, a := range doc.Accounts {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", a.Name, a.Users, limitsText(a.Limits))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "ROLE\tHOLDERS\tPUB\tSUB")
	for _, r := range doc.Roles {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Name, len(r.Holders), ruleText(r.Pub), ruleText(r.Sub))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "USER\tACCOUNT\tSTATUS\tEXPIRES\tROLES\tPUB\tSUB\tSRC\tCONN")
	for _, u := range doc.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Account, status(userView{Disabled: u.Disabled}), expiresText(u.Expires),
			listText(u.Roles), ruleText(u.Pub), ruleText(u.Sub), orAny(u.Src), orAny(u.ConnTypes))
	}
	return tw.Flush()
}
