package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNotBackup means a file given to Restore is not an authrelay database
// that can be restored: not SQLite, damaged, not authrelay's schema, or a
// live database whose last writes are still in its write-ahead log.
var ErrNotBackup = errors.New("not a usable authrelay backup")

// RestoreResult says what Restore did.
type RestoreResult struct {
	// Schema is the backup's schema version and Latest this code's: when
	// Schema is older, the next authrelay that opens the database
	// migrates it.
	Schema, Latest int
	// Users and Accounts count the backup's users and accounts.
	Users, Accounts int
	// Aside are the files the replaced database was moved to (the
	// database and, if it had one, its write-ahead log, which belongs to
	// it); empty when there was no database.
	Aside []string
	// Removed are the stale files deleted: the replaced database's
	// shared-memory index, which SQLite rebuilds.
	Removed []string
}

// Restore replaces the database at path with a copy of the backup file
// from, such as one that Backup wrote. It refuses, with nothing changed:
// while a relay serves the database (ErrInUse, see LockServing); a backup
// that fails SQLite's integrity check, is not an authrelay database, has a
// schema newer than this code (ErrSchemaTooNew), or has a write-ahead log
// beside it (ErrNotBackup). It then moves the current database aside to
// path.replaced-TIME together with its write-ahead log, which holds some of
// its committed writes and, left beside the restored file, would be
// applied to it and corrupt it; deletes its shared-memory index; and
// renames a checked copy of the backup into place. The backup file itself
// is only read. now names the moved-aside files.
func Restore(ctx context.Context, from, path string, now time.Time) (res RestoreResult, err error) {
	src, err := filepath.Abs(from)
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", from, err)
	}
	dst, err := filepath.Abs(path)
	if err != nil {
		return res, fmt.Errorf("restore to %s: %w", path, err)
	}
	sfi, err := os.Stat(src)
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", from, err)
	}
	if !sfi.Mode().IsRegular() {
		return res, fmt.Errorf("restore %s: %w: it is not a regular file", from, ErrNotBackup)
	}
	dfi, err := os.Stat(dst)
	switch {
	case err == nil && os.SameFile(sfi, dfi):
		return res, fmt.Errorf("restore %s: it is the database itself: give a backup file", from)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return res, fmt.Errorf("restore to %s: %w", path, err)
	case err != nil:
		dfi = nil
	}
	if fi, err := os.Stat(src + "-wal"); err == nil && fi.Size() > 0 {
		return res, fmt.Errorf("restore %s: %w: %s lies beside it, so it is a database in use or left by a crash, and a copy of the file alone would lose the writes in that log: give a file that 'authrelay backup' wrote", from, ErrNotBackup, filepath.Base(src)+"-wal")
	}

	lock, err := lockExclusive(dst)
	if errors.Is(err, ErrInUse) {
		return res, fmt.Errorf("restore to %s: %w: stop every 'authrelay serve' of this directory, then restore", path, ErrInUse)
	}
	if err != nil {
		return res, fmt.Errorf("restore to %s: %w", path, err)
	}
	defer lock.Release()

	// Copy first, into the database's directory, and check the copy:
	// the rename into place is then atomic, and the check reads exactly
	// the bytes that will be restored.
	tmp, err := copyTemp(src, filepath.Dir(dst), "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return res, fmt.Errorf("restore %s: %w", from, err)
	}
	defer func() {
		if err != nil {
			removeDatabaseFiles(tmp)
		}
	}()
	if res, err = checkBackup(ctx, tmp); err != nil {
		return res, fmt.Errorf("restore %s: %w", from, err)
	}
	if dfi != nil {
		// The restored file keeps the replaced one's mode and, where
		// this process may set it, its owner: the relay's user must be
		// able to open it.
		if err := os.Chmod(tmp, dfi.Mode().Perm()); err != nil {
			return res, fmt.Errorf("restore %s: %w", from, err)
		}
		chownLike(tmp, dfi)
	}

	aside := asideName(dst, now)
	moved := [][2]string{}
	defer func() {
		if err != nil { // put back what was moved
			for i := len(moved) - 1; i >= 0; i-- {
				os.Rename(moved[i][1], moved[i][0])
			}
		}
	}()
	for _, suffix := range []string{"", "-wal", "-journal"} {
		err := os.Rename(dst+suffix, aside+suffix)
		switch {
		case err == nil:
			moved = append(moved, [2]string{dst + suffix, aside + suffix})
			res.Aside = append(res.Aside, aside+suffix)
		case !errors.Is(err, fs.ErrNotExist):
			return res, fmt.Errorf("restore to %s: move the replaced database aside: %w", path, err)
		}
	}
	if err := os.Remove(dst + "-shm"); err == nil {
		res.Removed = append(res.Removed, dst+"-shm")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("restore to %s: remove the stale %s: %w", path, filepath.Base(dst)+"-shm", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return res, fmt.Errorf("restore to %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return res, fmt.Errorf("restore to %s: %w", path, err)
	}
	return res, nil
}

// copyTemp copies the file src to a new file in dir, readable only by its
// owner, synced, and returns its path.
func copyTemp(src, dir, pattern string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", err
	}
	return out.Name(), nil
}

