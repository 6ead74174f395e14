package main

import (
	"context"
	"errors"
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
	sizer, err := deploy.NewGrantSizer(deploy.Layout{Dir: *dir}, m.Now)
	if err != nil {
		return err
	}
	if add {
		perms, err := pf.edit(set, clearFlags{}).New()
		if err != nil {
			return &usageError{msg: err.Error()}
		}
		if err := sizer.CheckRole(ctx, db, accounts.Role{Name: name, Permissions: perms}, nil); err != nil {
			return fmt.Errorf("role add %s: %w", name, err)
		}
		detail := map[string]any{"role": name, "flags": changedFlags(set)}
		if err := m.admin(ctx, db, "role add", func(ctx context.Context) (map[string]any, error) {
			return detail, db.AddRole(ctx, accounts.Role{Name: name, Permissions: perms})
		}); err != nil {
			return roleError(err, name)
		}
		fmt.Fprintf(m.Stdout, "added role %s\n", name)
		return nil
	}
	edit := pf.edit(set, cf)
	if edit.Empty() {
		return usagef("role set: give at least one permission flag to change")
	}
	var holders []string
	err = m.admin(ctx, db, "role set", func(ctx context.Context) (map[string]any, error) {
		err := db.UpdateRole(ctx, name, func(r *accounts.Role) error {
			if err := edit.Apply(&r.Permissions); err != nil {
				return &usageError{msg: err.Error()}
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
