package main

import (
	"context"
	"slices"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// actor names the OS user running this command, for the audit trail: the
// account of the process's user id, else $USER from m's environment, else
// the user id.
func (m *Main) actor() string { return deploy.Actor(m.CurrentUser, m.Getenv) }

// admin makes an admin change and writes its audit row in one transaction
// (store.DB.Admin): change makes it through db's methods with the ctx it is
// given and returns the row's detail, what changed (names and the flags
// given, never a password or hash). If the row cannot be written, the change
// is not made.
func (m *Main) admin(ctx context.Context, db *store.DB, action string, change deploy.Change) error {
	return deploy.Admin(ctx, db, m.actor(), action, change)
}

// adminAccounts is admin for a change to the accounts, which also rewrites
// accounts.conf (deploy.Layout.AdminAccounts).
func (m *Main) adminAccounts(ctx context.Context, l deploy.Layout, db *store.DB, action string, change deploy.Change) error {
	return l.AdminAccounts(ctx, db, m.actor(), action, change)
}

// changedFlags lists the flags given on the command line, minus --dir, for
// the audit trail: what was changed, not the values.
func changedFlags(set map[string]bool) []string {
	var out []string
	for name := range set {
		if name != "dir" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
