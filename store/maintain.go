package store

import (
	"context"
	"log/slog"
	"time"
)

// Maintain prunes, at once and then hourly until ctx is done, what the
// database keeps only for a while: audit rows older than retention (none
// when it is 0), lockouts expired for a day, and change-feed rows older than
// an hour (relays read the feed within a second). Failures are logged and
// tried again at the next round.
func (db *DB) Maintain(ctx context.Context, retention time.Duration, logger *slog.Logger) {
	for {
		now := db.now()
		if retention > 0 {
			if n, err := db.PruneAudit(ctx, now.Add(-retention)); err != nil && ctx.Err() == nil {
				logger.Error("prune audit trail", "err", err)
			} else if n > 0 {
				logger.Info("pruned audit trail", "rows", n, "older_than", retention)
			}
		}
		if _, err := db.PruneLockouts(ctx, now, 24*time.Hour); err != nil && ctx.Err() == nil {
			logger.Error("prune lockouts", "err", err)
		}
		if _, err := db.PruneUserChanges(ctx, now.Add(-time.Hour)); err != nil && ctx.Err() == nil {
			logger.Error("prune user changes", "err", err)
		}
		if _, err := db.PruneGraces(ctx, now); err != nil && ctx.Err() == nil {
			logger.Error("prune replaced passwords", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// EndGracesLoop ends the password graces that run out (EndGraces), every
// interval until ctx is done.
func (db *DB) EndGracesLoop(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := db.EndGraces(ctx); err != nil && ctx.Err() == nil {
			logger.Error("end password graces", "err", err)
		} else if n > 0 {
			logger.Info("password graces ended: the previous passwords' connections are closed", "users", n)
		}
	}
}
