package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// userChangesBatch bounds the rows one UserChangesSince returns.
const userChangesBatch = 1000

// LastUserChange returns the id of the latest row of the user change feed
// (migration 0006), or 0 if there was none; rows pruned since still count. A
// reader that starts from it sees only the changes committed after.
func (db *DB) LastUserChange(ctx context.Context) (int64, error) {
	// A prepared statement: the relay reads it with every decision.
	ctx, err := quickRead(ctx)
	if err != nil {
		return 0, fmt.Errorf("read last user change: %w", err)
	}
	var id int64
	if err := db.stmts.lastChange.QueryRowContext(ctx).Scan(&id); err != nil {
		return 0, fmt.Errorf("read last user change: %w", err)
	}
	return id, nil
}

// lastUserChangeQuery reads the highest id user_changes has handed out.
const lastUserChangeQuery = `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'user_changes'), 0)`

// UserChangesSince returns, in order, up to a batch of the committed changes
// with an id above after. A user may appear more than once. Triggers write a
// row in the same transaction as every change to a user, to the user's roles
// or to a role the user holds, and whenever the username is locked out; a
// rehash of the password at login writes none. A password replaced with a
// grace writes a quiet row, and the end of the grace (EndGraces) a row
// limited to what came before the replacement. Call it again from the last
// id returned until it returns fewer than a batch.
func (db *DB) UserChangesSince(ctx context.Context, after int64) ([]accounts.UserChange, error) {
	rows, err := db.sql.QueryContext(ctx,
		`SELECT `+changeColumns+` FROM user_changes WHERE id > ? ORDER BY id LIMIT ?`, after, userChangesBatch)
	if err != nil {
		return nil, fmt.Errorf("read user changes: %w", err)
	}
	out, err := scanChanges(rows)
	if err != nil {
		return nil, fmt.Errorf("read user changes: %w", err)
	}
	return out, nil
}

// changeColumns are the columns scanChanges reads.
const changeColumns = `id, user, time, quiet, before_id, before_time`

// scanChanges reads change rows and closes rows.
func scanChanges(rows *sql.Rows) ([]accounts.UserChange, error) {
	defer rows.Close()
	var out []accounts.UserChange
	for rows.Next() {
		var c accounts.UserChange
		var at int64
		var beforeID, before sql.NullInt64
		if err := rows.Scan(&c.ID, &c.User, &at, &c.Quiet, &beforeID, &before); err != nil {
			return nil, err
		}
		c.Time = time.Unix(at, 0)
		if beforeID.Valid {
			c.BeforeID, c.Before = beforeID.Int64, time.Unix(0, before.Int64)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RecentUserChanges returns, in id order, the latest changes of the user
// change feed committed at or after since, at most limit of them, with the
// commit time of each, in whole seconds rounded down as the feed keeps it
// (on the clock of the host that wrote it, which is the database's host). A
// relay that starts reads them to revoke what changed while no relay was
// running.
func (db *DB) RecentUserChanges(ctx context.Context, since time.Time, limit int) ([]accounts.UserChange, error) {
	rows, err := db.sql.QueryContext(ctx,
		`SELECT `+changeColumns+` FROM user_changes WHERE time >= ? ORDER BY id DESC LIMIT ?`, since.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("read recent user changes: %w", err)
	}
	out, err := scanChanges(rows)
	if err != nil {
		return nil, fmt.Errorf("read recent user changes: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// PruneUserChanges deletes the user change rows written before before and
// returns how many it deleted. Relays read the feed within a second; keep
// an hour or so for one that was paused.
func (db *DB) PruneUserChanges(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM user_changes WHERE time < ?`, before.Unix())
	if err != nil {
		return 0, fmt.Errorf("prune user changes: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune user changes: %w", err)
	}
	return n, nil
}
