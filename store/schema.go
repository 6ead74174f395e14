package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-sqlite3"
)

// LatestSchemaVersion returns the schema version this authrelay migrates a
// database to: the number of its embedded migrations.
func LatestSchemaVersion() (int, error) {
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		return 0, fmt.Errorf("load migrations: %w", err)
	}
	return len(migs), nil
}

// SchemaVersion returns the database's schema version (its PRAGMA
// user_version): the number of migrations it has seen.
func (db *DB) SchemaVersion(ctx context.Context) (current int, err error) {
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return current, nil
}

// SchemaVersionError is OpenReadOnly's error for a database whose schema
// version is not LatestSchemaVersion. Have > Want also wraps
// ErrSchemaTooNew.
type SchemaVersionError struct {
	Path       string
	Have, Want int
}

func (e *SchemaVersionError) Error() string {
	if e.Have > e.Want {
		return fmt.Sprintf("open store %s: %v", e.Path, schemaTooNew(e.Have, e.Want))
	}
	return fmt.Sprintf("open store %s: it has schema version %d, this authrelay's is %d: run 'authrelay serve' or any admin command to migrate it", e.Path, e.Have, e.Want)
}

// Unwrap makes a too-new schema match ErrSchemaTooNew.
func (e *SchemaVersionError) Unwrap() error {
	if e.Have > e.Want {
		return ErrSchemaTooNew
	}
	return nil
}

// OpenReadOnly opens the existing store at path for reading only: it never
// creates the file, never migrates it and never writes to it (SQLite opens
// it read-only). Like OpenExisting it returns an error wrapping
// ErrNoDatabase where no file or no authrelay schema exists. A database
// whose schema version is not LatestSchemaVersion is refused with a
// *SchemaVersionError that says both versions, and left as it was. Every
// write through the returned handle fails.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open store: the database path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open store %s: %w: the file does not exist", path, ErrNoDatabase)
	case err != nil:
		return nil, fmt.Errorf("open store %s: %w", path, err)
	case fi.Size() == 0:
		return nil, fmt.Errorf("open store %s: %w: the file is empty", path, ErrNoDatabase)
	}
	want, err := LatestSchemaVersion()
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// mode=ro: SQLite neither creates nor writes the file. No journal
	// mode in the DSN: setting it is a write.
	dsn := "file:" + escapeURIPath(abs) + "?mode=ro&_busy_timeout=5000&_foreign_keys=on"
	sqldb := sql.OpenDB(connector{dsn: dsn, drv: &sqlite3.SQLiteDriver{}})
	db := &DB{Now: time.Now, Params: DefaultArgon2Params, sql: sqldb, path: abs}
	fail := func(err error) (*DB, error) {
		db.stmts.close()
		sqldb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.checkExisting(ctx); err != nil {
		return fail(err)
	}
	have, err := db.SchemaVersion(ctx)
	if err != nil {
		return fail(err)
	}
	if have != want {
		sqldb.Close()
		return nil, &SchemaVersionError{Path: path, Have: have, Want: want}
	}
	if db.file, err = os.Stat(abs); err != nil {
		return fail(err)
	}
	if db.Params, err = db.HashPolicy(ctx); err != nil {
		return fail(err)
	}
	if err := db.stmts.prepare(ctx, sqldb); err != nil {
		return fail(err)
	}
	return db, nil
}
