package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ProbeWrite runs one small write transaction: it rewrites the single row
// of write_probe with the current time. The commit appends a frame to the
// write-ahead log, so it fails as any write would, with SQLite's error
// ("database or disk is full", "attempt to write a readonly database").
// No trigger reads the table: the write bumps no generation or user
// version, records no change and leaves no audit row.
func (db *DB) ProbeWrite(ctx context.Context) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("probe database write: %w", err)
	}
	defer tx.Rollback() // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, `UPDATE write_probe SET at = ? WHERE id = 0`, formatTime(db.now())); err != nil {
		return fmt.Errorf("probe database write: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("probe database write: %w", err)
	}
	return nil
}

// DefaultWriteProbeEvery is the shortest time between two probes of a
// WriteCheck.
const DefaultWriteProbeEvery = 5 * time.Second

// WriteCheck is the readiness check "database writable": Health runs
// ProbeWrite at most once per Every and returns the last probe's result
// in between, so that a readiness endpoint asked often stays cheap and
// writes at most one row every few seconds. While a probe runs, other
// callers get the previous result rather than wait for it.
type WriteCheck struct {
	db    *DB
	every time.Duration
	// now is the clock that spaces the probes (upkeep, by the wall clock).
	now func() time.Time

	mu      sync.Mutex
	running bool
	probed  bool
	last    time.Time
	err     error
}

// NewWriteCheck returns the check for db, probing at most once per every
// (DefaultWriteProbeEvery when every is 0 or less).
func NewWriteCheck(db *DB, every time.Duration) *WriteCheck {
	if every <= 0 {
		every = DefaultWriteProbeEvery
	}
	return &WriteCheck{db: db, every: every, now: time.Now}
}

// Health returns nil when the last probe wrote, and its error otherwise.
// It probes first when no probe ran within the last Every (or none ran
// yet); the first caller waits for the first probe.
func (c *WriteCheck) Health(ctx context.Context) error {
	c.mu.Lock()
	now := c.now()
	switch {
	case c.running && !c.probed:
		c.mu.Unlock()
		return errors.New("probe database write: the first probe has not finished")
	case c.running || (c.probed && now.Sub(c.last) < c.every):
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.running = true
	c.mu.Unlock()

	err := c.db.ProbeWrite(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.running, c.probed, c.last, c.err = false, true, now, err
	return err
}
