package store

import (
	"context"
	"fmt"
)

// generationQuery reads the change counter of migration 0005.
const generationQuery = `SELECT n FROM generation`

// Generation returns the database's change counter. Triggers increase it in
// the same transaction as every change to users, their roles, roles and
// accounts, whichever process makes it, except a rehash of a password at
// login (the password itself is unchanged); lockouts, audit rows and
// settings do not change it. So while Generation returns the same value,
// whatever a login decision read from the database before is still what the
// database holds, and a relay may reuse it: read Generation first, then the
// user, and keep the result only with the generation read first.
//
// It runs one prepared read-only statement outside a transaction, so it
// never waits for a writer.
func (db *DB) Generation(ctx context.Context) (int64, error) {
	ctx, err := quickRead(ctx)
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	var n int64
	if err := db.stmts.generation.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return n, nil
}

// quickRead returns the context to run one of the reads on every login
// decision with (Generation, Lockouts.Locked, Succeeded's check): ctx
// without its cancellation, or ctx's error if it has ended. Those reads
// look up a row or two by primary key and, in WAL mode, never wait for a
// writer, so they end long before any deadline; making them cancellable
// would cost more than the read itself (database/sql watches the context
// with a goroutine per query, the driver arms an interrupt).
func quickRead(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// Positions reads, in one statement, what Generation and LastUserChange
// read: the relay needs both before every decision when the credential
// cache and revocation are on.
func (db *DB) Positions(ctx context.Context) (generation, lastChange int64, err error) {
	ctx, err = quickRead(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read positions: %w", err)
	}
	if err := db.stmts.positions.QueryRowContext(ctx).Scan(&generation, &lastChange); err != nil {
		return 0, 0, fmt.Errorf("read positions: %w", err)
	}
	return generation, lastChange, nil
}

// positionsQuery is generationQuery and lastUserChangeQuery in one.
const positionsQuery = `SELECT (` + generationQuery + `), (` + lastUserChangeQuery + `)`
