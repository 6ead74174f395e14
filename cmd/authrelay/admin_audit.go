package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// actor names the OS user running this command, for the audit trail: the
// account of the process's user id, else $USER from m's environment, else
// the user id.
func (m *Main) actor() string {
	current := m.CurrentUser
	if current == nil {
		current = user.Current
	}
	if u, err := current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := m.Getenv("USER"); name != "" {
		return name
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

// admin makes an admin change and writes its audit row in one transaction
// (store.DB.Admin): change makes it through db's methods with the ctx it is
// given and returns the row's detail, what changed (names and the flags
// given, never a password or hash). If the row cannot be written, the change
// is not made.
func (m *Main) admin(ctx context.Context, db *store.DB, action string, change func(ctx context.Context) (map[string]any, error)) error {
	return db.Admin(ctx, m.actor(), action, func(ctx context.Context) (string, error) {
		detail, err := change(ctx)
		if err != nil {
			return "", err
		}
		b, err := json.Marshal(detail)
		if err != nil {
			return "", fmt.Errorf("audit %s: %w", action, err)
		}
		return string(b), nil
	})
}

// adminAccounts is admin for a change to the accounts, which also rewrites
// accounts.conf from the database as the change leaves it, before the
// transaction commits: if the file cannot be written nothing changes, and
// if the commit fails the file is rewritten from the database again.
func (m *Main) adminAccounts(ctx context.Context, l deploy.Layout, db *store.DB, action string, change func(ctx context.Context) (map[string]any, error)) error {
	// A hand edit of accounts.conf is refused before anything changes,
	// not erased by the rewrite.
	before, err := db.AccountList(ctx)
	if err != nil {
		return err
	}
	if err := l.CheckAccountsConf(before); err != nil {
		return err
	}
	synced := false
	err = m.admin(ctx, db, action, func(ctx context.Context) (map[string]any, error) {
		detail, err := change(ctx)
		if err != nil {
			return nil, err
		}
		if err := syncAccountsConf(ctx, l, db); err != nil {
			return nil, err
		}
		synced = true
		return detail, nil
	})
	if err != nil && synced {
		if rerr := syncAccountsConf(ctx, l, db); rerr != nil {
			return errors.Join(err, fmt.Errorf("rewrite %s from the database: %w", deploy.AccountsConf, rerr))
		}
	}
	return err
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
