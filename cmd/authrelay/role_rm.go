package main

import (
	"context"
	"fmt"
	"strings"
)

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
