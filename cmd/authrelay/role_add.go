package main

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

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
	set := setFlags(fs)
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	l := deploy.Layout{Dir: *dir}
	if add {
		perms, err := pf.edit(set, clearFlags{}).New()
		if err != nil {
			return &usageError{msg: err.Error()}
		}
		if err := l.AddRole(ctx, db, m.actor(), accounts.Role{Name: name, Permissions: perms}, changedFlags(set), m.Now); err != nil {
			return roleError(err, name)
		}
		fmt.Fprintf(m.Stdout, "added role %s\n", name)
		return nil
	}
	edit := pf.edit(set, cf)
	if edit.Empty() {
		return usagef("role set: give at least one permission flag to change")
	}
	holders, err := l.SetRole(ctx, db, m.actor(), name, edit, changedFlags(set), m.Now)
	if err != nil {
		return roleError(editError(err, ""), name)
	}
	fmt.Fprintf(m.Stdout, "role %s changed; applies to the next connect of %d holder(s)\n", name, len(holders))
	m.noteLogins(ctx, db, *dir, holders...)
	return nil
}
