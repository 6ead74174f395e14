package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

const restoreUsage = `
Usage: authrelay restore FILE [--dir DIR]

Replaces DIR's user database with the backup FILE (one that 'authrelay
backup' wrote). It first checks FILE: SQLite's integrity and foreign key
checks, authrelay's tables, a schema version this authrelay can open. It
refuses while any 'authrelay serve' serves DIR: stop them first. Then it
moves the replaced database aside, with its write-ahead log (which holds
some of its writes and, left beside the restored file, would be applied to
it and corrupt it), to DIR/authrelay.db.replaced-TIME, removes the stale
shared-memory file, puts a copy of FILE in place, rewrites accounts.conf
from the restored accounts, and records the restore in the audit trail.
FILE itself is only read. Nothing is changed when a check fails.

Example:

  authrelay restore /var/backups/authrelay-2026-12-01.db --dir /var/lib/authrelay
`

func (m *Main) runRestore(ctx context.Context, args []string) error {
	fs := m.newFlagSet("restore", restoreUsage)
	dir := m.dirFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("restore: give one backup FILE to restore, got %d arguments", len(pos))
	}
	from := pos[0]
	l := deploy.Layout{Dir: *dir}
	if !l.Initialised() {
		return fmt.Errorf("restore: %s has no %s: put back the copy of %s kept apart from the backups (or run 'authrelay init --dir %s' for new keys), then restore", *dir, deploy.SecretsFile, deploy.SecretsFile, *dir)
	}
	path := l.Path(deploy.DatabaseFile)
	res, err := store.Restore(ctx, from, path, m.Now())
	if err != nil {
		return fmt.Errorf("%w; nothing was changed", err)
	}
	schema := fmt.Sprintf("schema version %d (current)", res.Schema)
	if res.Schema < res.Latest {
		schema = fmt.Sprintf("schema version %d (migrated now to %d)", res.Schema, res.Latest)
	}
	fmt.Fprintf(m.Stdout, "checked %s: integrity ok, %s, %s, %s\n", from, schema, accounts.Plural(res.Users, "user"), accounts.Plural(res.Accounts, "account"))
	for _, p := range res.Aside {
		what := "database"
		switch {
		case strings.HasSuffix(p, "-wal"):
			what = "database's write-ahead log"
		case strings.HasSuffix(p, "-journal"):
			what = "database's rollback journal"
		}
		fmt.Fprintf(m.Stdout, "moved the replaced %s aside to %s\n", what, p)
	}
	for _, p := range res.Removed {
		fmt.Fprintf(m.Stdout, "removed the stale %s\n", p)
	}
	if len(res.Aside) == 0 {
		fmt.Fprintf(m.Stdout, "there was no database to replace\n")
	}
	fmt.Fprintf(m.Stdout, "restored %s to %s\n", from, path)

	// Open the restored database as every command does (migrating an
	// older one), record the restore, and bring accounts.conf in line.
	db, err := l.OpenDatabase(ctx)
	if err != nil {
		return fmt.Errorf("restore: the restored database does not open: %w", err)
	}
	defer db.Close()
	detail, _ := json.Marshal(map[string]any{"from": from, "schema": res.Schema, "aside": res.Aside})
	if err := db.AuditAdmin(ctx, m.actor(), "database restore", string(detail)); err != nil {
		fmt.Fprintf(m.Stderr, "authrelay: the restore is not in the audit trail: %v\n", err)
	}
	before, _ := os.ReadFile(l.Path(deploy.AccountsConf))
	if err := syncAccountsConf(ctx, l, db); err != nil {
		return fmt.Errorf("restore: the database is restored, but %w: run 'authrelay account list --dir %s' and fix accounts.conf", err, *dir)
	}
	if after, err := os.ReadFile(l.Path(deploy.AccountsConf)); err == nil && !bytes.Equal(before, after) {
		fmt.Fprintf(m.Stdout, "rewrote %s from the restored accounts: apply it with 'authrelay reload --dir %s'\n", l.Path(deploy.AccountsConf), *dir)
	}
	fmt.Fprintf(m.Stdout, "next: authrelay doctor --dir %s --offline, then start serve\n", *dir)
	return nil
}
