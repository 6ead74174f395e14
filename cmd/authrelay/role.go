package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
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

func (m *Main) runRoleAddSet(ctx context.Context, args []string, add bool) error {
	verb := "set"
	usage := `
Usage: authrelay role set NAME [permission flags]

Changes a role. Each permission flag given replaces that whole list; lists
not given stay. --clear-pub and the like empty a list.

Examples:

  authrelay role set svc --sub 'svc.{{name}}.>' --sub '_INBOX.>'
  authrelay role set svc --clear-deny-pub
`
	if add {
		verb = "add"
		usage = `
Usage: authrelay role add NAME [permission flags]

Creates a role. Subjects may contain {{name}} and {{account}}.

Examples:

  authrelay role add svc --sub 'svc.{{name}}.>' --pub 'svc.{{name}}.>' --allow-responses
  authrelay role add reader --sub 'metrics.>' --deny-sub 'metrics.secret.>'
`
	}
	fs := m.newFlagSet("role "+verb, usage)
	dir := m.dirFlag(fs)
	var pf permFlags
	pf.register(fs)
	var cf clearFlags
	if !add {
		cf.register(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneRole(verb, pos)
	if err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	sizer, err := deploy.NewGrantSizer(deploy.Layout{Dir: *dir}, m.Now)
	if err != nil {
		return err
	}
	if add {
		perms, err := pf.permissions()
		if err != nil {
			return err
		}
		if err := sizer.CheckRole(ctx, db, accounts.Role{Name: name, Permissions: perms}, nil); err != nil {
			return fmt.Errorf("role add %s: %w", name, err)
		}
		detail := map[string]any{"role": name, "flags": changedFlags(setFlags(fs))}
		if err := m.admin(ctx, db, "role add", func(ctx context.Context) (map[string]any, error) {
			return detail, db.AddRole(ctx, accounts.Role{Name: name, Permissions: perms})
		}); err != nil {
			return roleError(err, name)
		}
		fmt.Fprintf(m.Stdout, "added role %s\n", name)
		return nil
	}
	set := setFlags(fs)
	if !pf.any(set) && !cf.any() {
		return usagef("role set: give at least one permission flag to change")
	}
	var holders []string
	err = m.admin(ctx, db, "role set", func(ctx context.Context) (map[string]any, error) {
		err := db.UpdateRole(ctx, name, func(r *accounts.Role) error {
			if err := pf.applyTo(&r.Permissions, set, cf); err != nil {
				return err
			}
			if err := r.Validate(); err != nil {
				return err
			}
			// Refused when it would push any holder over the server's
			// max_payload, naming the holder.
			held, err := db.RoleHolders(ctx, name)
			if err != nil {
				return err
			}
			return sizer.CheckRole(ctx, db, *r, held)
		})
		if err != nil {
			return nil, err
		}
		if holders, err = db.RoleHolders(ctx, name); err != nil {
			return nil, err
		}
		return map[string]any{"role": name, "fields": changedFlags(set), "holders": len(holders)}, nil
	})
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			return ue
		}
		return roleError(err, name)
	}
	fmt.Fprintf(m.Stdout, "role %s changed; applies to the next connect of %d holder(s)\n", name, len(holders))
	m.noteLogins(ctx, db, *dir, holders...)
	return nil
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

func (m *Main) runRoleRemove(ctx context.Context, args []string) error {
	fs := m.newFlagSet("role rm", `
Usage: authrelay role rm NAME [--force]

Removes a role. While users hold it, it refuses and names them; with
--force it removes the role from them too and says whom it changed.

Examples:

  authrelay role rm reader
  authrelay role rm reader --force
`)
	dir := m.dirFlag(fs)
	force := fs.Bool("force", false, "remove the role from every user holding it")
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneRole, "rm")
	if err != nil {
		return err
	}
	defer db.Close()
	var from []string
	err = m.admin(ctx, db, "role rm", func(ctx context.Context) (map[string]any, error) {
		var err error
		from, err = db.RemoveRole(ctx, name, *force)
		return map[string]any{"role": name, "removed_from": from}, err
	})
	if err != nil {
		return roleError(err, name)
	}
	fmt.Fprintf(m.Stdout, "removed role %s\n", name)
	if len(from) > 0 {
		fmt.Fprintf(m.Stdout, "removed it from %d user(s): %s\n", len(from), strings.Join(from, ", "))
	}
	return nil
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

func (c *clearFlags) any() bool { return c.pub || c.sub || c.denyPub || c.denySub || c.resp }

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// any reports whether any permission flag was given.
func (p *permFlags) any(set map[string]bool) bool {
	for _, n := range []string{"pub", "sub", "deny-pub", "deny-sub", "allow-responses", "resp-max", "resp-ttl"} {
		if set[n] {
			return true
		}
	}
	return false
}

// applyTo replaces the lists in perms whose flags were given, and clears
// those asked to be cleared.
func (p *permFlags) applyTo(perms *accounts.Permissions, set map[string]bool, c clearFlags) error {
	replace := []struct {
		flag, clear string
		cleared     bool
		dst         *[]string
		src         []string
	}{
		{"pub", "clear-pub", c.pub, &perms.Pub.Allow, p.pub},
		{"sub", "clear-sub", c.sub, &perms.Sub.Allow, p.sub},
		{"deny-pub", "clear-deny-pub", c.denyPub, &perms.Pub.Deny, p.denyPub},
		{"deny-sub", "clear-deny-sub", c.denySub, &perms.Sub.Deny, p.denySub},
	}
	for _, r := range replace {
		if set[r.flag] && r.cleared {
			return usagef("--%s and --%s contradict each other", r.flag, r.clear)
		}
		if set[r.flag] {
			*r.dst = append([]string(nil), r.src...)
		}
		if r.cleared {
			*r.dst = nil
		}
	}
	if c.resp && (set["allow-responses"] || set["resp-max"] || set["resp-ttl"]) {
		return usagef("--no-responses contradicts --allow-responses, --resp-max and --resp-ttl")
	}
	if c.resp {
		perms.Resp = nil
	}
	if set["allow-responses"] || set["resp-max"] || set["resp-ttl"] {
		if !p.allowResponses && perms.Resp == nil {
			return usagef("--resp-max and --resp-ttl need --allow-responses")
		}
		r := accounts.ResponsePermission{}
		if perms.Resp != nil {
			r = *perms.Resp
		}
		if set["resp-max"] {
			r.MaxMsgs = p.respMax
		}
		if set["resp-ttl"] {
			r.TTL = p.respTTL
		}
		perms.Resp = &r
	}
	if err := perms.Validate(); err != nil {
		return &usageError{msg: err.Error()}
	}
	return nil
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
