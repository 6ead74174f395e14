package natsconf

import (
	"fmt"
	"io"
	"slices"
	"strings"
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

// WriteBcryptWarning writes, once, the users of an import that keep a
// bcrypt hash (BcryptKept says why).
func (rep *Report) WriteBcryptWarning(w io.Writer, dryRun bool) {
	var names []string
	for _, n := range rep.BcryptKept() {
		names = append(names, accounts.ClientText(n))
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	verb := "keep"
	if dryRun {
		verb = "would keep"
	}
	n := len(names)
	if n > maxBcryptNames {
		names = append(names[:maxBcryptNames], fmt.Sprintf("and %d more ('authrelay user show NAME' names a user's hash scheme)", n-maxBcryptNames))
	}
	fmt.Fprintf(w, `warning: %d imported user(s) %s their bcrypt hash: %s.
bcrypt uses only the first 72 bytes of a password, and nats-server accepted a
longer password by ignoring the rest. authrelay refuses a password over 72
bytes against a bcrypt hash, so a user whose password is longer cannot log in
until it is reset: authrelay user passwd NAME --generate-password (shorter
passwords keep working, and are rehashed to argon2id at the next login).
`, n, verb, strings.Join(names, ", "))
}

// maxBcryptNames bounds the names WriteBcryptWarning lists: an import of
// thousands of users would otherwise fill the terminal with them.
const maxBcryptNames = 20
