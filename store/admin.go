package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// adminTxKey is the context key of the transaction of an admin change.
type adminTxKey struct{}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// adminTx returns the transaction of the admin change ctx belongs to, or nil.
func adminTx(ctx context.Context) *sql.Tx {
	tx, _ := ctx.Value(adminTxKey{}).(*sql.Tx)
	return tx
}

// q returns what a statement of a method called with ctx runs on: the
// admin change's transaction when ctx carries one (see Admin), so that the
// method reads what the change wrote so far and writes into it, and
// otherwise the database.
func (db *DB) q(ctx context.Context) querier {
	if tx := adminTx(ctx); tx != nil {
		return tx
	}
	return db.sql
}

// txn is a transaction a method opened, or a savepoint in the admin
// change's transaction that it joined: a method that fails undoes its own
// writes either way, and a joined method's Commit only releases its
// savepoint, for Admin to commit.
type txn struct {
	*sql.Tx
	ctx    context.Context
	joined bool
	done   bool
}

// Commit commits the method's transaction, or releases its savepoint.
func (t *txn) Commit() error {
	if !t.joined {
		return t.Tx.Commit()
	}
	t.done = true
	_, err := t.Tx.ExecContext(t.ctx, "RELEASE method")
	return err
}

// Rollback rolls the method's transaction back, or its writes since its
// savepoint; after Commit it does nothing.
func (t *txn) Rollback() error {
	if !t.joined {
		return t.Tx.Rollback()
	}
	if t.done {
		return nil
	}
	t.done = true
	_, err := t.Tx.ExecContext(t.ctx, "ROLLBACK TO method; RELEASE method")
	return err
}

// begin starts the transaction of a write method, or a savepoint in the
// admin change's transaction that ctx carries.
func (db *DB) begin(ctx context.Context) (*txn, error) {
	if tx := adminTx(ctx); tx != nil {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT method"); err != nil {
			return nil, err
		}
		return &txn{Tx: tx, ctx: ctx, joined: true}, nil
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &txn{Tx: tx, ctx: ctx}, nil
}

// Admin makes an admin change and records it in the audit trail in one
// transaction: no change is made without its row, and no row is written
// without its change. fn makes the change through db's methods, each called
// with the context fn is given, and returns the detail of the row (what
// changed, as for AuditAdmin); if fn returns an error, or the row cannot be
// written, nothing fn did is kept and Admin returns the error.
//
// The transaction holds the database's write lock until fn returns, so fn
// should do no slow work that does not need it (hash passwords before).
// Everything fn does on db must use the context it is given: a method
// called with another context would wait for the lock fn holds. Admin
// calls do not nest.
func (db *DB) Admin(ctx context.Context, actor, action string, fn func(ctx context.Context) (detail string, err error)) error {
	if adminTx(ctx) != nil {
		return fmt.Errorf("audit %s: an admin change is already under way in this context", action)
	}
	if action == "" {
		return errors.New("audit admin change: the action is empty")
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer tx.Rollback()
	detail, err := fn(context.WithValue(ctx, adminTxKey{}, tx))
	if err != nil {
		return err
	}
	if err := db.insertAdmin(ctx, tx, actor, action, detail); err != nil {
		return fmt.Errorf("%w: the change is not made", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}
