package store

import (
	"context"
	"errors"
	"time"
)

// FollowAudit follows the audit trail as tail -f does. It calls fn at once
// with the entries f selects (at most f.Limit, the newest; possibly none),
// then, every poll until ctx ends, with the entries written since, when
// there are any: each call's entries oldest first (see Audit), and no
// entry twice. To follow from now on only, set f.AfterID to LastAuditID
// first. It returns nil when ctx ends, and otherwise the first error of a
// read or of fn.
func (db *DB) FollowAudit(ctx context.Context, f AuditFilter, poll time.Duration, fn func([]AuditEntry) error) error {
	if poll <= 0 {
		return errors.New("follow audit: the poll interval must be positive")
	}
	rows, err := db.Audit(ctx, f)
	if err != nil {
		return err
	}
	if err := fn(rows); err != nil {
		return err
	}
	// Later polls take everything after the highest ID seen: entries
	// come in time order, not ID order (see AuditFilter.AfterID).
	f.Limit = 0
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		for _, r := range rows {
			f.AfterID = max(f.AfterID, r.ID)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if rows, err = db.Audit(ctx, f); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if len(rows) == 0 {
			continue
		}
		if err := fn(rows); err != nil {
			return err
		}
	}
}
