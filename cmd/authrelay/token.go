package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

const tokenUsage = `
Usage: authrelay token add --user NAME [--name LABEL] [--expires TIME]
       authrelay token list [--user NAME] [--json]
       authrelay token rm ID

API tokens for services: a client sends one as its NATS token
(nats --token …) and is the user it belongs to, with the user's account,
roles and permissions. 'token add' prints the token once, alone on its
line; the database keeps only its SHA-256, and 'token list' shows its ID
(the first 12 hex digits of that digest), never the token. Tokens start
with 'authrelay_' so that secret scanners find leaked ones.

'token rm' refuses the token's next connect, and a running 'authrelay
serve' closes the user's connections within a second (those made with
another credential reconnect with it).

Examples:

  authrelay token add --user billing-svc --name ci-deploy --expires 90d
  authrelay token list --json
  authrelay token rm 3f2a9c01d4e5
`

func (m *Main) runToken(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "token", tokenUsage, []subcommand{
		{[]string{"add"}, m.runTokenAdd},
		{[]string{"list", "ls"}, m.runTokenList},
		{[]string{"rm", "remove"}, m.runTokenRemove},
	}, args)
}

func (m *Main) runTokenAdd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("token add", tokenUsage)
	dir := m.dirFlag(fs)
	user := fs.String("user", "", "the user the token logs in as (required)")
	label := fs.String("name", "", "a label for the token, shown by 'token list'")
	expires := fs.String("expires", "never", "when the token stops working: never, a time, a date, or a duration such as 90d or 720h")
	if err := parseNoArgs(fs, args, "token add"); err != nil {
		return err
	}
	if *user == "" {
		return usagef("token add: give --user NAME, the user the token logs in as")
	}
	exp, err := accounts.ParseExpiry(*expires, m.Now())
	if err != nil {
		return &usageError{msg: "token add: " + err.Error()}
	}
	token, err := accounts.NewAPIToken()
	if err != nil {
		return err
	}
	c := accounts.StoredCredential{Kind: accounts.CredToken, Value: accounts.TokenDigest(token), User: *user, Name: *label, Expires: exp}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.admin(ctx, db, "token add", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"user": *user, "token": accounts.TokenID(c.Value), "name": *label}, db.AddCredential(ctx, c)
	}); err != nil {
		return userError(err, *user, db, ctx)
	}
	fmt.Fprintln(m.Stdout, token)
	fmt.Fprintf(m.Stderr, "token %s added for user %s: it is shown only this once\n", accounts.TokenID(c.Value), *user)
	return nil
}

// tokenView is one row of 'token list'.
type tokenView struct {
	ID      string     `json:"id"`
	User    string     `json:"user"`
	Name    string     `json:"name"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires"`
	Expired bool       `json:"expired"`
}

func (m *Main) runTokenList(ctx context.Context, args []string) error {
	fs := m.newFlagSet("token list", tokenUsage)
	dir := m.dirFlag(fs)
	user := fs.String("user", "", "only the tokens of this user")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseNoArgs(fs, args, "token list"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	list, err := db.Credentials(ctx, *user, accounts.CredToken)
	if err != nil {
		return err
	}
	views := make([]tokenView, 0, len(list))
	for _, c := range list {
		v := tokenView{ID: accounts.TokenID(c.Value), User: c.User, Name: c.Name, Created: c.Created, Expired: c.Expired(m.Now())}
		if !c.Expires.IsZero() {
			v.Expires = &c.Expires
		}
		views = append(views, v)
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tNAME\tCREATED\tEXPIRES")
	for _, v := range views {
		exp := expiresText(v.Expires)
		if v.Expired {
			exp += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.User, dash(textField(v.Name)), v.Created.Format(time.RFC3339), exp)
	}
	return tw.Flush()
}

func (m *Main) runTokenRemove(ctx context.Context, args []string) error {
	fs := m.newFlagSet("token rm", tokenUsage)
	dir := m.dirFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("token rm: give one token ID, as 'authrelay token list' shows it")
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	var c accounts.StoredCredential
	if err := m.admin(ctx, db, "token rm", func(ctx context.Context) (map[string]any, error) {
		c, err = db.RemoveCredential(ctx, accounts.CredToken, pos[0])
		return map[string]any{"user": c.User, "token": accounts.TokenID(c.Value)}, err
	}); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "token %s of user %s removed\n", accounts.TokenID(c.Value), c.User)
	return nil
}
