package store

import (
	"context"
	"fmt"
)

// userVersionQuery reads a user's version of migration 0010, or 0 when
// there is no such user.
const userVersionQuery = `SELECT coalesce((SELECT v FROM user_versions WHERE user = ?), 0)`

// UserVersion returns the version of the user called name: a number that
// triggers change, in the same transaction, with every change that can
// change what a login of that user is granted, whichever process makes it:
// to the user's row (except a rehash of its password at login), its roles,
// a role it holds, or its account. It is 0 when there is no such user, and
// a user never has the same version twice, not even when removed and added
// again. A change to anything else (another user, a role the user does not
// hold, another account) leaves it alone. So while UserVersion returns the
// same value, whatever a login decision about name read from the database
// before is still what the database holds: read UserVersion first, then the
// user and its roles, and keep the result only with the version read first.
//
// Like Generation, it runs one prepared read-only statement, a lookup by
// primary key in a small table that holds no password hash, outside a
// transaction, so it never waits for a writer.
func (db *DB) UserVersion(ctx context.Context, name string) (int64, error) {
	ctx, err := quickRead(ctx)
	if err != nil {
		return 0, fmt.Errorf("read user version: %w", err)
	}
	var v int64
	if err := db.stmts.userVersion.QueryRowContext(ctx, name).Scan(&v); err != nil {
		return 0, fmt.Errorf("read user version: %w", err)
	}
	return v, nil
}

// UserPositions reads, in one statement, what UserVersion and
// LastUserChange read: the relay needs both before every decision when the
// credential cache and revocation are on.
func (db *DB) UserPositions(ctx context.Context, name string) (version, lastChange int64, err error) {
	ctx, err = quickRead(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read positions: %w", err)
	}
	if err := db.stmts.userPositions.QueryRowContext(ctx, name).Scan(&version, &lastChange); err != nil {
		return 0, 0, fmt.Errorf("read positions: %w", err)
	}
	return version, lastChange, nil
}

// userPositionsQuery is userVersionQuery and lastUserChangeQuery in one.
const userPositionsQuery = `SELECT (` + userVersionQuery + `), (` + lastUserChangeQuery + `)`
