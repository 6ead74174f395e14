package main

import (
	"context"
	"fmt"
)

func (m *Main) runUserSetDisabled(ctx context.Context, args []string, disabled bool) error {
	verb := "enable"
	if disabled {
		verb = "disable"
	}
	fs := m.newFlagSet("user "+verb, fmt.Sprintf(`
Usage: authrelay user %[1]s NAME

%[2]s.

Example:

  authrelay user %[1]s alice
`, verb, map[bool]string{
		true:  "Refuses the user's logins until 'user enable'. It applies from the user's\nnext connect, and a running 'authrelay serve' closes the user's open\nconnections within a second",
		false: "Lets a disabled user log in again. It applies from the user's next connect",
	}[disabled]))
	dir := m.dirFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName(verb, pos)
	if err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.admin(ctx, db, "user "+verb, func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"user": name}, db.SetDisabled(ctx, name, disabled)
	}); err != nil {
		return userError(err, name, db, ctx)
	}
	fmt.Fprintf(m.Stdout, "user %s %sd\n", name, verb)
	return nil
}

func (m *Main) runUserRemove(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user rm", `
Usage: authrelay user rm NAME

Removes a user. Its next connect is refused, and a running 'authrelay
serve' closes its open connections within a second.

Example:

  authrelay user rm alice
`)
	dir := m.dirFlag(fs)
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneName, "rm")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.admin(ctx, db, "user rm", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"user": name}, db.RemoveUser(ctx, name)
	}); err != nil {
		return userError(err, name, db, ctx)
	}
	fmt.Fprintf(m.Stdout, "user %s removed\n", name)
	return nil
}
