package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// userView is a user as list and show print it: never a hash.
type userView struct {
	Name       string                       `json:"name"`
	Account    string                       `json:"account"`
	Disabled   bool                         `json:"disabled"`
	Expires    *time.Time                   `json:"expires"`
	Pub        accounts.Rule                `json:"pub"`
	Sub        accounts.Rule                `json:"sub"`
	Resp       *accounts.ResponsePermission `json:"resp"`
	Roles      []string                     `json:"roles"`
	Src        []string                     `json:"src"`
	ConnTypes  []string                     `json:"conn_types"`
	HashScheme string                       `json:"hash_scheme,omitempty"`
	// HashCurrent tells whether the hash follows the current policy.
	HashCurrent *bool     `json:"hash_current,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	// Effective is the grant with the roles merged, in user list.
	Effective *effectiveView `json:"effective,omitempty"`
	// Credentials are what the user may log in with, in user show.
	Credentials *accounts.CredentialSummary `json:"credentials,omitempty"`
}

func newUserView(u accounts.User) userView {
	v := userView{
		Name:      u.Name,
		Account:   u.Account,
		Disabled:  u.Disabled,
		Pub:       nonNilRule(u.Permissions.Pub),
		Sub:       nonNilRule(u.Permissions.Sub),
		Resp:      u.Permissions.Resp,
		Roles:     nonNil(u.Roles),
		Src:       nonNil(u.Src),
		ConnTypes: nonNil(u.ConnTypes),
		Created:   u.Created,
		Updated:   u.Updated,
	}
	if !u.Expires.IsZero() {
		e := u.Expires
		v.Expires = &e
	}
	return v
}

func (m *Main) runUserList(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user list", `
Usage: authrelay user list [--json]

Lists users: name, account, status, expiry, roles and the effective
permissions: the user's own rules merged with those of its roles, templates
expanded, as the relay issues them. --json has the user's own rules as pub
and sub, and the merged ones under effective. Never hashes.
A long cell is cut to 60 characters, ending in '…'; --json prints
everything, and 'authrelay user show NAME' one user whole.

Examples:

  authrelay user list
  authrelay user list --json | jq -r '.[].name'
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseNoArgs(fs, args, "user list"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	users, err := db.Users(ctx)
	if err != nil {
		return err
	}
	// One query for every role, not one per user.
	all, err := db.Roles(ctx)
	if err != nil {
		return err
	}
	byName := make(map[string]accounts.Role, len(all))
	for _, r := range all {
		byName[r.Name] = r
	}
	views := make([]userView, 0, len(users))
	for _, u := range users {
		v := newUserView(u)
		var roles []accounts.Role
		for _, name := range u.Roles {
			if r, ok := byName[name]; ok {
				roles = append(roles, r)
			}
		}
		v.Effective = newEffectiveView(u, roles)
		views = append(views, v)
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tACCOUNT\tSTATUS\tEXPIRES\tROLES\tPUB\tSUB")
	for _, v := range views {
		pub, sub := "- (no JWT: "+v.Effective.Error+")", "-"
		if v.Effective.Error == "" {
			pub, sub = ruleText(v.Effective.Pub), ruleText(v.Effective.Sub)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tableCell(v.Name), v.Account, status(v), expiresText(v.Expires), tableCell(listText(v.Roles)), tableCell(pub), tableCell(sub))
	}
	return tw.Flush()
}

// effectiveView is what a user is granted once its roles are merged with
// its own rules and templates expanded, as the relay issues it (Error when
// the relay would issue nothing, such as a template the name cannot fill).
type effectiveView struct {
	Pub   accounts.Rule                `json:"pub"`
	Sub   accounts.Rule                `json:"sub"`
	Resp  *accounts.ResponsePermission `json:"resp"`
	Error string                       `json:"error,omitempty"`
}

func newEffectiveView(u accounts.User, roles []accounts.Role) *effectiveView {
	g, err := accounts.Resolve(u, roles)
	if err != nil {
		return &effectiveView{Pub: nonNilRule(accounts.Rule{}), Sub: nonNilRule(accounts.Rule{}), Error: err.Error()}
	}
	p := g.Permissions
	return &effectiveView{Pub: nonNilRule(p.Pub), Sub: nonNilRule(p.Sub), Resp: p.Resp}
}

func (m *Main) runUserShow(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user show", `
Usage: authrelay user show NAME [--json]

Shows one user as stored: account, status, expiry, roles, its own
permissions, constraints, what it may log in with (password, nkeys,
certificate bindings, the number of API tokens, its identity provider) and
the password hash scheme (never the hash, a token or a seed).
'authrelay user explain' shows the merged permissions the relay issues.

Examples:

  authrelay user show alice
  authrelay user show alice --json
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneName, "show")
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.User(ctx, name)
	if err != nil {
		return userError(err, name, db, ctx)
	}
	v := newUserView(u)
	scheme, current, err := db.HashInfo(ctx, name)
	if err != nil {
		return userError(err, name, db, ctx)
	}
	v.HashScheme, v.HashCurrent = scheme, &current
	creds, err := db.CredentialSummary(ctx, name)
	if err != nil {
		return userError(err, name, db, ctx)
	}
	v.Credentials = &creds
	if *asJSON {
		return writeJSON(m.Stdout, v)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "account:\t%s\n", v.Account)
	fmt.Fprintf(tw, "status:\t%s\n", status(v))
	fmt.Fprintf(tw, "expires:\t%s\n", expiresText(v.Expires))
	fmt.Fprintf(tw, "roles:\t%s\n", listText(v.Roles))
	writePermLines(tw, v.Pub, v.Sub, v.Resp)
	fmt.Fprintf(tw, "source networks:\t%s\n", orAny(v.Src))
	fmt.Fprintf(tw, "connection types:\t%s\n", orAny(v.ConnTypes))
	fmt.Fprintf(tw, "credentials:\t%s\n", creds)
	switch {
	case !creds.Password:
		fmt.Fprintf(tw, "password hash:\tnone ('user passwd' sets a password)\n")
	case current:
		fmt.Fprintf(tw, "password hash:\t%s (current policy)\n", v.HashScheme)
	default:
		fmt.Fprintf(tw, "password hash:\t%s (rehashed to the current policy at the next login)\n", v.HashScheme)
	}
	fmt.Fprintf(tw, "created:\t%s\n", v.Created.Format(time.RFC3339))
	fmt.Fprintf(tw, "updated:\t%s\n", v.Updated.Format(time.RFC3339))
	return tw.Flush()
}
