package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/natsconf"
)

const importUsage = `
Usage: authrelay import FILE [--dir DIR] [--account NAME] [--dry-run] [--json]

Brings the users of an existing nats.conf into authrelay, so that clients
keep their names, passwords and permissions when the server moves to
authrelay. FILE is read with nats-server's own parser (include files and
variables work) and is never changed.

  authorization { users: [...] }, or its single user/password, go into
      --account (default: the only application account of DIR, not
      counting accounts that FILE defines)
  accounts { NAME { users: [...] } } go into NAME, which is created if
      authrelay does not know it (reload the server afterwards)

bcrypt passwords ($2a$, $2b$, $2y$) are kept as they are, so they keep
working; plain-text passwords are stored hashed. Permissions carry over:
publish and subscribe (a subject, a list, or allow/deny), allow_responses
and allowed_connection_types. Where nats-server grants every subject
because the file allows none in a direction (no permissions, no rule for
the direction, or only denies), the user gets an explicit '>' for it, its
denies kept: authrelay grants nothing that no rule allows. Publish next to
allow_responses stays closed but for the replies, as in nats-server.

Not imported, each listed with the reason: users of the system account and
of AUTH (they stay static in nats.conf), nkey users, tokens, users without a
password, users that default_permissions would apply to, and every user with
a setting import does not understand: importing it without that setting
could give it more access than it had. Users and accounts that already exist
are reported as "exists" and left unchanged, so running import again is safe.
The report never shows a password or hash.

Exit status: 0 when the import ran, even if some users were not imported
(see the table); 1 if FILE cannot be read or parsed, or the database fails
(users added before the failure stay: fix the cause and run import again);
2 for a usage error.

Examples:

  authrelay import /etc/nats/nats.conf --dry-run
  authrelay import /etc/nats/nats.conf --account APP
  authrelay import nats.conf --json | jq -r '.users[] | select(.action == "skip") | .name + ": " + .detail'
`

func (m *Main) runImport(ctx context.Context, args []string) error {
	fs := m.newFlagSet("import", importUsage)
	dir := m.dirFlag(fs)
	account := fs.String("account", "", "account for the users of FILE's authorization block (default: the only application account of DIR that FILE does not define)")
	dryRun := fs.Bool("dry-run", false, "print what would change, and change nothing")
	asJSON := fs.Bool("json", false, "print a JSON object instead of a table")
	var rf reloadFlags
	rf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("import: give one FILE, the nats.conf to import from, got %d arguments", len(pos))
	}
	l := deploy.Layout{Dir: *dir}
	if *account != "" {
		if err := accounts.ValidateAccount(*account); err != nil {
			return &usageError{msg: "--account: " + err.Error()}
		}
		if err := l.CheckAccountNotReserved(*account); err != nil {
			return err
		}
	}

	// Read FILE before touching DIR: a file that cannot be read changes
	// nothing.
	nc, err := natsconf.Read(pos[0])
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	snap, err := l.ImportSnapshot(ctx, db, m.Now)
	if err != nil {
		return err
	}
	rep, err := natsconf.Plan(nc, snap, *account)
	if err != nil {
		return importAccountError(err)
	}
	rep.Summary.DryRun = *dryRun
	var applyErr error
	if !*dryRun {
		if applyErr, err = l.Import(ctx, db, m.actor(), rep, pos[0]); err != nil {
			return err
		}
	}
	if *asJSON {
		if err := writeJSON(m.Stdout, rep); err != nil {
			return err
		}
	} else if err := rep.WriteTable(m.Stdout); err != nil {
		return err
	}
	rep.WriteBcryptWarning(m.Stderr, *dryRun)
	if applyErr == nil && !*dryRun && rep.Summary.AccountsCreated > 0 {
		// Stdout stays pure JSON with --json.
		w := m.Stdout
		if *asJSON {
			w = m.Stderr
		}
		fmt.Fprintf(w, "new accounts are in %s: the users in them can log in once the server has reloaded\n", deploy.AccountsConf)
		if err := m.reload(ctx, w, l, rf); err != nil {
			return err
		}
	}
	return applyErr
}

// importAccountError words Plan's refusal to choose an account for the
// command line.
func importAccountError(err error) error {
	var ae *natsconf.AccountError
	switch {
	case !errors.As(err, &ae):
		return err
	case ae.Account != "":
		return usagef("--account %s: no such account in the directory, nor one FILE creates; the directory has %s", ae.Account, cmp.Or(strings.Join(ae.Known, ", "), "none"))
	case len(ae.Candidates) == 0:
		return usagef("import: FILE's authorization block has users, and the directory has no application account besides FILE's own: give --account, or create one with 'authrelay account add'")
	}
	return usagef("import: FILE's authorization block has users: give --account, one of %s", strings.Join(ae.Candidates, ", "))
}
