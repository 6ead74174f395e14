package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/natsconf"
	"github.com/authrelay/authrelay/store"
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
	snap, err := importSnapshot(ctx, l, db, m)
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
		if err := applyImport(ctx, m, l, db, rep, pos[0], &applyErr); err != nil {
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

// importSnapshot is what import's plan needs to know of DIR.
func importSnapshot(ctx context.Context, l deploy.Layout, db *store.DB, m *Main) (natsconf.Snapshot, error) {
	s, err := natsconf.Load(ctx, db)
	if err != nil {
		return s, fmt.Errorf("import: %w", err)
	}
	s.CalloutAccount, s.SystemAccount, s.StaticUsers = deploy.AuthAccount, deploy.SystemAccount, []string{deploy.RelayUser, deploy.AdminUser}
	if s.Reserved, err = db.ReservedAccounts(); err != nil {
		return s, err
	}
	sizer, err := deploy.NewGrantSizer(l, m.Now)
	if err != nil {
		return s, err
	}
	s.Size = func(u accounts.User) error { _, err := sizer.Check(u, nil); return err }
	return s, nil
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

// applyImport applies an import plan and writes the import's audit row in
// one transaction. Plain-text passwords are hashed first, so that the
// transaction does not hold the write lock for a hash per user. If the
// accounts cannot be created, nothing is imported; a user that fails stops
// the import (applyErr, with the rows saying which): the users added
// before it are kept with the row that counts them.
func applyImport(ctx context.Context, m *Main, l deploy.Layout, db *store.DB, rep *natsconf.Report, file string, applyErr *error) error {
	if slices.ContainsFunc(rep.Accounts, func(a *natsconf.AccountRow) bool { return a.Action == natsconf.ActionCreate }) {
		// As for 'account add': a hand edit of accounts.conf is refused,
		// not erased.
		before, err := db.AccountList(ctx)
		if err != nil {
			return err
		}
		if err := l.CheckAccountsConf(before); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	}
	if err := rep.HashPasswords(func(pw string) (string, error) { return store.HashPassword(pw, db.HashParams()) }); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	synced := false
	err := m.admin(ctx, db, "import", func(ctx context.Context) (map[string]any, error) {
		userErr, err := natsconf.Apply(ctx, db, rep, func(ctx context.Context) error { return syncAccountsConf(ctx, l, db) })
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		synced, *applyErr = true, userErr
		return map[string]any{"file": file, "users_imported": rep.Summary.UsersImported,
			"accounts_created": rep.Summary.AccountsCreated, "users_skipped": rep.Summary.UsersSkipped}, nil
	})
	if err != nil && synced {
		if rerr := syncAccountsConf(ctx, l, db); rerr != nil {
			return errors.Join(err, fmt.Errorf("rewrite %s from the database: %w", deploy.AccountsConf, rerr))
		}
	}
	return err
}
