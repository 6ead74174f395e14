package store

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/accounts"
)

// AddAccount adds a NATS account that users can be placed in. It returns
// ErrExists if the account is already known.
func (db *DB) AddAccount(ctx context.Context, name string) error {
	if err := accounts.ValidateAccount(name); err != nil {
		return fmt.Errorf("add account: %w", err)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add account %q: %w", name, err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO accounts (name, created) VALUES (?, ?)`, name, formatTime(db.now()))
	switch {
	case isDuplicate(err):
		return fmt.Errorf("add account: account %q %w", name, ErrExists)
	case err != nil:
		return fmt.Errorf("add account %q: %w", name, err)
	}
	return tx.Commit()
}

// Accounts returns the names of all accounts, sorted.
func (db *DB) Accounts(ctx context.Context) ([]string, error) {
	// A single statement reads one consistent snapshot. It runs outside a
	// transaction because every transaction here begins IMMEDIATE, which
	// would take the write lock for a read.
	rows, err := db.sql.QueryContext(ctx, `SELECT name FROM accounts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return names, nil
}

// RemoveAccount removes an account. It returns ErrNotFound if there is no such
// account, and ErrAccountInUse while users still belong to it.
func (db *DB) RemoveAccount(ctx context.Context, name string) error {
	tx, err := db.sql.BeginTx(ctx, nil)
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
		return fmt.Errorf("remove account %q: %w: %s still in it: remove them or move them to another account first",
			name, ErrAccountInUse, plural(n, "user"))
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
