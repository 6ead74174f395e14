package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/authrelay/authrelay/accounts"
)

// Identity providers (0018) are replicated state, as users are: adding,
// changing or removing one is an admin change. A user is bound to one
// provider by a row of user_idps (a CredOIDC credential whose Value is the
// provider's name, through AddUserWith or SetCredentials); removing the
// provider closes its users' connections (the change feed) and the login
// query, which joins identity_providers, finds none of them until a
// provider of that name is added again.

// idpUserQuery reads, for an identity provider's token, the user of that
// name bound to that provider while the provider exists, with the user's
// version, as credentialUserQuery does (no credential expiry: the token's
// own caps the session).
const idpUserQuery = `SELECT NULL, COALESCE((SELECT v FROM user_versions WHERE user_versions.user = users.name), 0), ` + userColumns + `
	FROM (SELECT user_idps.user AS iuser FROM user_idps
		JOIN identity_providers ON identity_providers.name = user_idps.provider
		WHERE user_idps.provider = ? AND user_idps.user = ?)
	JOIN users ON users.name = iuser`

// bindProvider binds user to the identity provider called provider, which
// must exist.
func bindProvider(ctx context.Context, tx *sql.Tx, user, provider string) error {
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM identity_providers WHERE name = ?`, provider).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("identity provider %q %w: add it with 'authrelay idp add', see 'authrelay idp list'", provider, ErrUnknownProvider)
	case err != nil:
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO user_idps (user, provider) VALUES (?, ?)
		ON CONFLICT (user) DO UPDATE SET provider = excluded.provider WHERE provider IS NOT excluded.provider`, user, provider)
	if isForeignKey(err) {
		return fmt.Errorf("user %q %w", user, ErrNotFound)
	}
	return err
}

