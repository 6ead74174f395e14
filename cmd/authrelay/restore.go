package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
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
	res, err := l.Restore(ctx, from, m.Now(), m.actor())
	if !res.Replaced {
		return err
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
	fmt.Fprintf(m.Stdout, "restored %s to %s\n", from, l.Path(deploy.DatabaseFile))
	if res.AuditErr != nil {
		fmt.Fprintf(m.Stderr, "authrelay: the restore is not in the audit trail: %v\n", res.AuditErr)
	}
	if err != nil {
		return err
	}
	if res.AccountsConfChanged {
		fmt.Fprintf(m.Stdout, "rewrote %s from the restored accounts: apply it with 'authrelay reload --dir %s'\n", l.Path(deploy.AccountsConf), *dir)
	}
	fmt.Fprintf(m.Stdout, "next: authrelay doctor --dir %s --offline, then start serve\n", *dir)
	return nil
}
