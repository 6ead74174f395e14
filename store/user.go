package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// AddUser adds a user with the given password, hashed with argon2id at
// db.Params. It returns ErrExists if a user of that name exists,
// ErrUnknownAccount if u.Account has not been added, and ErrUnknownRole if a
// role in u.Roles has not been added. Created and Updated are set by the
// store. The store keeps u.Roles in the order given without duplicates, and
// u.Src and u.ConnTypes in canonical form (see accounts.ParseSource and
// accounts.ParseConnType), also without duplicates.
func (db *DB) AddUser(ctx context.Context, u accounts.User, password string) error {
	u, err := prepareUser(u)
	if err != nil {
		return fmt.Errorf("%s: %w", addUserOp(u.Name), err)
	}
	if err := ValidatePassword(password); err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	// Hash before the transaction: the write lock is not held for the
	// tens of milliseconds argon2id takes.
	hash, err := HashPassword(password, db.params())
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	return db.addUser(ctx, u, hash)
}

// AddUserWithHash adds a user whose password is already hashed, for example
// taken from a nats-server configuration. The hash must be an argon2id PHC
// string or a bcrypt hash ($2a$, $2b$ or $2y$). Errors are as for AddUser.
func (db *DB) AddUserWithHash(ctx context.Context, u accounts.User, hash string) error {
	u, err := prepareUser(u)
	if err != nil {
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

// addUser stores u, which prepareUser has returned, with its password's
// hash.
func (db *DB) addUser(ctx context.Context, u accounts.User, hash string) error {
	return db.addUserTx(ctx, u, hash, true, nil)
}

// addUserTx stores u, which prepareUser has returned, with hash (of its
// password, or of a random secret when passwordSet is false) and creds, in
// one transaction.
func (db *DB) addUserTx(ctx context.Context, u accounts.User, hash string, passwordSet bool, creds []accounts.StoredCredential) error {
	if err := db.checkReserved(fmt.Sprintf("add user %q", u.Name), u.Account); err != nil {
		return err
	}
	cols, err := marshalUser(u)
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	now := formatTime(db.now())
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `
		INSERT INTO users (name, account, password_hash, permissions, disabled, expires, src, conn_types, created, updated, password_set)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Name, u.Account, hash, cols.perms, u.Disabled, expiresValue(u.Expires), cols.src, cols.connTypes, now, now, passwordSet)
	switch {
	case isDuplicate(err):
		return fmt.Errorf("add user: user %q %w", u.Name, ErrExists)
	case isForeignKey(err):
		return db.unknownAccount(ctx, "add user", u)
	case err != nil:
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	if err := setRoles(ctx, tx.Tx, "add user", u.Name, u.Roles); err != nil {
		return err
	}
	for _, c := range creds {
		if err := insertCredential(ctx, tx.Tx, c, db.now()); err != nil {
			return fmt.Errorf("add user %q: %w", u.Name, err)
		}
	}
	return tx.Commit()
}

// User returns the user called name, or ErrNotFound. Roles, Src and ConnTypes
// of a returned user are never nil: empty lists are empty slices.
func (db *DB) User(ctx context.Context, name string) (accounts.User, error) {
	// Reads run outside a transaction; see Accounts.
	u, err := scanUser(db.q(ctx).QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return accounts.User{}, fmt.Errorf("look up user: user %q %w", name, ErrNotFound)
	case err != nil:
		return accounts.User{}, fmt.Errorf("look up user %q: %w", name, err)
	}
	return u, nil
}

// Users returns all users, sorted by name, as User returns them. The list is
// empty, not nil, when there are none.
func (db *DB) Users(ctx context.Context) ([]accounts.User, error) {
	// Reads run outside a transaction; see Accounts.
	rows, err := db.q(ctx).QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	users := []accounts.User{}
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
// Updated are kept by the store. Roles, Src and ConnTypes are stored as by
// AddUser. If fn returns an error nothing is written and UpdateUser returns
// that error, wrapped. It returns ErrNotFound if there is no such user,
// ErrUnknownAccount if the new account has not been added and ErrUnknownRole
// if a new role has not been added.
// An fn that changes nothing writes nothing (the user keeps its version).
func (db *DB) UpdateUser(ctx context.Context, name string, fn func(*accounts.User) error) error {
	tx, err := db.begin(ctx)
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
	if u, err = prepareUser(u); err != nil {
		return fmt.Errorf("update user %q: %w", name, err)
	}
	if err := db.checkReserved(fmt.Sprintf("update user %q", name), u.Account); err != nil {
		return err
	}
	cols, err := marshalUser(u)
	if err != nil {
		return fmt.Errorf("update user %q: %w", name, err)
	}
	if was, err := marshalUser(old); err == nil && was == cols && u.Account == old.Account && u.Disabled == old.Disabled &&
		u.Expires.Equal(old.Expires) && slices.Equal(u.Roles, old.Roles) {
		// Nothing changes: no write, so no new version and no change
		// that would close the user's connections.
		return tx.Commit()
	}
	_, err = tx.ExecContext(ctx, `
		UPDATE users SET account = ?, permissions = ?, disabled = ?, expires = ?, src = ?, conn_types = ?, updated = ?
		WHERE name = ?`,
		u.Account, cols.perms, u.Disabled, expiresValue(u.Expires), cols.src, cols.connTypes, formatTime(db.now()), name)
	switch {
	case isForeignKey(err):
		return db.unknownAccount(ctx, "update user", u)
	case err != nil:
		return fmt.Errorf("update user %q: %w", name, err)
	}
	if !slices.Equal(u.Roles, old.Roles) {
		if err := setRoles(ctx, tx.Tx, "update user", name, u.Roles); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// MaxPasswordGrace is the longest grace SetPasswordGrace gives a replaced
// password.
const MaxPasswordGrace = 7 * 24 * time.Hour

// staleWindow is how long after its grace a replaced password is still
// recognised, so that a client retrying with it is refused without counting
// towards a lockout.
const staleWindow = 24 * time.Hour

// SetPassword replaces the password of the user called name with password,
// hashed with argon2id at db.Params. The user's connections are closed (the
// change feed). The previous password is kept for a day (staleWindow), only
// so that a client still using it is recognised as stale, not guessing. It
// returns ErrNotFound if there is no such user.
func (db *DB) SetPassword(ctx context.Context, name, password string) error {
	return db.SetPasswordGrace(ctx, name, password, 0)
}

// SetPasswordGrace is SetPassword, except that for grace the previous
// password still logs in (Authenticate caps its logins' expiry at the end of
// the grace) and the user's connections stay open; when the grace ends,
// EndGraces closes those granted before the replacement, and only those.
// grace is at most MaxPasswordGrace; 0 is SetPassword.
func (db *DB) SetPasswordGrace(ctx context.Context, name, password string, grace time.Duration) error {
	if grace < 0 || grace > MaxPasswordGrace {
		return fmt.Errorf("set password of %q: grace %v: give 0 to %v", name, grace, MaxPasswordGrace)
	}
	if err := ValidatePassword(password); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	hash, err := HashPassword(password, db.params())
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	defer tx.Rollback()
	var previous string
	err = tx.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE name = ?`, name).Scan(&previous)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("set password: user %q %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	now := db.now()
	if _, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, password_set = 1, updated = ? WHERE name = ?`,
		hash, formatTime(now), name); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	// The row the update's trigger wrote: quiet with a grace.
	var mark int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM user_changes WHERE user = ?`, name).Scan(&mark); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	if grace > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE user_changes SET quiet = 1 WHERE id = ?`, mark); err != nil {
			return fmt.Errorf("set password of %q: %w", name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO password_graces (user, previous_hash, since, until, mark, ended) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (user) DO UPDATE SET previous_hash = excluded.previous_hash, since = excluded.since,
			until = excluded.until, mark = excluded.mark, ended = excluded.ended`,
		name, previous, now.UnixNano(), now.Add(grace).UnixNano(), mark, grace == 0); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	return tx.Commit()
}

