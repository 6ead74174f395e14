package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// PasswordHashes returns every user's stored password hash by user name. It
// is for exporting users with their hashes (authrelay export --with-hashes)
// and nothing else: the hashes must not be logged or shown.
func (db *DB) PasswordHashes(ctx context.Context) (map[string]string, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, password_hash FROM users`)
	if err != nil {
		return nil, fmt.Errorf("read password hashes: %w", err)
	}
	defer rows.Close()
	hashes := map[string]string{}
	for rows.Next() {
		var name, hash string
		if err := rows.Scan(&name, &hash); err != nil {
			return nil, fmt.Errorf("read password hashes: %w", err)
		}
		hashes[name] = hash
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read password hashes: %w", err)
	}
	return hashes, nil
}

// Backup writes a consistent copy of the database to a new file at path,
// readable only by its owner (it holds password hashes). It refuses a path
// that exists. It reads one snapshot and takes no write lock, so it runs
// while other handles and processes write; the copy holds what was committed
// when it began, and opens with Open.
func (db *DB) Backup(ctx context.Context, path string) (err error) {
	if path == "" {
		return errors.New("back up: the backup path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("back up to %s: %w", path, err)
	}
	// Create the file here, exclusively, rather than let VACUUM INTO
	// create it: no race can make this overwrite or, on failure, delete a
	// file it did not create. VACUUM INTO accepts an empty file.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("back up to %s: the file already exists: give the path of a new file", path)
	case err != nil:
		return fmt.Errorf("back up to %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("back up to %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(abs)
		}
	}()
	// The absolute path never starts with "file:", so SQLite does not read
	// it as a URI, whatever characters it holds.
	if _, err := db.sql.ExecContext(ctx, `VACUUM INTO ?`, abs); err != nil {
		return fmt.Errorf("back up to %s: %w", path, err)
	}
	// VACUUM INTO does not sync what it wrote.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("back up to %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("back up to %s: %w", path, err)
	}
	return nil
}

// syncDir makes a new entry in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
