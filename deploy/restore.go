package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/authrelay/authrelay/store"
)

// Restored says what Layout.Restore did.
type Restored struct {
	// Replaced tells whether the database was replaced; RestoreResult
	// says what store.Restore checked and moved then.
	Replaced bool
	store.RestoreResult
	// AccountsConfChanged tells whether accounts.conf was rewritten to
	// the restored accounts: the servers must then reload it.
	AccountsConfChanged bool
	// AuditErr is why the restore is not in the audit trail, when it is
	// not; the restore stands.
	AuditErr error
}

// Restore replaces the directory's user database with the backup file
// from (store.Restore: it checks the backup and refuses while a relay
// serves the directory, changing nothing then), opens the restored
// database as every command does (migrating an older schema), records
// the restore in the audit trail as done by actor, and rewrites
// accounts.conf from the restored accounts. now names the moved-aside
// files. It refuses a directory without secrets.json: a database without
// the keys it was used with is no deployment. After a failure past the
// replacement, what it returns says what was done.
func (l Layout) Restore(ctx context.Context, from string, now time.Time, actor string) (Restored, error) {
	var r Restored
	if !l.Initialised() {
		return r, fmt.Errorf("restore: %s has no %s: put back the copy of %s kept apart from the backups (or run 'authrelay init --dir %s' for new keys), then restore", l.Dir, SecretsFile, SecretsFile, l.Dir)
	}
	res, err := store.Restore(ctx, from, l.Path(DatabaseFile), now)
	if err != nil {
		return r, fmt.Errorf("%w; nothing was changed", err)
	}
	r.Replaced, r.RestoreResult = true, res
	db, err := l.OpenDatabase(ctx)
	if err != nil {
		return r, fmt.Errorf("restore: the restored database does not open: %w", err)
	}
	defer db.Close()
	detail, err := json.Marshal(map[string]any{"from": from, "schema": r.Schema, "aside": r.Aside})
	if err == nil {
		err = db.AuditAdmin(ctx, actor, "database restore", string(detail))
	}
	r.AuditErr = err
	if r.AccountsConfChanged, err = l.WriteAccountsConf(ctx, db); err != nil {
		return r, fmt.Errorf("restore: the database is restored, but %w: run 'authrelay account list --dir %s' and fix %s", err, l.Dir, AccountsConf)
	}
	return r, nil
}

// WriteAccountsConf rewrites accounts.conf from the accounts of db when
// what it holds differs, and tells whether it did: after an account
// command, a restore, or (on a cluster node) changes applied from the
// cluster log, since an account command on another node rewrote only that
// node's file.
func (l Layout) WriteAccountsConf(ctx context.Context, db *store.DB) (changed bool, err error) {
	if mode, err := l.Mode(); err != nil {
		return false, err
	} else if mode == ModeOperator {
		return l.writeOperatorAccounts(ctx, db)
	}
	list, err := db.AccountList(ctx)
	if err != nil {
		return false, err
	}
	path := l.Path(AccountsConf)
	before, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", AccountsConf, err)
	}
	after := RenderAccountsConf(list)
	if bytes.Equal(before, after) {
		return false, nil
	}
	if err := WriteFileAtomic(path, after, 0o644); err != nil {
		return false, fmt.Errorf("write %s: %w", AccountsConf, err)
	}
	return true, nil
}