// EndGraces ends the password graces that have run out: for each, in one
// transaction, it marks the grace ended and writes a change-feed row that
// closes the connections granted before the replacement (its mark) and
// bumps the user's version, so that no cached login of the previous
// password is answered again. Several relays may run it at once: each grace
// is ended once. It returns how many it ended.
func (db *DB) EndGraces(ctx context.Context) (int, error) {
	now := db.now()
	// Every relay asks every second: a read (the partial index of open
	// graces) decides whether to take the write lock at all.
	var open int
	err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM password_graces WHERE ended = 0 AND until <= ? LIMIT 1)`, now.UnixNano()).Scan(&open)
	if err != nil {
		return 0, fmt.Errorf("end password graces: %w", err)
	}
	if open == 0 {
		return 0, nil
	}
	// Local in cluster mode: every node ends each grace at its until.
	tx, err := db.begin(localWrite(ctx))
	if err != nil {
		return 0, fmt.Errorf("end password graces: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT user, mark, since FROM password_graces WHERE ended = 0 AND until <= ?`, now.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("end password graces: %w", err)
	}
	type ended struct {
		user        string
		mark, since int64
	}
	var due []ended
	for rows.Next() {
		var e ended
		if err := rows.Scan(&e.user, &e.mark, &e.since); err != nil {
			rows.Close()
			return 0, fmt.Errorf("end password graces: %w", err)
		}
		due = append(due, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("end password graces: %w", err)
	}
	for _, e := range due {
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`UPDATE password_graces SET ended = 1 WHERE user = ?`, []any{e.user}},
			{`INSERT INTO user_changes (user, time, before_id, before_time) VALUES (?, ?, ?, ?)`, []any{e.user, now.Unix(), e.mark, e.since}},
			{`UPDATE user_version_seq SET n = n + 1`, nil},
			{`UPDATE user_versions SET v = (SELECT n FROM user_version_seq) WHERE user = ?`, []any{e.user}},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
				return 0, fmt.Errorf("end password grace of %q: %w", e.user, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("end password graces: %w", err)
	}
	return len(due), nil
}

