package main

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/deploy"
)

func (m *Main) runBackup(ctx context.Context, args []string) error {
	fs := m.newFlagSet("backup", `
Usage: authrelay backup FILE [--dir DIR]

Writes a consistent copy of the user database to FILE, a new file. It is
safe while 'authrelay serve' runs and admins make changes. To restore,
stop serve and run 'authrelay restore FILE' (never copy FILE over
DIR/authrelay.db: the old write-ahead log beside it would corrupt it). Keep
the copy of secrets.json apart from it: together they are everything
authrelay knows.

Example:

  authrelay backup /var/backups/authrelay-$(date +%F).db
`)
	dir := m.dirFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("backup: give one FILE to write, got %d arguments", len(pos))
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Backup(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "backed up %s to %s\n", deploy.Layout{Dir: *dir}.Path(deploy.DatabaseFile), pos[0])
	return nil
}
