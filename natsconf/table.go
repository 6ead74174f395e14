package natsconf

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/authrelay/authrelay/accounts"
)

// WriteTable writes r as import prints it: a table of the accounts, one of
// the users, and a summary line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Accounts) > 0 {
		fmt.Fprintln(tw, "ACCOUNT\tACTION\tDETAIL")
		for _, a := range r.Accounts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.Action, dash(a.Detail))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "USER\tACCOUNT\tACTION\tDETAIL")
	for _, u := range r.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, dash(u.Account), u.Action, dash(u.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := r.Summary
	skipped := ""
	if s.UsersSkipped > 0 {
		skipped = fmt.Sprintf("; %d not imported (see above)", s.UsersSkipped)
	}
	if s.DryRun {
		_, err := fmt.Fprintf(w, "dry run, nothing changed: would import %s and create %s; %s already exist%s\n",
			accounts.Plural(s.UsersImported, "user"), accounts.Plural(s.AccountsCreated, "account"), accounts.Plural(s.UsersExisting, "user"), skipped)
		return err
	}
	failed := ""
	if s.UsersFailed > 0 {
		failed = fmt.Sprintf("; %d failed or not attempted", s.UsersFailed)
	}
	_, err := fmt.Fprintf(w, "imported %s, %s created; %s already existed%s%s\n",
		accounts.Plural(s.UsersImported, "user"), accounts.Plural(s.AccountsCreated, "account"), accounts.Plural(s.UsersExisting, "user"), skipped, failed)
	return err
}

// dash is s, or "-" when s is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
