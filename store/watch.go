package store

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"
)

// fileWatchInterval is how often WatchFile checks that the database's path
// still names the file the store has open, and fileRepeat how often it
// repeats the error while the file stays removed or replaced.
const (
	fileWatchInterval = time.Second
	fileRepeat        = time.Minute
)

// checkpointInterval is how often CheckpointLoop looks at the write-ahead
// log's size. SQLite's own checkpoints keep the log near 4 MiB (1000 pages)
// under steady writes; a file larger than WALTruncateAbove is what a burst
// left. A truncating checkpoint holds off writers while it runs, so the
// loop runs one only then, not every minute: logins that write with a
// short busy timeout (a rehash) would otherwise fail now and then.
const checkpointInterval = time.Minute

// WALTruncateAbove is the size of the write-ahead log file above which
// CheckpointLoop truncates it.
const WALTruncateAbove = 8 << 20

// WatchFile checks every second, until ctx is done, that the store's path
// still names the file it opened (CheckFile). It logs an error when it
// stops doing so, again every minute while that lasts, and a notice when
// the file is back. A relay's readiness check calls CheckFile itself; this
// is what puts the fault in the log.
func (db *DB) WatchFile(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(fileWatchInterval)
	defer t.Stop()
	var failing bool
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		err := db.CheckFile()
		switch {
		case err != nil && (!failing || now.Sub(lastLog) >= fileRepeat):
			if errors.Is(err, ErrFileReplaced) {
				logger.Error("DATABASE FILE REMOVED OR REPLACED: this relay still serves the file it opened, which admin commands and relays started later do not see; put the file back, or stop every relay, restore a backup with 'authrelay restore' and start them again; /readyz fails until then",
					"path", db.Path(), "err", err)
			} else {
				logger.Error("cannot check the database file", "path", db.Path(), "err", err)
			}
			failing, lastLog = true, now
		case err == nil && failing:
			logger.Info("database file is back at its path", "path", db.Path())
			failing = false
		}
	}
}

// CheckpointLoop looks at the write-ahead log's size every minute, until
// ctx is done, and truncates it (TruncateWAL) when it is larger than
// WALTruncateAbove. Call TruncateWAL once first, at start.
func (db *DB) CheckpointLoop(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if size, err := db.WALSize(); err == nil && size > WALTruncateAbove {
			db.TruncateWAL(ctx, logger)
		}
	}
}

// TruncateWAL truncates the write-ahead log (Checkpoint), logging what it
// could not do: a warning when it failed, a debug line when a reader held
// an older snapshot; the next call tries again.
func (db *DB) TruncateWAL(ctx context.Context, logger *slog.Logger) {
	busy, frames, err := db.Checkpoint(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		logger.Warn("write-ahead log checkpoint failed; the next one tries again", "err", err)
	case busy:
		logger.Debug("write-ahead log checkpoint incomplete: a reader holds an older snapshot; the next one tries again", "frames", frames)
	}
}

// WALSize returns the size in bytes of the write-ahead log file.
func (db *DB) WALSize() (int64, error) {
	fi, err := os.Stat(db.path + "-wal")
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
