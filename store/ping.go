package store

import (
	"context"
	"fmt"
)

// Ping checks that the database answers a query: it reads the schema
// version, which every open database has. Readiness checks call it.
func (db *DB) Ping(ctx context.Context) error {
	var v int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}
