package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

const roleUsage = `
Usage: authrelay role <subcommand> [flags] [NAME]

Subcommands:

  add NAME    create a role
  set NAME    change a role's permissions (each given flag replaces that list)
  show NAME   show a role and who holds it
  list        list roles
  rm NAME     remove a role (refuses while users hold it, unless --force)

A role is a named set of permissions; users hold roles with 'user add|set
--role'. A user's permissions are the union of its roles' and its own; a
deny always wins. Subjects may contain {{name}} and {{account}}, expanded
per user when the relay issues the JWT. A change to a role applies to every
holder's next connect.

Examples:

  authrelay role add svc --sub 'svc.{{name}}.>' --pub 'svc.{{name}}.>' --allow-responses
  authrelay role add reader --sub 'metrics.>' --deny-sub 'metrics.secret.>'
  authrelay role set reader --sub 'metrics.>' --sub 'logs.>'
  authrelay user set bob --role svc --role reader
`

func (m *Main) runRole(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "role", roleUsage, []subcommand{
		{[]string{"add"}, func(ctx context.Context, args []string) error { return m.runRoleAddSet(ctx, args, true) }},
		{[]string{"set"}, func(ctx context.Context, args []string) error { return m.runRoleAddSet(ctx, args, false) }},
		{[]string{"show"}, m.runRoleShow},
		{[]string{"list", "ls"}, m.runRoleList},
		{[]string{"rm", "remove"}, m.runRoleRemove},
	}, args)
}

// oneRole returns the single NAME argument of a role subcommand.
func oneRole(cmd string, pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("role %s: give the role's NAME", cmd)
	case 1:
		if err := accounts.ValidateRoleName(pos[0]); err != nil {
			return "", &usageError{msg: err.Error()}
		}
		return pos[0], nil
	default:
		return "", usagef("role %s: give one NAME, got %q", cmd, pos)
	}
}

// roleError turns store errors about roles into messages that say what to do.
func roleError(err error, name string) error {
	var inUse *store.RoleInUseError
	switch {
	case errors.As(err, &inUse):
		return fmt.Errorf("role %q is held by %s: remove it from them with 'authrelay user set NAME --role ...', or pass --force to remove it from all of them", name, strings.Join(inUse.Users, ", "))
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("role %q not found: see 'authrelay role list'", name)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("role %q already exists: change it with 'authrelay role set %s'", name, name)
	}
	return err
}

// roleView is a role as show and list print it.
type roleView struct {
	Name    string                       `json:"name"`
	Pub     accounts.Rule                `json:"pub"`
	Sub     accounts.Rule                `json:"sub"`
	Resp    *accounts.ResponsePermission `json:"resp"`
	Holders []string                     `json:"holders"`
}

func newRoleView(r accounts.Role, holders []string) roleView {
	if holders == nil {
		holders = []string{}
	}
	return roleView{
		Name:    r.Name,
		Pub:     nonNilRule(r.Permissions.Pub),
		Sub:     nonNilRule(r.Permissions.Sub),
		Resp:    r.Permissions.Resp,
		Holders: holders,
	}
}

// clearFlags empty a permission list on set commands.
type clearFlags struct {
	pub, sub, denyPub, denySub, resp bool
}

func (c *clearFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.pub, "clear-pub", false, "remove all publish allows (a direction with no allow, own or from a role, permits nothing)")
	fs.BoolVar(&c.sub, "clear-sub", false, "remove all subscribe allows (a direction with no allow, own or from a role, permits nothing)")
	fs.BoolVar(&c.denyPub, "clear-deny-pub", false, "remove all publish denies")
	fs.BoolVar(&c.denySub, "clear-deny-sub", false, "remove all subscribe denies")
	fs.BoolVar(&c.resp, "no-responses", false, "remove the response permission")
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// writePermLines prints permissions as name: value lines.
func writePermLines(tw *tabwriter.Writer, pub, sub accounts.Rule, resp *accounts.ResponsePermission) {
	fmt.Fprintf(tw, "publish allow:\t%s\n", listText(pub.Allow))
	fmt.Fprintf(tw, "publish deny:\t%s\n", listText(pub.Deny))
	fmt.Fprintf(tw, "subscribe allow:\t%s\n", listText(sub.Allow))
	fmt.Fprintf(tw, "subscribe deny:\t%s\n", listText(sub.Deny))
	if resp != nil {
		fmt.Fprintf(tw, "responses:\tallowed (max %d, ttl %v; 0 = server default)\n", resp.MaxMsgs, resp.TTL)
	} else {
		fmt.Fprintf(tw, "responses:\tnot allowed beyond publish permissions\n")
	}
}
