package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// ErrFileReplaced means the path a store was opened at no longer names the
// file it has open: the file was removed, renamed or replaced by another.
// The store keeps reading and writing the file it has open, which no other
// process (no admin command, no relay started later) sees.
var ErrFileReplaced = errors.New("the database file was removed or replaced")

// Path returns the absolute path the store was opened at.
func (db *DB) Path() string { return db.path }

// CheckFile reports whether the store's path still names the file the store
// opened, comparing device and inode. It returns an error wrapping
// ErrFileReplaced when it does not, and nil once the same file is back at
// the path (moved back, say). It is a stat, cheap enough to call every
// second.
func (db *DB) CheckFile() error {
	fi, err := os.Stat(db.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s no longer exists; this process still uses the removed file", ErrFileReplaced, db.path)
	case err != nil:
		return fmt.Errorf("check database file: %w", err)
	case !os.SameFile(fi, db.file):
		return fmt.Errorf("%w: %s is now another file than the one this process opened", ErrFileReplaced, db.path)
	}
	return nil
}

// checkpointBusyTimeout is how long Checkpoint waits for readers on an
// older snapshot: while it waits, new writers wait too, so it gives up soon
// and leaves the rest to the next try rather than hold up logins that
// write (lockouts, audit rows).
const checkpointBusyTimeout = 200 * time.Millisecond

// Checkpoint copies every transaction in the write-ahead log into the
// database and truncates the log file to zero bytes, so that the space a
// burst of writes took is given back. When some reader holds an older
// snapshot for longer than a moment (a backup, say), it copies what it can
// and returns busy true, leaving the file for the next try. frames is the
// log's length in frames before the truncation.
func (db *DB) Checkpoint(ctx context.Context) (busy bool, frames int, err error) {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return false, 0, fmt.Errorf("checkpoint: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", checkpointBusyTimeout.Milliseconds())); err != nil {
		return false, 0, fmt.Errorf("checkpoint: %w", err)
	}
	defer func() {
		// Give the pooled connection its usual busy timeout back, or
		// drop it from the pool.
		if _, rerr := conn.ExecContext(context.Background(), "PRAGMA busy_timeout = 5000"); rerr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	var b, logFrames, done int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&b, &logFrames, &done); err != nil {
		if isBusy(err) {
			return true, 0, nil
		}
		return false, 0, fmt.Errorf("checkpoint: %w", err)
	}
	return b != 0, logFrames, nil
}
