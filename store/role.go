package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
)

// RoleInUseError is what RemoveRole returns, without force, for a role that
// users hold. It wraps ErrRoleInUse.
type RoleInUseError struct {
	// Role is the role's name.
	Role string
	// Users are the names of the users holding it, sorted.
	Users []string
}

// maxNamed is how many names an error message lists before "and N more".
const maxNamed = 5

// Error names the role and its holders, and says how to go on.
func (e *RoleInUseError) Error() string {
	who := "users " + quoteList(e.Users, maxNamed) + " still hold it"
	if len(e.Users) == 1 {
		who = "user " + quoteList(e.Users, maxNamed) + " still holds it"
	}
	return fmt.Sprintf("remove role %q: %s: %s: pass --force to remove the role from them as well",
		e.Role, ErrRoleInUse, who)
}

// Unwrap returns ErrRoleInUse.
func (e *RoleInUseError) Unwrap() error { return ErrRoleInUse }

// AddRole adds a role. It returns ErrExists if a role of that name exists.
// Created and Updated are set by the store.
func (db *DB) AddRole(ctx context.Context, r accounts.Role) error {
	if err := r.Validate(); err != nil {
		if accounts.ValidateRoleName(r.Name) != nil {
			return fmt.Errorf("add role: %w", err)
		}
		return fmt.Errorf("add role %q: %w", r.Name, err)
	}
	perms, err := json.Marshal(r.Permissions)
	if err != nil {
		return fmt.Errorf("add role %q: %w", r.Name, err)
	}
	now := formatTime(db.now())
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("add role %q: %w", r.Name, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO roles (name, permissions, created, updated) VALUES (?, ?, ?, ?)`,
		r.Name, string(perms), now, now)
	switch {
	case isDuplicate(err):
		return fmt.Errorf("add role: role %q %w", r.Name, ErrExists)
	case err != nil:
		return fmt.Errorf("add role %q: %w", r.Name, err)
	}
	return tx.Commit()
}

// roleColumns are the columns scanRole reads, in order, from roles.
const roleColumns = `roles.name, roles.permissions, roles.created, roles.updated`

// Role returns the role called name, or ErrNotFound.
func (db *DB) Role(ctx context.Context, name string) (accounts.Role, error) {
	// Reads run outside a transaction; see Accounts.
	r, err := scanRole(db.q(ctx).QueryRowContext(ctx, `SELECT `+roleColumns+` FROM roles WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return accounts.Role{}, fmt.Errorf("look up role: role %q %w", name, ErrNotFound)
	case err != nil:
		return accounts.Role{}, fmt.Errorf("look up role %q: %w", name, err)
	}
	return r, nil
}

