package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// adminKey is the context key of an admin change under way.
type adminKey struct{}

// adminChange is an admin change under way (see Admin). Its transaction
// begins at the change's first write, so that work before it, such as
// hashing a password, does not hold the write lock. One goroutine uses it.
type adminChange struct {
	db *DB
	tx *sql.Tx
	// rehash marks a change that only rehashes passwords at login
	// (storeRehash): each node that applies it counts the rehash, so that
	// its triggers take it for one rather than a credential change.
	rehash bool
}

// adminOf returns the admin change ctx belongs to, or nil.
func adminOf(ctx context.Context) *adminChange {
	c, _ := ctx.Value(adminKey{}).(*adminChange)
	return c
}

// start returns the change's transaction, beginning it if need be. In
// cluster mode it begins capturing the rows the change touches.
func (c *adminChange) start(ctx context.Context) (*sql.Tx, error) {
	if c.tx == nil {
		tx, err := c.db.sql.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		if c.db.clustered() {
			if err := installCapture(ctx, tx); err != nil {
				tx.Rollback()
				return nil, err
			}
		}
		c.tx = tx
	}
	return c.tx, nil
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// q returns what a statement of a method called with ctx runs on: the
// transaction of the admin change ctx belongs to once it has begun (see
// Admin), so that the method reads what the change wrote so far, and
// otherwise the database.
func (db *DB) q(ctx context.Context) querier {
	if c := adminOf(ctx); c != nil && c.tx != nil {
		return c.tx
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
	if c := adminOf(ctx); c != nil {
		tx, err := c.start(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "SAVEPOINT method"); err != nil {
			return nil, err
		}
		return &txn{Tx: tx, ctx: ctx, joined: true}, nil
	}
	if err := db.checkClusterWrite(ctx); err != nil {
		return nil, err
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
// The transaction begins at fn's first write and holds the database's write
// lock from then until Admin returns, so fn should do its slow work (hash a
// password: AddUser and SetPassword hash before they write) before it
// writes. Everything fn does on db must use the context it is given: a
// method called with another context would wait for the lock fn holds.
// Admin calls do not nest.
//
// In cluster mode (Replicate) the change is appended to the cluster log
// before the transaction commits, and Admin returns once the log has it; if
// the log cannot take it, nothing is kept and Admin returns the log's
// error. When another node's change came first, Admin catches up and runs fn
// again, so that fn sees that change: two nodes adding the same user give
// one success and one ErrExists, as on a single node.
func (db *DB) Admin(ctx context.Context, actor, action string, fn func(ctx context.Context) (detail string, err error)) error {
	if adminOf(ctx) != nil {
		return fmt.Errorf("audit %s: an admin change is already under way in this context", action)
	}
	if action == "" {
		return errors.New("audit admin change: the action is empty")
	}
	if !db.clustered() {
		return db.admin(ctx, actor, action, fn)
	}
	if lc, ok := db.repl.log.(LogChecker); ok {
		last, err := lc.Check(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", action, err)
		}
		applied, err := db.AppliedSeq(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", action, err)
		}
		if last == 0 && applied == 0 {
			if err := db.bootstrapFirst(ctx); err != nil {
				return fmt.Errorf("%s: %w: the change is not made", action, err)
			}
			if applied, err = db.AppliedSeq(ctx); err != nil {
				return fmt.Errorf("%s: %w", action, err)
			}
			last = max(last, applied)
		}
		if applied < last {
			if err := db.repl.catchUp(ctx); err != nil {
				return fmt.Errorf("%s: catch up with the cluster log: %w: the change is not made", action, err)
			}
		}
	}
	// The copy is shared with this node's other processes: the relay may
	// have applied another node's 'hash set' since this one opened it.
	db.reloadPolicy(ctx)
	for attempt := range adminRetries {
		err := db.admin(ctx, actor, action, fn)
		if !errors.Is(err, ErrBehind) {
			return err
		}
		if err := db.repl.catchUp(ctx); err != nil {
			return fmt.Errorf("%s: catch up with the cluster log: %w: the change is not made", action, err)
		}
		// The entry that came first may still be on its way into the
		// log (the leader checks against the entries it has accepted,
		// not only those stored): give it a moment, a little longer
		// each time.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w: the change is not made", action, ctx.Err())
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: other nodes' changes came first %d times in a row: the change is not made; run the command again", action, adminRetries)
}

// admin makes one attempt at an admin change (see Admin).
func (db *DB) admin(ctx context.Context, actor, action string, fn func(ctx context.Context) (detail string, err error)) error {
	c := &adminChange{db: db}
	defer func() {
		if c.tx != nil {
			c.tx.Rollback() // after Commit, a no-op
		}
	}()
	// The copy's position before fn reads anything: fn's reads before
	// its first write see this state or a later one, which the commit
	// detects.
	var start uint64
	if db.clustered() {
		var err error
		if start, err = db.AppliedSeq(ctx); err != nil {
			return fmt.Errorf("%s: %w", action, err)
		}
	}
	detail, err := fn(context.WithValue(ctx, adminKey{}, c))
	if err != nil {
		return err
	}
	tx, err := c.start(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if err := db.insertAdmin(ctx, tx, actor, action, detail); err != nil {
		return fmt.Errorf("%w: the change is not made", err)
	}
	if db.clustered() {
		if err := db.commitReplicated(ctx, tx, start, c.rehash); err != nil {
			return fmt.Errorf("%s: %w", action, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}

// bootstrapFirst writes this copy's replicated rows into the cluster log,
// which is empty, before an admin change: the first node's copy holds the
// state init (or the single node it was) gave it, which its relay writes
// into the log when it starts; a change made before would otherwise be
// the log's first entry, and reach the other nodes without the rows it
// stands on (a user without its account). An empty copy writes nothing.
// Another process of this node (the relay) writing it first is no error.
func (db *DB) bootstrapFirst(ctx context.Context) error {
	own, err := hasReplicatedRows(ctx, db.sql)
	if err != nil || own == "" {
		return err
	}
	if _, err := db.Bootstrap(ctx, db.repl.log); err != nil {
		if applied, aerr := db.AppliedSeq(ctx); aerr == nil && applied > 0 {
			return nil
		}
		return err
	}
	return nil
}
