package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/idp"
	"github.com/authrelay/authrelay/store"
)

const idpUsage = `
Usage: authrelay idp add NAME --issuer URL --audience AUD [--account ACCOUNT]
                         [--username-claim CLAIM] [--roles-claim CLAIM --role-map VALUE=ROLE ...]
                         [--create-users]
       authrelay idp list [--json]
       authrelay idp show NAME [--json]
       authrelay idp rm NAME

OpenID Connect / OAuth2 identity providers: a client logs in with one's
token (an ID token or a JWT access token) as its NATS token, or as its
username's password, until the token expires. The username is the token's
--username-claim (default sub; pick one users cannot change). Bind users
with 'user add NAME --idp PROVIDER', or let --create-users create them on
first login. 'idp rm' closes its users' connections. See the README.

Examples:

  authrelay idp add corp --issuer https://login.example.com --audience nats
  authrelay idp add okta --issuer https://acme.okta.com/oauth2/default --audience api://nats \
      --roles-claim groups --role-map nats-admins=admin --create-users --account APP
  authrelay idp list --json
`

func (m *Main) runIdp(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "idp", idpUsage, []subcommand{
		{[]string{"add"}, m.runIdpAdd},
		{[]string{"list", "ls"}, func(ctx context.Context, args []string) error { return m.runIdpShow(ctx, args, false) }},
		{[]string{"show"}, func(ctx context.Context, args []string) error { return m.runIdpShow(ctx, args, true) }},
		{[]string{"rm", "remove"}, m.runIdpRemove},
	}, args)
}

func (m *Main) runIdpAdd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("idp add", idpUsage)
	dir := m.dirFlag(fs)
	var p accounts.IdentityProvider
	fs.StringVar(&p.Issuer, "issuer", "", "the issuer URL, exactly as the tokens' iss claim has it (https, or http to a loopback host) (required)")
	fs.StringVar(&p.Audience, "audience", "", "what a token's aud claim must hold: the client id or API identifier (required)")
	fs.StringVar(&p.Account, "account", "", "the account users created on first login go to (required with --create-users)")
	fs.StringVar(&p.UsernameClaim, "username-claim", idp.DefaultClaim, "the claim that is the username: sub, email (verified only), or another claim users cannot change")
	fs.StringVar(&p.RolesClaim, "roles-claim", "", "the claim holding the user's groups or roles at the provider, for --role-map")
	var roleMap stringList
	fs.Var(&roleMap, "role-map", "VALUE=ROLE: a user created on first login whose roles claim holds VALUE gets ROLE; repeatable")
	fs.BoolVar(&p.CreateUsers, "create-users", false, "create the user of an unknown name on its first login, in --account")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("idp add: give one NAME, the provider's name, got %d arguments", len(pos))
	}
	p.Name = pos[0]
	if p.RoleMap, err = idp.ParseRoleMap(roleMap); err == nil {
		err = idp.FromStored(p).Validate()
	}
	if err != nil {
		return &usageError{msg: "idp add: " + err.Error()}
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.admin(ctx, db, "idp add", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"idp": p.Name, "issuer": p.Issuer, "flags": changedFlags(setFlags(fs))}, db.AddIdentityProvider(ctx, p)
	}); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "added identity provider %s (%s)\n", p.Name, p.Issuer)
	fmt.Fprintf(m.Stderr, "check it is reachable with 'authrelay doctor'; bind users with 'authrelay user add NAME --idp %s'\n", p.Name)
	return nil
}

// runIdpShow is 'idp list' and, with one, 'idp show NAME': a table, or
// JSON (an array; an object for show).
func (m *Main) runIdpShow(ctx context.Context, args []string, one bool) error {
	cmd := map[bool]string{false: "idp list", true: "idp show"}[one]
	fs := m.newFlagSet(cmd, idpUsage)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, map[bool]string{false: "print a JSON array", true: "print a JSON object"}[one])
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if one != (len(pos) == 1) || len(pos) > 1 {
		return usagef("%s: give %s", cmd, map[bool]string{false: "no arguments", true: "one NAME, as 'authrelay idp list' shows it"}[one])
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	list := []accounts.IdentityProvider{}
	if one {
		p, err := db.IdentityProvider(ctx, pos[0])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("identity provider %q not found: see 'authrelay idp list'", pos[0])
		} else if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(m.Stdout, p)
		}
		list = append(list, p)
	} else if list, err = db.IdentityProviders(ctx); err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(m.Stdout, append([]accounts.IdentityProvider{}, list...))
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tISSUER\tAUDIENCE\tUSERNAME CLAIM\tACCOUNT\tCREATE USERS\tUSERS\tCREATED")
	for _, v := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%d\t%s\n", v.Name, textField(v.Issuer), textField(v.Audience), textField(v.UsernameClaim),
			dash(v.Account), v.CreateUsers, len(v.Users), v.Created.Format(time.RFC3339))
	}
	return tw.Flush()
}

func (m *Main) runIdpRemove(ctx context.Context, args []string) error {
	fs := m.newFlagSet("idp rm", idpUsage)
	dir := m.dirFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("idp rm: give one NAME, as 'authrelay idp list' shows it")
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	var users []string
	if err := m.admin(ctx, db, "idp rm", func(ctx context.Context) (map[string]any, error) {
		users, err = db.RemoveIdentityProvider(ctx, pos[0])
		return map[string]any{"idp": pos[0], "users": len(users)}, err
	}); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("identity provider %q not found: see 'authrelay idp list'", pos[0])
	} else if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "identity provider %s removed; its %d user(s) can no longer log in with its tokens\n", pos[0], len(users))
	return nil
}