// PruneGraces deletes the previous passwords whose grace ended more than a
// day (staleWindow) before now.
func (db *DB) PruneGraces(ctx context.Context, now time.Time) (int64, error) {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM password_graces WHERE ended = 1 AND until < ?`, now.Add(-staleWindow).UnixNano())
	if err != nil {
		return 0, fmt.Errorf("prune password graces: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune password graces: %w", err)
	}
	return n, nil
}

// SetDisabled disables or re-enables the user called name. A disabled user is
// refused at the next connect. It returns ErrNotFound if there is no such user.
func (db *DB) SetDisabled(ctx context.Context, name string, disabled bool) error {
	op := "enable user"
	if disabled {
		op = "disable user"
	}
	tx, err := db.begin(ctx)
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
	tx, err := db.begin(ctx)
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
	err := db.q(ctx).QueryRowContext(ctx, `SELECT password_hash FROM users WHERE name = ?`, name).Scan(&hash)
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
// password, or its previous password within a grace (SetPasswordGrace: the
// user comes back with Grace set and Expires no later). A previous password
// past its grace gives accounts.ErrStaleCredentials, which wraps
// ErrInvalidCredentials. A wrong password costs two verifications (the
// user's hash, then the previous one or the dummy), an unknown user two of
// the dummy. It returns an error wrapping accounts.ErrInvalidCredentials both
// when there is no such user and when the password is wrong; an unknown user
// costs one password verification like a known one, so that the time taken
// does not tell the two apart. An invalid username, an empty password and
// one longer than MaxPasswordLen are refused at once, without looking the
// user up: no user can log in with them (an empty password never matches, not
// even an imported hash of the empty string), so this tells nothing about
// which users exist.
//
// On success the user is returned, with its roles, even if disabled or
// expired: the caller decides with u.Check, and fetches the roles with
// RolesNamed. Any other error (the database failing, ctx done) is returned
// wrapped and does not wrap accounts.ErrInvalidCredentials.
//
// Authenticate runs one read-only statement and never writes, whatever the
// outcome: a hash that needs rehashing is rehashed only by Rehash, which the
// relay calls after it has granted the login, so that a refused login with
// the right password (disabled, expired, locked out) costs what a wrong one
// costs.
//
// The dummy verification runs at db.Params, so until then a user whose hash
// has other costs takes a different time for a wrong password than an
// unknown user.
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
	u, err := scanUser(db.stmts.user.QueryRowContext(ctx, name), &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Two verifications, as a wrong password of a known user costs.
		for range 2 {
			if err := db.verifyDummy(password); err != nil {
				return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, err)
			}
		}
		return invalid()
	case err != nil:
		return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, err)
	}
	ok, err := VerifyPassword(hash, password)
	if err != nil {
		return accounts.User{}, fmt.Errorf("authenticate %q: stored %w", name, err)
	}
	if ok {
		return u, nil
	}
	// A wrong password is tried against the user's previous one, replaced
	// lately, or else against the dummy hash: two verifications either way,
	// so that the time does not tell who replaced a password lately.
	var previous string
	var until int64
	err = db.q(ctx).QueryRowContext(ctx, `SELECT previous_hash, until FROM password_graces WHERE user = ?`, name).Scan(&previous, &until)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := db.verifyDummy(password); err != nil {
			return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, err)
		}
		return invalid()
	case err != nil:
		return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, err)
	}
	if ok, err := VerifyPassword(previous, password); err != nil || !ok {
		return invalid()
	}
	end := time.Unix(0, until)
	if !db.now().Before(end) {
		return accounts.User{}, fmt.Errorf("authenticate %q: %w", name, accounts.ErrStaleCredentials)
	}
	// Within its grace: a login whose JWT, and so whose connection, ends
	// with the grace.
	u.Grace = end
	if u.Expires.IsZero() || end.Before(u.Expires) {
		u.Expires = end
	}
	return u, nil
}

// Rehash brings the stored hash of the user called name to db.Params, after
// a login with password was granted: if the stored hash NeedsRehash, it
// verifies password against it again (the hash may have changed since) and
// stores a new hash of password at db.Params, unless the stored hash has
// changed meanwhile. It does this once per user, waits at most 50 ms for
// another writer, and never fails anything: a rehash not done is tried again
// at the next login, and each outcome goes to db.OnRehash. It runs one
// read-only statement when there is nothing to do. In cluster mode it
// never writes: it queues the new hash for RehashLoop, which stores it
// through the cluster log.
func (db *DB) Rehash(ctx context.Context, name, password string) {
	if accounts.ValidateName(name) != nil || password == "" || len(password) > MaxPasswordLen {
		return
	}
	var hash string
	if _, err := scanUser(db.stmts.user.QueryRowContext(ctx, name), &hash); err != nil {
		if !errors.Is(err, sql.ErrNoRows) && db.OnRehash != nil {
			db.OnRehash(name, fmt.Errorf("rehash password of %q: %w", name, err))
		}
		return
	}
	if !NeedsRehash(hash, db.params()) {
		return
	}
	if ok, err := VerifyPassword(hash, password); err != nil || !ok {
		return
	}
	db.rehash(ctx, name, hash, password)
}

// VerifyDummy verifies password against a hash that no password matches, at
// the current parameters, for a login refused without looking at the user's
// own hash (a locked-out attempt), so that it costs what a wrong password
// costs.
func (db *DB) VerifyDummy(ctx context.Context, password string) error {
	if password == "" || len(password) > MaxPasswordLen {
		return nil
	}
	if err := db.verifyDummy(password); err != nil {
		return fmt.Errorf("verify dummy password: %w", err)
	}
	return nil
}

// authenticateQuery reads the user Authenticate checks, hash first.
const authenticateQuery = `SELECT password_hash, ` + userColumns + ` FROM users WHERE name = ?`

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
	if p := db.params(); db.dummyHash == "" || db.dummyParams != p {
		hash, err := HashPassword(rand.Text(), p)
		if err != nil {
			return "", fmt.Errorf("dummy password hash: %w", err)
		}
		db.dummyHash, db.dummyParams = hash, p
	}
	return db.dummyHash, nil
}

// prepareUser checks u as accounts does, and that its expiry can be stored,
// and returns it as the store keeps it: Roles without duplicates, Src and
// ConnTypes canonical and without duplicates, none of the three nil.
func prepareUser(u accounts.User) (accounts.User, error) {
	if err := u.Validate(); err != nil {
		return u, err
	}
	if !u.Expires.IsZero() {
		if y := u.Expires.UTC().Year(); y < 1970 || y > 9999 {
			return u, fmt.Errorf("expiry %s is out of range: give a time between the years 1970 and 9999", u.Expires.Format(time.RFC3339))
		}
	}
	u.Roles = dedupe(u.Roles)
	src := make([]string, 0, len(u.Src))
	for _, s := range u.Src {
		p, err := accounts.ParseSource(s)
		if err != nil {
			return u, err
		}
		src = append(src, p.String())
	}
	u.Src = dedupe(src)
	types := make([]string, 0, len(u.ConnTypes))
	for _, c := range u.ConnTypes {
		c, err := accounts.ParseConnType(c)
		if err != nil {
			return u, err
		}
		types = append(types, c)
	}
	u.ConnTypes = dedupe(types)
	return u, nil
}

// dedupe returns the strings of list in order, each once, in a new non-nil
// slice.
func dedupe(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// userCols are the JSON columns of a user.
type userCols struct {
	perms, src, connTypes string
}

func marshalUser(u accounts.User) (userCols, error) {
	var c userCols
	for _, f := range []struct {
		dst *string
		v   any
	}{{&c.perms, u.Permissions}, {&c.src, u.Src}, {&c.connTypes, u.ConnTypes}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return userCols{}, err
		}
		*f.dst = string(b)
	}
	return c, nil
}

// setRoles makes roles, in order, the roles of the user called name. It
// returns an error wrapping ErrUnknownRole, naming them, if some of roles do
// not exist.
func setRoles(ctx context.Context, tx *sql.Tx, op, name string, roles []string) error {
	list, err := json.Marshal(roles)
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT value FROM json_each(?)
		WHERE value NOT IN (SELECT name FROM roles)
		ORDER BY key`, string(list))
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	missing, err := scanStrings(rows)
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	if len(missing) > 0 {
		return unknownRoles(op, name, missing)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM user_roles WHERE user = ?`, name); err != nil {
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	for i, r := range roles {
		_, err := tx.ExecContext(ctx, `INSERT INTO user_roles (user, role, position) VALUES (?, ?, ?)`, name, r, i)
		switch {
		case isForeignKey(err):
			return unknownRoles(op, name, []string{r})
		case err != nil:
			return fmt.Errorf("%s %q: role %q: %w", op, name, r, err)
		}
	}
	return nil
}

func unknownRoles(op, user string, roles []string) error {
	if len(roles) == 1 {
		return fmt.Errorf("%s %q: %w %q: create it first with 'authrelay role add %s'", op, user, ErrUnknownRole, roles[0], roles[0])
	}
	return fmt.Errorf("%s %q: %w %s: create them first with 'authrelay role add'", op, user, ErrUnknownRole, quoteList(roles, len(roles)))
}

// scanStrings reads rows of one text column and closes rows. The list is
// empty, not nil, when there are no rows.
func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	list := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		list = append(list, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return list, nil
}

// quoteList quotes the first n names of list, separated by commas, and says
// how many more there are.
func quoteList(list []string, n int) string {
	var b strings.Builder
	for i, s := range list {
		if i == n {
			fmt.Fprintf(&b, " and %d more", len(list)-n)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", s)
	}
	return b.String()
}

// checkReserved returns ErrReservedAccount, wrapped with op, if acct is one
// of db.ReservedAccounts.
func (db *DB) checkReserved(op, acct string) error {
	if db.ReservedAccounts == nil {
		return nil
	}
	reserved, err := db.ReservedAccounts()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, r := range reserved {
		switch {
		case r == acct:
			return fmt.Errorf("%s: account %q is a %w: it is the callout or system account of the server", op, acct, ErrReservedAccount)
		case strings.EqualFold(r, acct):
			return fmt.Errorf("%s: account %q differs only in case from %q, a %w (the callout or system account of the server): choose another name", op, acct, r, ErrReservedAccount)
		}
	}
	return nil
}

// unknownAccount returns ErrUnknownAccount for u's account, naming an
// account whose name differs only in case if there is one.
func (db *DB) unknownAccount(ctx context.Context, op string, u accounts.User) error {
	var other string
	err := db.q(ctx).QueryRowContext(ctx, `SELECT name FROM accounts WHERE name = ? COLLATE NOCASE LIMIT 1`, u.Account).Scan(&other)
	if err == nil && other != u.Account {
		return fmt.Errorf("%s %q: %w %q: account names are case-sensitive; did you mean %q?", op, u.Name, ErrUnknownAccount, u.Account, other)
	}
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

// userColumns are the columns scanUser reads, in order, from users. The roles
// come from a subquery so that one statement reads a consistent user.
const userColumns = `name, account, permissions, disabled, expires, src, conn_types,
	(SELECT json_group_array(user_roles.role ORDER BY user_roles.position)
	 FROM user_roles WHERE user_roles.user = users.name),
	created, updated`

type scanner interface {
	Scan(dest ...any) error
}

// scanUser scans a row of the columns first, then userColumns.
func scanUser(row scanner, first ...any) (accounts.User, error) {
	var (
		u                accounts.User
		perms            string
		expires          sql.NullString
		src, connTypes   string
		roles            string
		created, updated string
	)
	dest := append(first, &u.Name, &u.Account, &perms, &u.Disabled, &expires, &src, &connTypes, &roles, &created, &updated)
	if err := row.Scan(dest...); err != nil {
		return accounts.User{}, err
	}
	if err := json.Unmarshal([]byte(perms), &u.Permissions); err != nil {
		return accounts.User{}, fmt.Errorf("user %q: stored permissions: %w", u.Name, err)
	}
	var err error
	if u.Roles, err = unmarshalList(roles); err != nil {
		return accounts.User{}, fmt.Errorf("user %q: stored roles: %w", u.Name, err)
	}
	if u.Src, err = unmarshalList(src); err != nil {
		return accounts.User{}, fmt.Errorf("user %q: stored source networks: %w", u.Name, err)
	}
	if u.ConnTypes, err = unmarshalList(connTypes); err != nil {
		return accounts.User{}, fmt.Errorf("user %q: stored connection types: %w", u.Name, err)
	}
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

// unmarshalList decodes a JSON array of strings into a non-nil slice.
func unmarshalList(s string) ([]string, error) {
	list := []string{}
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, err
	}
	if list == nil {
		list = []string{}
	}
	return list, nil
}