// removeDatabaseFiles removes a database file and its journal files.
func removeDatabaseFiles(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		os.Remove(path + suffix)
	}
}

// asideName returns path.replaced-TIME, with a counter after it if a file
// of that name exists already.
func asideName(path string, now time.Time) string {
	base := path + ".replaced-" + now.UTC().Format("20060102T150405Z")
	name := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = base + "-" + strconv.Itoa(i)
	}
}

// checkBackup checks the database file at path: SQLite's integrity and
// foreign key checks pass, and it has authrelay's tables at a schema
// version this code can open.
func checkBackup(ctx context.Context, path string) (res RestoreResult, err error) {
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		return res, err
	}
	res.Latest = len(migs)
	// mode=rw: never create. No WAL pragma: the check must not change
	// the file's journal mode. A WAL file (and its index) SQLite creates
	// for a WAL-mode file are removed when the connection closes.
	sqldb, err := sql.Open("sqlite3", "file:"+escapeURIPath(path)+"?mode=rw&_busy_timeout=5000")
	if err != nil {
		return res, err
	}
	sqldb.SetMaxOpenConns(1)
	defer func() {
		if cerr := sqldb.Close(); cerr != nil && err == nil {
			err = cerr
		}
		os.Remove(path + "-shm")
		os.Remove(path + "-wal")
	}()
	rows, err := sqldb.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrNotBackup, err)
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return res, fmt.Errorf("%w: %v", ErrNotBackup, err)
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return res, fmt.Errorf("%w: integrity check: %v", ErrNotBackup, err)
	}
	rows.Close()
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return res, fmt.Errorf("%w: the integrity check failed: %s", ErrNotBackup, strings.Join(problems, "; "))
	}
	if err := sqldb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&res.Schema); err != nil {
		return res, fmt.Errorf("%w: read schema version: %v", ErrNotBackup, err)
	}
	if res.Schema > res.Latest {
		return res, schemaTooNew(res.Schema, res.Latest)
	}
	var tables int
	if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('accounts', 'users')`).Scan(&tables); err != nil {
		return res, fmt.Errorf("%w: %v", ErrNotBackup, err)
	}
	if res.Schema < 1 || tables != 2 {
		return res, fmt.Errorf("%w: it is a SQLite database, but not authrelay's (no accounts and users tables at a schema version)", ErrNotBackup)
	}
	var fk int
	if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil {
		return res, fmt.Errorf("%w: foreign key check: %v", ErrNotBackup, err)
	}
	if fk > 0 {
		return res, fmt.Errorf("%w: %d rows fail the foreign key check", ErrNotBackup, fk)
	}
	if err := sqldb.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM accounts)`).Scan(&res.Users, &res.Accounts); err != nil {
		return res, fmt.Errorf("%w: %v", ErrNotBackup, err)
	}
	return res, nil
}
