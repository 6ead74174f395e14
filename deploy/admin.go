package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/natsconf"
	"github.com/authrelay/authrelay/store"
)

// A Change is one admin change: it makes it through the store's methods
// with the context it is given, and returns the detail of its audit row
// (what changed: names and the flags given, never a password or hash).
type Change func(ctx context.Context) (map[string]any, error)

// Admin makes change and writes its audit row, by actor, in one
// transaction (store.DB.Admin): if the row cannot be written, the change
// is not made.
func Admin(ctx context.Context, db *store.DB, actor, action string, change Change) error {
	return db.Admin(ctx, actor, action, func(ctx context.Context) (string, error) {
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

// AdminAccounts is Admin for a change that may change the accounts: it
// also rewrites accounts.conf from the database as the change leaves it,
// before the transaction commits, so that if the file cannot be written
// nothing changes, and if the commit fails the file is rewritten from the
// database again. A hand edit of accounts.conf is refused before anything
// changes (CheckAccountsConf), not erased by the rewrite.
func (l Layout) AdminAccounts(ctx context.Context, db *store.DB, actor, action string, change Change) error {
	before, err := db.AccountList(ctx)
	if err != nil {
		return err
	}
	if err := l.CheckAccountsConf(before); err != nil {
		return err
	}
	synced := false
	err = Admin(ctx, db, actor, action, func(ctx context.Context) (map[string]any, error) {
		detail, err := change(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := l.WriteAccountsConf(ctx, db); err != nil {
			return nil, err
		}
		synced = true
		return detail, nil
	})
	if err != nil && synced {
		if _, rerr := l.WriteAccountsConf(ctx, db); rerr != nil {
			return errors.Join(err, fmt.Errorf("rewrite %s from the database: %w", AccountsConf, rerr))
		}
	}
	return err
}

// ImportSnapshot is what an import's plan (natsconf.Plan) needs to know of
// the directory: its database's accounts, roles and users, its reserved
// accounts and static users, and the size check of a grant.
func (l Layout) ImportSnapshot(ctx context.Context, db *store.DB, now func() time.Time) (natsconf.Snapshot, error) {
	s, err := natsconf.Load(ctx, db)
	if err != nil {
		return s, fmt.Errorf("import: %w", err)
	}
	s.CalloutAccount, s.SystemAccount, s.StaticUsers = AuthAccount, SystemAccount, []string{RelayUser, AdminUser}
	if s.Reserved, err = db.ReservedAccounts(); err != nil {
		return s, err
	}
	sizer, err := NewGrantSizer(l, now)
	if err != nil {
		return s, err
	}
	s.Size = func(u accounts.User) error { _, err := sizer.Check(u, nil); return err }
	return s, nil
}

// Import applies an import plan with its audit row, by actor, in one
// transaction, naming file in the row. Plain-text passwords are hashed
// first, so that the transaction does not hold the write lock for a hash
// per user. If the accounts cannot be created, nothing is imported and
// Import returns the error; a user that fails stops the import and is
// userErr (the report's rows say which): the users added before it are
// kept, with the row that counts them.
func (l Layout) Import(ctx context.Context, db *store.DB, actor string, rep *natsconf.Report, file string) (userErr, err error) {
	creates := slices.ContainsFunc(rep.Accounts, func(a *natsconf.AccountRow) bool { return a.Action == natsconf.ActionCreate })
	if err := rep.HashPasswords(func(pw string) (string, error) { return store.HashPassword(pw, db.HashParams()) }); err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	apply := func(ctx context.Context) (map[string]any, error) {
		var err error
		if userErr, err = natsconf.Apply(ctx, db, rep, nil); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		return map[string]any{"file": file, "users_imported": rep.Summary.UsersImported,
			"accounts_created": rep.Summary.AccountsCreated, "users_skipped": rep.Summary.UsersSkipped}, nil
	}
	if creates {
		// accounts.conf follows, as for 'account add'.
		err = l.AdminAccounts(ctx, db, actor, "import", apply)
	} else {
		err = Admin(ctx, db, actor, "import", apply)
	}
	if err != nil {
		userErr = nil
	}
	return userErr, err
}

// SetHashPolicy applies the hash policy edit e (checked by
// e.CheckFlags) to the stored policy with its audit row, by actor, in one
// transaction, and returns the policy and whether the hash part changed
// (only the minimum password length may have). An edit the policy refuses
// is an error wrapping store.ErrBadPolicy, and nothing changes.
func SetHashPolicy(ctx context.Context, db *store.DB, actor string, e store.PolicyEdit) (store.Argon2Params, bool, error) {
	p, err := db.HashPolicy(ctx)
	if err != nil {
		return p, false, err
	}
	p, hashChange, err := e.Apply(p)
	if err != nil {
		return p, false, err
	}
	err = Admin(ctx, db, actor, "hash set", func(ctx context.Context) (map[string]any, error) {
		detail := map[string]any{}
		if e.MinPasswordLen != nil {
			detail["min_password_length"] = *e.MinPasswordLen
			if err := db.SetMinPasswordLen(ctx, *e.MinPasswordLen); err != nil {
				return nil, err
			}
		}
		if !hashChange {
			return detail, nil
		}
		detail["memory_kib"], detail["time"], detail["threads"] = p.Memory, p.Time, p.Threads
		return detail, db.SetHashPolicy(ctx, p)
	})
	return p, hashChange, err
}

// Unlock lifts the lockouts of the username name (may be "") from the
// address key (may be "", store.UnlockAddr's form) with its audit row, by
// actor, in one transaction, and reports whether anything was locked.
func Unlock(ctx context.Context, db *store.DB, actor, name, key string) (bool, error) {
	var was bool
	err := Admin(ctx, db, actor, "user unlock", func(ctx context.Context) (map[string]any, error) {
		var err error
		if was, err = db.Unlock(ctx, name, key); err != nil {
			return nil, err
		}
		details := map[string]any{"was_locked": was}
		if name != "" {
			details["user"] = name
		}
		if key != "" {
			details["addr"] = key
		}
		return details, nil
	})
	return was, err
}
