package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
)

// AddAccount adds a NATS account, without limits, that users can be placed
// in. It returns ErrExists if the account is already known.
func (db *DB) AddAccount(ctx context.Context, name string) error {
	return db.AddAccountWithLimits(ctx, accounts.Account{Name: name})
}

// AddAccountWithLimits adds a NATS account with its limits. It returns
// ErrExists if the account is already known, or if one whose name differs
// only in case is: nats-server tells SHOP and shop apart, people reading a
// user list do not.
func (db *DB) AddAccountWithLimits(ctx context.Context, a accounts.Account) error {
	if err := accounts.ValidateAccount(a.Name); err != nil {
		return fmt.Errorf("add account: %w", err)
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("add account %q: %w", a.Name, err)
	}
	if err := db.checkReserved("add account", a.Name); err != nil {
		return err
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("add account %q: %w", a.Name, err)
	}
	defer tx.Rollback()
	// In the same write transaction as the insert (BEGIN IMMEDIATE), so
	// that two processes adding SHOP and shop at once cannot both pass.
	if err := sameButCase(ctx, tx, "add account", a.Name); err != nil {
		return err
	}
	l, js := a.Limits, a.JetStreamLimits
	_, err = tx.ExecContext(ctx, `
		INSERT INTO accounts (name, created, max_connections, max_subs, max_payload, jetstream,
			js_max_memory, js_max_storage, js_max_streams, js_max_consumers)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Name, formatTime(db.now()), l.MaxConnections, l.MaxSubs, l.MaxPayload, a.JetStream,
		js.MaxMemory, js.MaxStorage, js.MaxStreams, js.MaxConsumers)
	switch {
	case isDuplicate(err):
		return fmt.Errorf("add account: account %q %w", a.Name, ErrExists)
	case err != nil:
		return fmt.Errorf("add account %q: %w", a.Name, err)
	}
	return tx.Commit()
}

// Accounts returns the names of all accounts, sorted.
func (db *DB) Accounts(ctx context.Context) ([]string, error) {
	// A single statement reads one consistent snapshot. It runs outside a
	// transaction because every transaction here begins IMMEDIATE, which
	// would take the write lock for a read.
	rows, err := db.q(ctx).QueryContext(ctx, `SELECT name FROM accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	names, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return names, nil
}

// accountColumns are the columns scanAccount reads, in order.
const accountColumns = `name, max_connections, max_subs, max_payload, jetstream,
	js_max_memory, js_max_storage, js_max_streams, js_max_consumers`

// AccountList returns all accounts with their limits, sorted by name.
func (db *DB) AccountList(ctx context.Context) ([]accounts.Account, error) {
	// Reads run outside a transaction; see Accounts.
	rows, err := db.q(ctx).QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	list := []accounts.Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		list = append(list, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return list, nil
}

// Account returns the account called name with its limits, or ErrNotFound.
func (db *DB) Account(ctx context.Context, name string) (accounts.Account, error) {
	a, err := scanAccount(db.q(ctx).QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE name = ?`, name))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return accounts.Account{}, fmt.Errorf("look up account: account %q %w", name, ErrNotFound)
	case err != nil:
		return accounts.Account{}, fmt.Errorf("look up account %q: %w", name, err)
	}
	return a, nil
}

func scanAccount(row scanner) (accounts.Account, error) {
	var a accounts.Account
	js := &a.JetStreamLimits
	err := row.Scan(&a.Name, &a.Limits.MaxConnections, &a.Limits.MaxSubs, &a.Limits.MaxPayload, &a.JetStream,
		&js.MaxMemory, &js.MaxStorage, &js.MaxStreams, &js.MaxConsumers)
	return a, err
}

// SetAccountJetStream enables or disables JetStream for the account called
// name; disabling it removes the account's JetStream limits too. It returns
// ErrNotFound if there is no such account.
func (db *DB) SetAccountJetStream(ctx context.Context, name string, on bool) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("set jetstream of account %q: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `
		UPDATE accounts SET jetstream = ?,
			js_max_memory = CASE WHEN ? THEN js_max_memory ELSE 0 END,
			js_max_storage = CASE WHEN ? THEN js_max_storage ELSE 0 END,
			js_max_streams = CASE WHEN ? THEN js_max_streams ELSE 0 END,
			js_max_consumers = CASE WHEN ? THEN js_max_consumers ELSE 0 END
		WHERE name = ?`, on, on, on, on, on, name)
	if err != nil {
		return fmt.Errorf("set jetstream of account %q: %w", name, err)
	}
	if err := mustAffect(res, "set jetstream", "account", name); err != nil {
		return err
	}
	return tx.Commit()
}

// UpdateAccount replaces the limits, JetStream and JetStream limits of the
// account a.Name in one transaction, what 'account set' changes. It returns
// ErrNotFound if there is no such account, and refuses an account that does
// not validate (accounts.Account.Validate).
func (db *DB) UpdateAccount(ctx context.Context, a accounts.Account) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("update account %q: %w", a.Name, err)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("update account %q: %w", a.Name, err)
	}
	defer tx.Rollback()
	l, js := a.Limits, a.JetStreamLimits
	res, err := tx.ExecContext(ctx, `
		UPDATE accounts SET max_connections = ?, max_subs = ?, max_payload = ?, jetstream = ?,
			js_max_memory = ?, js_max_storage = ?, js_max_streams = ?, js_max_consumers = ?
		WHERE name = ?`,
		l.MaxConnections, l.MaxSubs, l.MaxPayload, a.JetStream,
		js.MaxMemory, js.MaxStorage, js.MaxStreams, js.MaxConsumers, a.Name)
	if err != nil {
		return fmt.Errorf("update account %q: %w", a.Name, err)
	}
	if err := mustAffect(res, "update account", "account", a.Name); err != nil {
		return err
	}
	return tx.Commit()
}

// SetAccountJetStreamLimits replaces the JetStream limits of the account
// called name. It returns ErrNotFound if there is no such account, and
// refuses limits (other than none) on an account without JetStream.
func (db *DB) SetAccountJetStreamLimits(ctx context.Context, name string, l accounts.JetStreamLimits) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("set jetstream limits of account %q: %w", name, err)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("set jetstream limits of account %q: %w", name, err)
	}
	defer tx.Rollback()
	// Read and write in one write transaction, so that a concurrent
	// --jetstream=false cannot leave limits on an account without it.
	var on bool
	err = tx.QueryRowContext(ctx, `SELECT jetstream FROM accounts WHERE name = ?`, name).Scan(&on)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("set jetstream limits: account %q %w", name, ErrNotFound)
	case err != nil:
		return fmt.Errorf("set jetstream limits of account %q: %w", name, err)
	}
	if err := (accounts.Account{Name: name, JetStream: on, JetStreamLimits: l}).Validate(); err != nil {
		return fmt.Errorf("set jetstream limits of account %q: %w", name, err)
	}
	_, err = tx.ExecContext(ctx, `
		UPDATE accounts SET js_max_memory = ?, js_max_storage = ?, js_max_streams = ?, js_max_consumers = ?
		WHERE name = ?`,
		l.MaxMemory, l.MaxStorage, l.MaxStreams, l.MaxConsumers, name)
	if err != nil {
		return fmt.Errorf("set jetstream limits of account %q: %w", name, err)
	}
	return tx.Commit()
}

// SetAccountLimits replaces the limits of the account called name. It returns
// ErrNotFound if there is no such account.
func (db *DB) SetAccountLimits(ctx context.Context, name string, l accounts.AccountLimits) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("set limits of account %q: %w", name, err)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("set limits of account %q: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `
		UPDATE accounts SET max_connections = ?, max_subs = ?, max_payload = ?
		WHERE name = ?`,
		l.MaxConnections, l.MaxSubs, l.MaxPayload, name)
	if err != nil {
		return fmt.Errorf("set limits of account %q: %w", name, err)
	}
	if err := mustAffect(res, "set limits", "account", name); err != nil {
		return err
	}
	return tx.Commit()
}

// AccountUsers returns the names of the users in the account called name,
// sorted. It returns ErrNotFound if there is no such account.
func (db *DB) AccountUsers(ctx context.Context, name string) ([]string, error) {
	// One statement, so that the account's existence and its users come
	// from the same snapshot; see RoleHolders.
	rows, err := db.q(ctx).QueryContext(ctx, `
		SELECT users.name FROM accounts LEFT JOIN users ON users.account = accounts.name
		WHERE accounts.name = ? ORDER BY users.name`, name)
	if err != nil {
		return nil, fmt.Errorf("users of account %q: %w", name, err)
	}
	users, found, err := scanNullableNames(rows)
	switch {
	case err != nil:
		return nil, fmt.Errorf("users of account %q: %w", name, err)
	case !found:
		return nil, fmt.Errorf("users of account: account %q %w", name, ErrNotFound)
	}
	return users, nil
}

// RemoveAccount removes an account. It returns ErrNotFound if there is no such
// account, and ErrAccountInUse, naming some of them, while users still belong
// to it.
func (db *DB) RemoveAccount(ctx context.Context, name string) error {
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("remove account %q: %w", name, err)
	}
	defer tx.Rollback()
	var n int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE account = ?`, name).Scan(&n)
	if err != nil {
		return fmt.Errorf("remove account %q: %w", name, err)
	}
	if n > 0 {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM users WHERE account = ? ORDER BY name LIMIT ?`, name, maxNamed)
		if err != nil {
			return fmt.Errorf("remove account %q: %w", name, err)
		}
		some, err := scanStrings(rows)
		if err != nil {
			return fmt.Errorf("remove account %q: %w", name, err)
		}
		who := quoteList(some, maxNamed)
		if more := n - len(some); more > 0 {
			who += fmt.Sprintf(" and %d more", more)
		}
		return fmt.Errorf("remove account %q: %w: %s still in it (%s): remove them or move them to another account first",
			name, ErrAccountInUse, plural(n, "user"), who)
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE name = ?`, name)
	switch {
	case isForeignKey(err):
		return fmt.Errorf("remove account %q: %w: users are still in it", name, ErrAccountInUse)
	case err != nil:
		return fmt.Errorf("remove account %q: %w", name, err)
	}
	if err := mustAffect(res, "remove account", "account", name); err != nil {
		return err
	}
	return tx.Commit()
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s is", noun)
	}
	return fmt.Sprintf("%d %ss are", n, noun)
}

// AccountUserCounts returns, in one query, the number of users in each
// account, with every account present (0 for an account without users).
func (db *DB) AccountUserCounts(ctx context.Context) (map[string]int, error) {
	rows, err := db.q(ctx).QueryContext(ctx, `
		SELECT accounts.name, COUNT(users.name) FROM accounts LEFT JOIN users ON users.account = accounts.name
		GROUP BY accounts.name`)
	if err != nil {
		return nil, fmt.Errorf("count users per account: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, fmt.Errorf("count users per account: %w", err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count users per account: %w", err)
	}
	return out, nil
}

// ErrCaseTwin means an account name differs from an existing one only in
// case. An error wrapping it wraps ErrExists too.
var ErrCaseTwin = errors.New("a name that differs only in case")

// sameButCase returns ErrExists and ErrCaseTwin, wrapped with op, if an account whose name
// differs from name only in case exists. Account names are ASCII
// (accounts.ValidateAccount), which is what NOCASE folds.
func sameButCase(ctx context.Context, tx *txn, op, name string) error {
	var other string
	err := tx.QueryRowContext(ctx,
		`SELECT name FROM accounts WHERE name = ? COLLATE NOCASE AND name != ? LIMIT 1`, name, name).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("%s %q: %w", op, name, err)
	}
	return fmt.Errorf("%s: account %q %w as %q (%w): nats-server would keep them apart, people would not; use %q or choose another name",
		op, name, ErrExists, other, ErrCaseTwin, other)
}
