package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// A user's credentials beside the password (nkeys, API tokens, TLS
// certificate bindings) are rows of the credentials table (0017), each
// naming one user by a (kind, value) no other row has. Adding one gives the
// user a new version (the caches verify again) and closes nothing;
// removing one closes the user's connections (the change feed), whose
// clients reconnect with what they hold.

// AddUserWith adds u as AddUser does, with password and the credentials
// creds (their User is set to u.Name), in one transaction. password may be
// "" when creds is not empty: the user then has no password (its row keeps
// the hash of a random secret nobody knows, so a password login of it
// fails as a wrong password does, at the same cost).
func (db *DB) AddUserWith(ctx context.Context, u accounts.User, password string, creds []accounts.StoredCredential) error {
	u, err := prepareUser(u)
	if err != nil {
		return fmt.Errorf("%s: %w", addUserOp(u.Name), err)
	}
	passwordSet := password != ""
	switch {
	case !passwordSet && len(creds) == 0:
		return fmt.Errorf("add user %q: give a password or another credential (an nkey, a certificate)", u.Name)
	case passwordSet:
		if err := ValidatePassword(password); err != nil {
			return fmt.Errorf("add user %q: %w", u.Name, err)
		}
	default:
		password = rand.Text() + rand.Text()
	}
	hash, err := HashPassword(password, db.params())
	if err != nil {
		return fmt.Errorf("add user %q: %w", u.Name, err)
	}
	for i := range creds {
		creds[i].User = u.Name
		if err := checkCredential(creds[i]); err != nil {
			return fmt.Errorf("add user %q: %w", u.Name, err)
		}
	}
	return db.addUserTx(ctx, u, hash, passwordSet, creds)
}

// checkCredential checks a credential before it is stored.
func checkCredential(c accounts.StoredCredential) error {
	if c.Kind == accounts.CredOIDC {
		// A binding to an identity provider: Value is its name.
		if c.Value == "" || len(c.Value) > accounts.MaxNameLen || strings.ContainsFunc(c.Value, func(r rune) bool { return r <= 0x20 || r == 0x7f }) {
			return fmt.Errorf("identity provider name %s: 1 to %d printable bytes", accounts.ClientText(c.Value), accounts.MaxNameLen)
		}
		return nil
	}
	if c.Kind == accounts.CredToken {
		if len(c.Value) != 64 {
			return errors.New("a token is stored as the hex SHA-256 of it (accounts.TokenDigest)")
		}
	} else if v, err := accounts.ParseCredential(c.Kind, c.Value); err != nil {
		return err
	} else if v != c.Value {
		return fmt.Errorf("credential %s: not in the stored form (accounts.ParseCredential)", c.Kind)
	}
	if len(c.Name) > accounts.MaxNameLen || strings.ContainsFunc(c.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("a credential's name is at most %d bytes of printable text", accounts.MaxNameLen)
	}
	return nil
}

// AddCredential binds c (Kind, Value in the form accounts.ParseCredential
// returns or a token's digest, User, Name, Expires) to its user. It
// returns ErrNotFound when there is no such user and ErrExists, naming the
// user that holds it, when the value is bound already.
func (db *DB) AddCredential(ctx context.Context, c accounts.StoredCredential) error {
	op := fmt.Sprintf("add %s to user %q", c.Kind, c.User)
	if err := checkCredential(c); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	if err := insertCredential(ctx, tx.Tx, c, db.now()); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return tx.Commit()
}

// insertCredential writes c in tx. A CredOIDC credential binds the user
// to the identity provider its Value names (user_idps, 0018).
func insertCredential(ctx context.Context, tx *sql.Tx, c accounts.StoredCredential, now time.Time) error {
	if c.Kind == accounts.CredOIDC {
		return bindProvider(ctx, tx, c.User, c.Value)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO credentials (kind, value, user, name, created, expires) VALUES (?, ?, ?, ?, ?, ?)`,
		string(c.Kind), c.Value, c.User, c.Name, formatTime(now), expiresValue(c.Expires))
	switch {
	case isDuplicate(err):
		var holder string
		if err := tx.QueryRowContext(ctx, `SELECT user FROM credentials WHERE kind = ? AND value = ?`, string(c.Kind), c.Value).Scan(&holder); err != nil {
			return fmt.Errorf("this %s %w", c.Kind, ErrExists)
		}
		return fmt.Errorf("this %s is bound to user %q %w", c.Kind, holder, ErrExists)
	case isForeignKey(err):
		return fmt.Errorf("user %q %w", c.User, ErrNotFound)
	}
	return err
}

// RemoveCredential removes the credential of kind whose value is value, or,
// for a token, whose digest starts with value (its TokenID), and returns
// it. It returns ErrNotFound when there is none, and an error when a token
// ID names more than one.
func (db *DB) RemoveCredential(ctx context.Context, kind accounts.CredentialKind, value string) (accounts.StoredCredential, error) {
	op := fmt.Sprintf("remove %s", kind)
	tx, err := db.begin(ctx)
	if err != nil {
		return accounts.StoredCredential{}, fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	list, err := queryCredentials(ctx, tx.Tx, credentialMatch(kind, value))
	if err != nil {
		return accounts.StoredCredential{}, fmt.Errorf("%s: %w", op, err)
	}
	switch len(list) {
	case 0:
		return accounts.StoredCredential{}, fmt.Errorf("%s: %s %w", op, accounts.ClientText(value), ErrNotFound)
	case 1:
	default:
		return accounts.StoredCredential{}, fmt.Errorf("%s: %s names %d of them: give more of it", op, accounts.ClientText(value), len(list))
	}
	c := list[0]
	if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE kind = ? AND value = ?`, string(c.Kind), c.Value); err != nil {
		return accounts.StoredCredential{}, fmt.Errorf("%s: %w", op, err)
	}
	return c, tx.Commit()
}

