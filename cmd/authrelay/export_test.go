package main

import (
	"context"

	"github.com/authrelay/authrelay/store"
)

// exportDoc is what 'export --json' prints.
type exportDoc = store.ExportDoc

// exportAll is what 'export --json' prints of db.
func exportAll(ctx context.Context, db *store.DB, withHashes bool) (exportDoc, error) {
	return db.Export(ctx, withHashes)
}
