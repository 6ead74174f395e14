package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

func (m *Main) runAccountRemove(ctx context.Context, args []string) error {
	fs := m.newFlagSet("account rm", `
Usage: authrelay account rm NAME

Removes an application account. It refuses while users remain in it: move
them with 'authrelay user set NAME --account OTHER' or remove them first.
The servers reload accounts.conf, as after 'account add'.

Example:

  authrelay account rm ORDERS
`)
	dir := m.dirFlag(fs)
	var rf reloadFlags
	rf.register(fs)
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneAccount, "rm")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Account(ctx, name); err != nil {
		return accountError(err, name)
	}
	l := deploy.Layout{Dir: *dir}
	err = m.adminAccounts(ctx, l, db, "account rm", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"account": name}, db.RemoveAccount(ctx, name)
	})
	if errors.Is(err, store.ErrAccountInUse) {
		users, _ := db.AccountUsers(ctx, name)
		return fmt.Errorf("account %q still has %d user(s) (%s): move them with 'authrelay user set NAME --account OTHER' or remove them, then try again", name, len(users), strings.Join(users, ", "))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "removed account %s\n", name)
	return m.reload(ctx, m.Stdout, l, rf)
}