// match is a WHERE clause of the credentials table with its arguments.
type match struct {
	where string
	args  []any
}

// credentialMatch selects the credential of kind with value, or the
// tokens whose digest starts with value.
func credentialMatch(kind accounts.CredentialKind, value string) match {
	if kind == accounts.CredToken && len(value) < 64 {
		v := strings.ToLower(value)
		if strings.Trim(v, "0123456789abcdef") != "" || len(v) < 8 {
			// Never a prefix of a digest: match nothing.
			return match{where: `0`}
		}
		return match{where: `kind = ? AND substr(value, 1, ?) = ?`, args: []any{string(kind), len(v), v}}
	}
	return match{where: `kind = ? AND value = ?`, args: []any{string(kind), value}}
}

// Credentials returns the credentials of kind ("" for every kind) of the
// user called name ("" for every user), sorted by user, kind and creation.
func (db *DB) Credentials(ctx context.Context, name string, kind accounts.CredentialKind) ([]accounts.StoredCredential, error) {
	m := match{where: `1`}
	if name != "" {
		m.where += ` AND user = ?`
		m.args = append(m.args, name)
	}
	if kind != "" {
		m.where += ` AND kind = ?`
		m.args = append(m.args, string(kind))
	}
	list, err := queryCredentials(ctx, db.q(ctx), m)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return list, nil
}

