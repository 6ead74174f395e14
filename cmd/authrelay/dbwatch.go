package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authrelay/authrelay/store"
)

// dbWatchInterval is how often serve checks that its database path still
// names the file it has open.
const dbWatchInterval = time.Second

// checkpointInterval is how often serve looks at the write-ahead log's size,
// and walTruncateAbove the size above which it then truncates it. SQLite's
// own checkpoints keep the log near 4 MiB (1000 pages) under steady writes;
// a larger file is what a burst left. A truncating checkpoint holds off
// writers while it runs, so serve runs it only then (and at start), not
// every minute: logins that write with a short busy timeout (a rehash)
// would otherwise fail now and then.
const (
	checkpointInterval = time.Minute
	walTruncateAbove   = 8 << 20
)

// dbFileRepeat is how often serve repeats the error while its database file
// stays removed or replaced.
const dbFileRepeat = time.Minute

// watchDatabase checks every dbWatchInterval that the database's path still
// names the file serve opened (store.DB.CheckFile), logs an error when it
// stops doing so (and again every dbFileRepeat while it lasts) and when the
// file is back, and truncates the write-ahead log when, looked at every
// checkpointInterval, it is larger than walTruncateAbove.
// The readiness check "database file" calls CheckFile itself.
func watchDatabase(ctx context.Context, db *store.DB, logger *slog.Logger) {
	t := time.NewTicker(dbWatchInterval)
	defer t.Stop()
	var failing bool
	var lastLog time.Time
	lastCheckpoint := time.Now() // serve checkpointed as it started
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		err := db.CheckFile()
		switch {
		case err != nil && (!failing || now.Sub(lastLog) >= dbFileRepeat):
			if errors.Is(err, store.ErrFileReplaced) {
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
		if now.Sub(lastCheckpoint) >= checkpointInterval {
			lastCheckpoint = now
			if fi, err := os.Stat(db.Path() + "-wal"); err == nil && fi.Size() > walTruncateAbove {
				checkpoint(ctx, db, logger)
			}
		}
	}
}

// checkpoint truncates the write-ahead log, logging what it could not do.
func checkpoint(ctx context.Context, db *store.DB, logger *slog.Logger) {
	busy, frames, err := db.Checkpoint(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		logger.Warn("write-ahead log checkpoint failed; the next one tries again", "err", err)
	case busy:
		logger.Debug("write-ahead log checkpoint incomplete: a reader holds an older snapshot; the next one tries again", "frames", frames)
	}
}

// databaseMetrics are serve's gauges of the database file, read at each
// scrape:
//
//   - authrelay_database_file_replaced: 1 while the database's path no
//     longer names the file serve has open (store.DB.CheckFile), else 0.
//   - authrelay_wal_bytes: the size of the write-ahead log file.
func databaseMetrics(db *store.DB) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_database_file_replaced",
			Help: "1 while the database path no longer names the file the relay has open (removed or replaced), else 0.",
		}, func() float64 {
			if errors.Is(db.CheckFile(), store.ErrFileReplaced) {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authrelay_wal_bytes",
			Help: "Size of the database's write-ahead log file in bytes.",
		}, func() float64 {
			fi, err := os.Stat(db.Path() + "-wal")
			if err != nil {
				return 0
			}
			return float64(fi.Size())
		}),
	}
}