// Roles returns all roles, sorted by name.
func (db *DB) Roles(ctx context.Context) ([]accounts.Role, error) {
	rows, err := db.q(ctx).QueryContext(ctx, `SELECT `+roleColumns+` FROM roles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	roles, err := scanRoles(rows)
	if err != nil {
		return nil, fmt.Errorf("list roles: %w", err)
	}
	return roles, nil
}

// RolesNamed returns the roles among names that exist, in the order of names
// and each once; names of roles that do not exist are left out. It is on the
// path of every login: one read-only statement, and none at all for no names.
func (db *DB) RolesNamed(ctx context.Context, names []string) ([]accounts.Role, error) {
	if len(names) == 0 {
		return []accounts.Role{}, nil
	}
	list, err := json.Marshal(dedupe(names))
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	rows, err := db.stmts.roles.QueryContext(ctx, string(list))
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	roles, err := scanRoles(rows)
	if err != nil {
		return nil, fmt.Errorf("look up roles: %w", err)
	}
	return roles, nil
}

// rolesNamedQuery reads the roles named in a JSON array, in its order.
const rolesNamedQuery = `
	SELECT ` + roleColumns + `
	FROM json_each(?) AS wanted JOIN roles ON roles.name = wanted.value
	ORDER BY wanted.key`

// UpdateRole reads the role called name, lets fn change its permissions,
// validates the result and writes it back, all in one transaction. fn may not
// change the name; Created and Updated are kept by the store. If fn returns an
// error nothing is written and UpdateRole returns that error, wrapped. It
// returns ErrNotFound if there is no such role.
func (db *DB) UpdateRole(ctx context.Context, name string, fn func(*accounts.Role) error) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("update role %q: %w", name, err)
	}
	defer tx.Rollback()
	old, err := scanRole(tx.QueryRowContext(ctx, `SELECT `+roleColumns+` FROM roles WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("update role: role %q %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("update role %q: %w", name, err)
	}
	r := old
	if err := fn(&r); err != nil {
		return fmt.Errorf("update role %q: %w", name, err)
	}
	if r.Name != name {
		return fmt.Errorf("update role %q: the name cannot change (to %q): add a role of the new name, give it to the users and remove this one", name, r.Name)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("update role %q: %w", name, err)
	}
	perms, err := json.Marshal(r.Permissions)
	if err != nil {
		return fmt.Errorf("update role %q: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE roles SET permissions = ?, updated = ? WHERE name = ?`,
		string(perms), formatTime(db.now()), name); err != nil {
		return fmt.Errorf("update role %q: %w", name, err)
	}
	return tx.Commit()
}

// RoleHolders returns the names of the users holding the role called name,
// sorted. It returns ErrNotFound if there is no such role.
func (db *DB) RoleHolders(ctx context.Context, name string) ([]string, error) {
	// One statement, so that the role's existence and its holders come
	// from the same snapshot: a role without holders gives one row with a
	// NULL user.
	rows, err := db.q(ctx).QueryContext(ctx, `
		SELECT user_roles.user FROM roles LEFT JOIN user_roles ON user_roles.role = roles.name
		WHERE roles.name = ? ORDER BY user_roles.user`, name)
	if err != nil {
		return nil, fmt.Errorf("holders of role %q: %w", name, err)
	}
	users, found, err := scanNullableNames(rows)
	switch {
	case err != nil:
		return nil, fmt.Errorf("holders of role %q: %w", name, err)
	case !found:
		return nil, fmt.Errorf("holders of role: role %q %w", name, ErrNotFound)
	}
	return users, nil
}

// RemoveRole removes the role called name. While users hold it, it returns a
// *RoleInUseError and changes nothing, unless force is set: then it takes the
// role from its holders, marking them updated, and removes it, in one
// transaction, and returns the holders' names, sorted. It returns ErrNotFound
// if there is no such role.
func (db *DB) RemoveRole(ctx context.Context, name string, force bool) (removedFrom []string, err error) {
	tx, err := db.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("remove role %q: %w", name, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `
		SELECT user_roles.user FROM roles LEFT JOIN user_roles ON user_roles.role = roles.name
		WHERE roles.name = ? ORDER BY user_roles.user`, name)
	if err != nil {
		return nil, fmt.Errorf("remove role %q: %w", name, err)
	}
	holders, found, err := scanNullableNames(rows)
	switch {
	case err != nil:
		return nil, fmt.Errorf("remove role %q: %w", name, err)
	case !found:
		return nil, fmt.Errorf("remove role: role %q %w", name, ErrNotFound)
	case len(holders) > 0 && !force:
		return nil, &RoleInUseError{Role: name, Users: holders}
	}
	if len(holders) > 0 {
		if _, err := tx.ExecContext(ctx, `
			UPDATE users SET updated = ?
			WHERE name IN (SELECT user FROM user_roles WHERE role = ?)`,
			formatTime(db.now()), name); err != nil {
			return nil, fmt.Errorf("remove role %q: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_roles WHERE role = ?`, name); err != nil {
			return nil, fmt.Errorf("remove role %q: %w", name, err)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM roles WHERE name = ?`, name)
	switch {
	case isForeignKey(err):
		// Not reached: the write lock is held since the holders were read.
		return nil, fmt.Errorf("remove role %q: %w: users still hold it", name, ErrRoleInUse)
	case err != nil:
		return nil, fmt.Errorf("remove role %q: %w", name, err)
	}
	if err := mustAffect(res, "remove role", "role", name); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("remove role %q: %w", name, err)
	}
	return holders, nil
}

// scanNullableNames reads rows of one nullable text column, as a LEFT JOIN
// from one row gives them, and closes rows. found reports whether there was
// any row; NULLs are left out of names, which is empty, not nil, when there
// are none.
func scanNullableNames(rows *sql.Rows) (names []string, found bool, err error) {
	defer rows.Close()
	names = []string{}
	for rows.Next() {
		found = true
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			return nil, false, err
		}
		if s.Valid {
			names = append(names, s.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	return names, found, nil
}

// scanRoles reads rows of roleColumns and closes rows.
func scanRoles(rows *sql.Rows) ([]accounts.Role, error) {
	defer rows.Close()
	roles := []accounts.Role{}
	for rows.Next() {
		r, err := scanRole(rows)
		if err != nil {
			return nil, err
		}
		roles = append(roles, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return roles, nil
}

// scanRole scans a row of roleColumns.
func scanRole(row scanner) (accounts.Role, error) {
	var (
		r                accounts.Role
		perms            string
		created, updated string
	)
	if err := row.Scan(&r.Name, &perms, &created, &updated); err != nil {
		return accounts.Role{}, err
	}
	if err := json.Unmarshal([]byte(perms), &r.Permissions); err != nil {
		return accounts.Role{}, fmt.Errorf("role %q: stored permissions: %w", r.Name, err)
	}
	var err error
	if r.Created, err = parseTime(created); err != nil {
		return accounts.Role{}, fmt.Errorf("role %q: %w", r.Name, err)
	}
	if r.Updated, err = parseTime(updated); err != nil {
		return accounts.Role{}, fmt.Errorf("role %q: %w", r.Name, err)
	}
	return r, nil
}

// AllRoleHolders returns, in one query, the holders of every role, each
// list sorted and never nil, with every role present (an empty list for a
// role nobody holds).
func (db *DB) AllRoleHolders(ctx context.Context) (map[string][]string, error) {
	rows, err := db.q(ctx).QueryContext(ctx, `
		SELECT roles.name, user_roles.user FROM roles LEFT JOIN user_roles ON user_roles.role = roles.name
		ORDER BY roles.name, user_roles.user`)
	if err != nil {
		return nil, fmt.Errorf("holders of every role: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var role string
		var user sql.NullString
		if err := rows.Scan(&role, &user); err != nil {
			return nil, fmt.Errorf("holders of every role: %w", err)
		}
		if out[role] == nil {
			out[role] = []string{}
		}
		if user.Valid {
			out[role] = append(out[role], user.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("holders of every role: %w", err)
	}
	return out, nil
}
