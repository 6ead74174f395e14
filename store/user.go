package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// AddUser adds a user with the given password, hashed with argon2id at
// db.Params. It returns ErrExists if a user of that name exists, and
// ErrUnknownAccount if u.Account has not been added. Created and Updated are
// set by the store.
func (db *DB) AddUser(ctx context.Context, u accounts.User, password string) error {
	if err := validateUser(u); err != nil {
		return fmt.Errorf("%s: %w", addUserOp(u.Name), err)
	}
	if err := ValidatePassword(password); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	// Hash before the transaction: the write lock is not held for the
	// tens of milliseconds argon2id takes.
	hash, err := HashPassword(password, db.Params)
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	return db.addUser(ctx, u, hash)
}

// AddUserWithHash adds a user whose password is already hashed, for example
// taken from a nats-server configuration. The hash must be an argon2id PHC
// string or a bcrypt hash ($2a$, $2b$ or $2y$). Errors are as for AddUser.
func (db *DB) AddUserWithHash(ctx context.Context, u accounts.User, hash string) error {
	if err := validateUser(u); err != nil {
		return fmt.Errorf("%s: %w", addUserOp(u.Name), err)
	}
	if _, err := hashScheme(hash); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	return db.addUser(ctx, u, hash)
}

// addUserOp names the operation for an error, with the name if it is valid.
func addUserOp(name string) string {
	if accounts.ValidateName(name) != nil {
		return "add user"
	}
	return fmt.Sprintf("add user %q", name)
}

func (db *DB) addUser(ctx context.Context, u accounts.User, hash string) error {
	perms, err := json.Marshal(u.Permissions)
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	now := formatTime(db.now())
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `
		INSERT INTO users (name, account, password_hash, permissions, disabled, expires, created, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Name, u.Account, hash, string(perms), u.Disabled, expiresValue(u.Expires), now, now)
	switch {
	case isDuplicate(err):
		return fmt.Errorf("add user: user %q %w", u.Name, ErrExists)
	case isForeignKey(err):
		return unknownAccount("add user", u)
	case err != nil:
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	return tx.Commit()
}

// User returns the user called name, or ErrNotFound.
func (db *DB) User(ctx context.Context, name string) (accounts.User, error) {
	// Reads run outside a transaction; see Accounts.
	u, err := scanUser(db.sql.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return accounts.User{}, fmt.Errorf("look up user: user %q %w", name, ErrNotFound)
	case err != nil:
		return accounts.User{}, fmt.Errorf("look up user %q: %w", name, err)
	}
	return u, nil
}

// Users returns all users, sorted by name.
func (db *DB) Users(ctx context.Context) ([]accounts.User, error) {
	// Reads run outside a transaction; see Accounts.
	rows, err := db.sql.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []accounts.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// UpdateUser reads the user called name, lets fn change it, validates the
// result and writes it back, all in one transaction, so that concurrent
// updates are never lost. fn may change everything but the name; Created and
// Updated are kept by the store. If fn returns an error nothing is written and
// UpdateUser returns that error, wrapped. It returns ErrNotFound if there is no
// such user and ErrUnknownAccount if the new account has not been added.
func (db *DB) UpdateUser(ctx context.Context, name string, fn func(*accounts.User) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update user %q: %w", name, err)
	}
	defer tx.Rollback()
	old, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("update user: user %q %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("update user %q: %w", name, err)
	}
	u := old
	if err := fn(&u); err != nil {
		return fmt.Errorf("update user %q: %w", name, err)
	}
	if u.Name != name {
		return fmt.Errorf("update user %q: the name cannot change (to %q): add a user of the new name and remove this one", name, u.Name)
	}
	if err := validateUser(u); err != nil {
		return fmt.Errorf("update user %q: %w", name, err)
	}
	perms, err := json.Marshal(u.Permissions)
	if err != nil {
		return fmt.Errorf("update user %q: %w", name, err)
	}
	_, err = tx.ExecContext(ctx, `
		UPDATE users SET account = ?, permissions = ?, disabled = ?, expires = ?, updated = ?
		WHERE name = ?`,
		u.Account, string(perms), u.Disabled, expiresValue(u.Expires), formatTime(db.now()), name)
	switch {
	case isForeignKey(err):
		return unknownAccount("update user", u)
	case err != nil:
		return fmt.Errorf("update user %q: %w", name, err)
	}
	return tx.Commit()
}

// SetPassword replaces the password of the user called name with password,
// hashed with argon2id at db.Params. It returns ErrNotFound if there is no such
// user.
func (db *DB) SetPassword(ctx context.Context, name, password string) error {
	if err := ValidatePassword(password); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	hash, err := HashPassword(password, db.Params)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated = ? WHERE name = ?`,
		hash, formatTime(db.now()), name)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	if err := mustAffect(res, "set password", "user", name); err != nil {
		return err
	}
	return tx.Commit()
}

// SetDisabled disables or re-enables the user called name. A disabled user is
// refused at the next connect. It returns ErrNotFound if there is no such user.
func (db *DB) SetDisabled(ctx context.Context, name string, disabled bool) error {
	op := "enable user"
	if disabled {
		op = "disable user"
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE users SET disabled = ?, updated = ? WHERE name = ?`,
		disabled, formatTime(db.now()), name)
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	if err := mustAffect(res, op, "user", name); err != nil {
		return err
	}
	return tx.Commit()
}

// RemoveUser removes the user called name. It returns ErrNotFound if there is
// no such user.
func (db *DB) RemoveUser(ctx context.Context, name string) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("remove user %q: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("remove user %q: %w", name, err)
	}
	if err := mustAffect(res, "remove user", "user", name); err != nil {
		return err
	}
	return tx.Commit()
}

// HashScheme returns the scheme of the user's password hash, SchemeArgon2id or
// SchemeBcrypt, but never the hash itself. It returns ErrNotFound if there is
// no such user.
func (db *DB) HashScheme(ctx context.Context, name string) (string, error) {
	var hash string
	err := db.sql.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE name = ?`, name).Scan(&hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("password scheme: user %q %w", name, ErrNotFound)
	case err != nil:
		return "", fmt.Errorf("password scheme of %q: %w", name, err)
	}
	scheme, err := hashScheme(hash)
	if err != nil {
		return "", fmt.Errorf("password scheme of %q: stored %w", name, err)
	}
	return scheme, nil
}