func queryCredentials(ctx context.Context, q querier, m match) ([]accounts.StoredCredential, error) {
	rows, err := q.QueryContext(ctx, `SELECT kind, value, user, name, created, expires FROM credentials WHERE `+m.where+
		` ORDER BY user, kind, created, value`, m.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []accounts.StoredCredential
	for rows.Next() {
		var c accounts.StoredCredential
		var kind, created string
		var expires sql.NullString
		if err := rows.Scan(&kind, &c.Value, &c.User, &c.Name, &created, &expires); err != nil {
			return nil, err
		}
		c.Kind = accounts.CredentialKind(kind)
		if c.Created, err = parseTime(created); err != nil {
			return nil, err
		}
		if expires.Valid {
			if c.Expires, err = parseTime(expires.String); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// HasPassword reports whether the user called name has a password (one
// added with only other credentials has none until 'user passwd').
func (db *DB) HasPassword(ctx context.Context, name string) (bool, error) {
	var set bool
	err := db.q(ctx).QueryRowContext(ctx, `SELECT password_set FROM users WHERE name = ?`, name).Scan(&set)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("look up user: user %q %w", name, ErrNotFound)
	case err != nil:
		return false, fmt.Errorf("look up user %q: %w", name, err)
	}
	return set, nil
}

// credentialUserQuery reads, for a credential, its expiry, the user's
// version and the user, in one statement.
const credentialUserQuery = `SELECT cexp, COALESCE((SELECT v FROM user_versions WHERE user_versions.user = users.name), 0), ` + userColumns + `
	FROM (SELECT user AS cuser, expires AS cexp FROM credentials WHERE kind = ? AND value = ?)
	JOIN users ON users.name = cuser`

// CredentialUser returns the user a credential of kind with value names
// (see accounts.Credential.Lookup), with the user's version
// (UserVersion), for a login the relay has verified the credential of. It
// returns an error for which errors.Is(err, accounts.ErrInvalidCredentials)
// holds when no user has it, or it has expired. It runs one read-only
// statement and never writes.
//
// For CredOIDC, value is accounts.OIDCValue(provider, username): the user
// of that name bound to that provider, while the provider exists.
func (db *DB) CredentialUser(ctx context.Context, kind accounts.CredentialKind, value string) (accounts.User, int64, error) {
	if value == "" || len(value) > 2*maxSubjectValue {
		return accounts.User{}, 0, fmt.Errorf("authenticate %s: %w", kind, accounts.ErrInvalidCredentials)
	}
	var expires sql.NullString
	var ver int64
	row := func() *sql.Row { return db.stmts.credUser.QueryRowContext(ctx, string(kind), value) }
	if kind == accounts.CredOIDC {
		provider, name, ok := strings.Cut(value, "\x00")
		if !ok {
			return accounts.User{}, 0, fmt.Errorf("authenticate %s: %w", kind, accounts.ErrInvalidCredentials)
		}
		row = func() *sql.Row { return db.stmts.idpUser.QueryRowContext(ctx, provider, name) }
	}
	u, err := scanUser(row(), &expires, &ver)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return accounts.User{}, 0, fmt.Errorf("authenticate %s: %w", kind, accounts.ErrInvalidCredentials)
	case err != nil:
		return accounts.User{}, 0, fmt.Errorf("authenticate %s: %w", kind, err)
	}
	if expires.Valid {
		t, err := parseTime(expires.String)
		if err != nil {
			return accounts.User{}, 0, fmt.Errorf("authenticate %s of %q: %w", kind, u.Name, err)
		}
		if !db.now().Before(t) {
			return accounts.User{}, 0, fmt.Errorf("authenticate %s of %q: expired: %w", kind, u.Name, accounts.ErrInvalidCredentials)
		}
		// No JWT outlives the token it was granted for.
		if u.Expires.IsZero() || t.Before(u.Expires) {
			u.Expires = t
		}
	}
	return u, ver, nil
}

// maxSubjectValue bounds a credential value the relay looks up.
const maxSubjectValue = 1024

// SetCredentials removes the user's credentials of the kinds in clear,
// then adds add (their User set to name), in one transaction. It returns
// ErrNotFound if there is no such user, and ErrExists, naming the holder,
// for a value another user (or this one) has.
func (db *DB) SetCredentials(ctx context.Context, name string, clear []accounts.CredentialKind, add []accounts.StoredCredential) error {
	op := fmt.Sprintf("set credentials of %q", name)
	for i := range add {
		add[i].User = name
		if err := checkCredential(add[i]); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, name).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("set credentials: user %q %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, k := range clear {
		if _, err := tx.ExecContext(ctx, `DELETE FROM credentials WHERE user = ? AND kind = ?`, name, string(k)); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	for _, c := range add {
		if err := insertCredential(ctx, tx.Tx, c, db.now()); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return tx.Commit()
}

// credentialVersionQuery reads, for a credential, its user, the user's
// version and the credential's expiry: what a cached grant is checked
// against.
const credentialVersionQuery = `SELECT user, COALESCE((SELECT v FROM user_versions WHERE user_versions.user = credentials.user), 0), expires
	FROM credentials WHERE kind = ? AND value = ?`

// CredentialVersion returns the name of the user a credential of kind
// with value names and the user's version (UserVersion), without reading
// the user: what the relay checks a cached grant against. Its errors are
// CredentialUser's. It runs one read-only statement and never writes.
func (db *DB) CredentialVersion(ctx context.Context, kind accounts.CredentialKind, value string) (string, int64, error) {
	if value == "" || len(value) > 2*maxSubjectValue {
		return "", 0, fmt.Errorf("authenticate %s: %w", kind, accounts.ErrInvalidCredentials)
	}
	var name string
	var ver int64
	var expires sql.NullString
	err := db.stmts.credVersion.QueryRowContext(ctx, string(kind), value).Scan(&name, &ver, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", 0, fmt.Errorf("authenticate %s: %w", kind, accounts.ErrInvalidCredentials)
	case err != nil:
		return "", 0, fmt.Errorf("authenticate %s: %w", kind, err)
	}
	if expires.Valid {
		t, err := parseTime(expires.String)
		if err != nil {
			return "", 0, fmt.Errorf("authenticate %s of %q: %w", kind, name, err)
		}
		if !db.now().Before(t) {
			return "", 0, fmt.Errorf("authenticate %s of %q: expired: %w", kind, name, accounts.ErrInvalidCredentials)
		}
	}
	return name, ver, nil
}

// CredentialSummary returns what the user called name may log in with
// (accounts.CredentialSummary), or ErrNotFound.
func (db *DB) CredentialSummary(ctx context.Context, name string) (accounts.CredentialSummary, error) {
	s := accounts.CredentialSummary{Nkeys: []string{}, TLSSubjects: []string{}, TLSFingerprints: []string{}}
	var err error
	if s.Password, err = db.HasPassword(ctx, name); err != nil {
		return s, err
	}
	list, err := db.Credentials(ctx, name, "")
	if err != nil {
		return s, err
	}
	for _, c := range list {
		switch c.Kind {
		case accounts.CredNkey:
			s.Nkeys = append(s.Nkeys, c.Value)
		case accounts.CredTLSSubject:
			s.TLSSubjects = append(s.TLSSubjects, c.Value)
		case accounts.CredTLSFingerprint:
			s.TLSFingerprints = append(s.TLSFingerprints, c.Value)
		case accounts.CredToken:
			s.Tokens++
		}
	}
	if s.Provider, err = db.UserProvider(ctx, name); err != nil {
		return s, err
	}
	return s, nil
}