// AddIdentityProvider adds p (checked by the caller: idp.Provider.Validate).
// It returns ErrExists for a name, or an issuer and audience, another
// provider has.
func (db *DB) AddIdentityProvider(ctx context.Context, p accounts.IdentityProvider) error {
	op := fmt.Sprintf("add identity provider %q", p.Name)
	if p.Name == "" || p.Issuer == "" || p.Audience == "" {
		return fmt.Errorf("%s: a provider has a name, an issuer and an audience", op)
	}
	rm := p.RoleMap
	if rm == nil {
		rm = map[string]string{}
	}
	roleMap, err := json.Marshal(rm)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer tx.Rollback()
	if p.Account != "" {
		var one int
		switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE name = ?`, p.Account).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s: account %q %w", op, p.Account, ErrNotFound)
		case err != nil:
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO identity_providers (name, issuer, audience, account, username_claim, roles_claim, role_map, create_users, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.Name, p.Issuer, p.Audience, p.Account, p.UsernameClaim, p.RolesClaim, string(roleMap), p.CreateUsers, formatTime(db.now()))
	switch {
	case isDuplicate(err):
		var holder string
		if qerr := tx.QueryRowContext(ctx, `SELECT name FROM identity_providers WHERE name = ? OR (issuer = ? AND audience = ?)`, p.Name, p.Issuer, p.Audience).Scan(&holder); qerr == nil && holder != p.Name {
			return fmt.Errorf("%s: provider %q has that issuer and audience: it %w", op, holder, ErrExists)
		}
		return fmt.Errorf("%s: it %w", op, ErrExists)
	case err != nil:
		return fmt.Errorf("%s: %w", op, err)
	}
	return tx.Commit()
}

const providerColumns = `name, issuer, audience, account, username_claim, roles_claim, role_map, create_users, created,
	(SELECT json_group_array(user ORDER BY user) FROM user_idps WHERE provider = identity_providers.name)`

func scanProvider(row scanner) (accounts.IdentityProvider, error) {
	var p accounts.IdentityProvider
	var roleMap, created, users string
	if err := row.Scan(&p.Name, &p.Issuer, &p.Audience, &p.Account, &p.UsernameClaim, &p.RolesClaim, &roleMap, &p.CreateUsers, &created, &users); err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(roleMap), &p.RoleMap); err != nil {
		return p, fmt.Errorf("provider %q: role map: %w", p.Name, err)
	}
	if err := json.Unmarshal([]byte(users), &p.Users); err != nil {
		return p, fmt.Errorf("provider %q: users: %w", p.Name, err)
	}
	t, err := parseTime(created)
	if err != nil {
		return p, fmt.Errorf("provider %q: %w", p.Name, err)
	}
	p.Created = t
	return p, nil
}

// IdentityProviders returns every identity provider, by name, each with
// its users.
func (db *DB) IdentityProviders(ctx context.Context) ([]accounts.IdentityProvider, error) {
	rows, err := db.q(ctx).QueryContext(ctx, `SELECT `+providerColumns+` FROM identity_providers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list identity providers: %w", err)
	}
	defer rows.Close()
	var out []accounts.IdentityProvider
	for rows.Next() {
		p, err := scanProvider(rows)
		if err != nil {
			return nil, fmt.Errorf("list identity providers: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list identity providers: %w", err)
	}
	return out, nil
}

// IdentityProvider returns the provider called name, or ErrNotFound.
func (db *DB) IdentityProvider(ctx context.Context, name string) (accounts.IdentityProvider, error) {
	p, err := scanProvider(db.q(ctx).QueryRowContext(ctx, `SELECT `+providerColumns+` FROM identity_providers WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return p, fmt.Errorf("look up identity provider: %q %w", name, ErrNotFound)
	case err != nil:
		return p, fmt.Errorf("look up identity provider %q: %w", name, err)
	}
	return p, nil
}

// ProviderUsers returns the names of the users bound to the provider
// called name, sorted.
func (db *DB) ProviderUsers(ctx context.Context, name string) ([]string, error) {
	rows, err := db.q(ctx).QueryContext(ctx, `SELECT user FROM user_idps WHERE provider = ? ORDER BY user`, name)
	if err != nil {
		return nil, fmt.Errorf("list users of identity provider %q: %w", name, err)
	}
	list, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("list users of identity provider %q: %w", name, err)
	}
	return list, nil
}

// RemoveIdentityProvider removes the provider called name, or returns
// ErrNotFound, and returns its users. Their connections are closed (the
// change feed) and they cannot log in until a provider of that name is
// added again; their bindings stay.
func (db *DB) RemoveIdentityProvider(ctx context.Context, name string) ([]string, error) {
	users, err := db.ProviderUsers(ctx, name)
	if err != nil {
		return nil, err
	}
	return users, db.removeIdentityProvider(ctx, name)
}

func (db *DB) removeIdentityProvider(ctx context.Context, name string) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("remove identity provider %q: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM identity_providers WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("remove identity provider %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("remove identity provider %q: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("remove identity provider: %q %w", name, ErrNotFound)
	}
	return tx.Commit()
}

// UserProvider returns the name of the identity provider the user called
// name is bound to, or "" when it is bound to none or there is no such
// user. It is one read, for the relay's decision on a username whose
// password is shaped as a JWT (accounts.Presented).
func (db *DB) UserProvider(ctx context.Context, name string) (string, error) {
	var p string
	err := db.q(ctx).QueryRowContext(ctx, `SELECT provider FROM user_idps WHERE user = ?`, name).Scan(&p)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("look up the identity provider of %q: %w", name, err)
	}
	return p, nil
}

// ErrUnknownProvider means a user was to be bound to an identity provider
// that does not exist.
var ErrUnknownProvider = errors.New("is not configured")

// ErrNameTaken is accounts.ErrNameTaken.
var ErrNameTaken = accounts.ErrNameTaken

// CreateIdentityUser creates u (no password: its row keeps the hash of a
// random secret nobody knows) bound to the identity provider called
// provider, as an admin change by actor with its audit row, for a login
// of an unknown subject of a provider with create_users. Roles of u that
// do not exist are left out. It returns ErrNameTaken when a user of that
// name exists and is bound to another provider or to none, and nil when
// one bound to provider exists already (another login created it).
func (db *DB) CreateIdentityUser(ctx context.Context, actor string, u accounts.User, provider string) error {
	u, err := prepareUser(u)
	if err != nil {
		return fmt.Errorf("create user %q of identity provider %q: %w", u.Name, provider, err)
	}
	hash, err := db.unusable.get(db.params())
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Name, err)
	}
	existed := false
	err = db.Admin(ctx, actor, "user add", func(ctx context.Context) (string, error) {
		tx, err := db.begin(ctx)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		var bound sql.NullString
		switch err := tx.QueryRowContext(ctx, `SELECT user_idps.provider FROM users LEFT JOIN user_idps ON user_idps.user = users.name WHERE users.name = ?`, u.Name).Scan(&bound); {
		case err == nil && bound.Valid && bound.String == provider:
			existed = true
			return "", errExisted
		case err == nil:
			return "", ErrNameTaken
		case !errors.Is(err, sql.ErrNoRows):
			return "", err
		}
		roles := []string{}
		for _, r := range u.Roles {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM roles WHERE name = ?`, r).Scan(&one); err == nil {
				roles = append(roles, r)
			} else if !errors.Is(err, sql.ErrNoRows) {
				return "", err
			}
		}
		u.Roles = roles
		if err := tx.Commit(); err != nil {
			return "", err
		}
		if err := db.addUserTx(ctx, u, hash, false, []accounts.StoredCredential{{Kind: accounts.CredOIDC, Value: provider, User: u.Name}}); err != nil {
			return "", err
		}
		detail, err := json.Marshal(map[string]any{"user": u.Name, "account": u.Account, "idp": provider, "roles": roles, "created_on_login": true})
		return string(detail), err
	})
	switch {
	case existed:
		return nil
	case errors.Is(err, ErrNameTaken):
		return fmt.Errorf("create user %q of identity provider %q: %w", u.Name, provider, ErrNameTaken)
	case err != nil:
		return fmt.Errorf("create user %q of identity provider %q: %w", u.Name, provider, err)
	}
	return nil
}

// unusableHash is the hash, at the hash policy, of a random secret that is
// never kept: the password of every user CreateIdentityUser creates. A
// password login of one costs a verification and fails, as a wrong
// password does; sharing it tells nothing (nobody knows the secret), and
// a login that creates a user pays no hash.
type unusableHash struct {
	mu     sync.Mutex
	params Argon2Params
	hash   string
}

func (h *unusableHash) get(p Argon2Params) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hash != "" && h.params == p {
		return h.hash, nil
	}
	hash, err := HashPassword(rand.Text()+rand.Text(), p)
	if err != nil {
		return "", err
	}
	h.params, h.hash = p, hash
	return hash, nil
}

// errExisted ends CreateIdentityUser's change when another login created
// the user first.
var errExisted = errors.New("created by another login")