// Authenticate returns the user called name if password is that user's
// password. It returns an error wrapping accounts.ErrInvalidCredentials both
// when there is no such user and when the password is wrong; an unknown user
// costs one password verification like a known one, so that the time taken
// does not tell the two apart. An invalid username, an empty password and
// one longer than MaxPasswordLen are refused at once, without looking the
// user up: no user can log in with them (an empty password never matches, not
// even an imported hash of the empty string), so this tells nothing about
// which users exist.
//
// On success the user is returned even if disabled or expired: the caller
// decides with u.Check. Any other error (the database failing, ctx done) is
// returned wrapped and does not wrap accounts.ErrInvalidCredentials.
// Authenticate only reads and never takes the database's write lock.
//
// The dummy verification runs at db.Params. A user whose stored hash has other
// costs (an imported bcrypt hash, or argon2id at older parameters) takes a
// different time until SetPassword hashes the password again.
func (db *DB) Authenticate(ctx context.Context, name, password string) (accounts.User, error) {
	invalid := func() (accounts.User, error) {
		return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, accounts.ErrInvalidCredentials)
	}
	// Decided without the database: these tell nothing about which users
	// exist. An invalid name is not quoted: it came from the network and
	// may be long.
	if accounts.ValidateName(name) != nil {
		return accounts.User{}, fmt.Errorf("authenticate: %w", accounts.ErrInvalidCredentials)
	}
	if password == "" || len(password) > MaxPasswordLen {
		return invalid()
	}
	var hash string
	u, err := scanUser(db.sql.QueryRowContext(ctx,
		`SELECT password_hash, `+userColumns+` FROM users WHERE name = ?`, name), &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := db.verifyDummy(password); err != nil {
			return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, err)
		}
		return invalid()
	case err != nil:
		return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, err)
	}
	ok, err := VerifyPassword(hash, password)
	if err != nil {
		return accounts.User{}, fmt.Errorf("authenticate %q: stored %w", name, err)
	}
	if !ok {
		return invalid()
	}
	return u, nil
}

// verifyDummy verifies password against a hash that no password matches, at
// the current parameters, so that an unknown user costs as much as a known
// one.
func (db *DB) verifyDummy(password string) error {
	hash, err := db.dummy()
	if err != nil {
		return err
	}
	db.dummyVerifies.Add(1)
	_, err = VerifyPassword(hash, password)
	return err
}

// dummy returns the dummy hash, computing it on first use and again whenever
// db.Params has changed.
func (db *DB) dummy() (string, error) {
	db.dummyMu.Lock()
	defer db.dummyMu.Unlock()
	if db.dummyHash == "" || db.dummyParams != db.Params {
		hash, err := HashPassword(rand.Text(), db.Params)
		if err != nil {
			return "", fmt.Errorf("dummy password hash: %w", err)
		}
		db.dummyHash, db.dummyParams = hash, db.Params
	}
	return db.dummyHash, nil
}

// validateUser checks u as accounts does, and that its expiry can be stored.
func validateUser(u accounts.User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	if !u.Expires.IsZero() {
		if y := u.Expires.UTC().Year(); y < 1970 || y > 9999 {
			return fmt.Errorf("expiry %s is out of range: give a time between the years 1970 and 9999", u.Expires.Format(time.RFC3339))
		}
	}
	return nil
}

func unknownAccount(op string, u accounts.User) error {
	return fmt.Errorf("%s %q: %w %q: add the account first", op, u.Name, ErrUnknownAccount, u.Account)
}

// mustAffect returns ErrNotFound, wrapped, if res changed no row.
func mustAffect(res sql.Result, op, kind, name string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %s %q %w", op, kind, name, ErrNotFound)
	}
	return nil
}

func expiresValue(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(t), Valid: true}
}

// userColumns are the columns scanUser reads, in order.
const userColumns = `name, account, permissions, disabled, expires, created, updated`

type scanner interface {
	Scan(dest ...any) error
}

// scanUser scans a row of the columns first, then userColumns.
func scanUser(row scanner, first ...any) (accounts.User, error) {
	var (
		u                accounts.User
		perms            string
		expires          sql.NullString
		created, updated string
	)
	dest := append(first, &u.Name, &u.Account, &perms, &u.Disabled, &expires, &created, &updated)
	if err := row.Scan(dest...); err != nil {
		return accounts.User{}, err
	}
	if err := json.Unmarshal([]byte(perms), &u.Permissions); err != nil {
		return accounts.User{}, fmt.Errorf("user %q: stored permissions: %w", u.Name, err)
	}
	var err error
	if expires.Valid {
		if u.Expires, err = parseTime(expires.String); err != nil {
			return accounts.User{}, fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	if u.Created, err = parseTime(created); err != nil {
		return accounts.User{}, fmt.Errorf("user %q: %w", u.Name, err)
	}
	if u.Updated, err = parseTime(updated); err != nil {
		return accounts.User{}, fmt.Errorf("user %q: %w", u.Name, err)
	}
	return u, nil
}
