package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultLockoutMemoryKeys is the most keys whose failures a Lockouts
// holds in memory while the database cannot record them. A key takes a
// few hundred bytes at most (a name of accounts.MaxNameLen and an address
// of maxAddrLen), so the memory stays under about 40 MB however many keys
// an attack uses.
const DefaultLockoutMemoryKeys = 65536

// lockoutFailHold is how long Health reports trouble after the last
// failure the database could not record.
const lockoutFailHold = 30 * time.Second

// memSweep is how many keys a held failure looks at to forget the dead
// ones (not locked, window passed), so that the memory is given back as
// the keys expire.
const memSweep = 16

// ErrLockoutFull is the error Reserve and Failed wrap when the database
// cannot record failures and the memory that holds them instead is full:
// Reserve then refuses every attempt it would have to verify, failing
// closed.
var ErrLockoutFull = errors.New("lockout failures held in memory: the limit is reached")

// memKey is the state of one key as failures held in memory left it.
type memKey struct {
	failures                 int
	windowStart, lockedUntil time.Time
	locks, lockFailures      int
}

func (m *memKey) locked(now time.Time) bool { return m.lockedUntil.After(now) }

// count returns the failures that count at now.
func (m *memKey) count(now time.Time, window time.Duration) int {
	if m.locked(now) || now.Sub(m.windowStart) > window {
		return 0
	}
	return m.failures
}

// dead reports whether m holds nothing at now: not locked, window passed.
func (m *memKey) dead(now time.Time, window time.Duration) bool {
	return !m.locked(now) && now.Sub(m.windowStart) > window
}

// holdFailure counts a failure the database could not record (err) in
// memory, from the stored state st (zero when it could not be read
// either), with the same rules as fail. Called with l.mu held.
func (l *Lockouts) holdFailure(k keySet, st guardState, now time.Time, err error) error {
	l.unrecorded++
	l.lastUnrecorded, l.lastErr = now, err
	l.sweepMem(now, memSweep)
	for _, c := range l.counted(k) {
		m, ok := l.mem[c.key]
		if !ok {
			if len(l.mem) >= l.maxMem {
				l.sweepMem(now, len(l.mem))
			}
			if len(l.mem) >= l.maxMem {
				l.full.Store(true)
				return fmt.Errorf("record failed login: %w: %w (%d keys): this relay refuses every login it would have to verify until the database can be written", err, ErrLockoutFull, l.maxMem)
			}
			s := st.of(c.key.kind)
			m = &memKey{failures: s.failures, windowStart: s.windowStart, lockedUntil: s.lockedUntil}
			if !s.found {
				m.windowStart = now
			}
			l.mem[c.key] = m
			l.memKeys.Store(int64(len(l.mem)))
		}
		if m.locked(now) {
			continue // not counted while locked
		}
		if now.Sub(m.windowStart) > l.p.Window {
			m.failures, m.windowStart = 0, now
		}
		m.failures++
		if m.failures >= c.threshold {
			m.locks++
			m.lockedUntil = now.Add(l.p.LockFor(m.locks))
			m.lockFailures = m.failures
			m.failures, m.windowStart = 0, now
		}
	}
	return fmt.Errorf("record failed login: %w: held in memory and enforced by this relay only", err)
}

// sweepMem forgets up to n dead keys. Called with l.mu held.
func (l *Lockouts) sweepMem(now time.Time, n int) {
	for key, m := range l.mem {
		if n == 0 {
			break
		}
		n--
		if m.dead(now, l.p.Window) {
			delete(l.mem, key)
		}
	}
	l.memKeys.Store(int64(len(l.mem)))
}

// memLockedBy returns the kind of the key held in memory that locks the
// attempt at now, or "". Called with l.mu held.
func (l *Lockouts) memLockedBy(k keySet, known bool, now time.Time) string {
	for _, c := range l.counted(k) {
		if c.key.kind == LockoutUser && known {
			continue
		}
		if m, ok := l.mem[c.key]; ok && m.locked(now) {
			return c.key.kind
		}
	}
	return ""
}

// memCount returns the failures held in memory for key at now. Called
// with l.mu held.
func (l *Lockouts) memCount(key lockKey, now time.Time) int {
	if m, ok := l.mem[key]; ok {
		return m.count(now, l.p.Window)
	}
	return 0
}

// recorded notes that the database recorded a failure again: the memory
// limit no longer refuses attempts. Called with l.mu held.
func (l *Lockouts) recorded() {
	l.full.Store(false)
	l.lastErr = nil
}

// LockoutMemory is what a Lockouts holds in memory because the database
// could not record it.
type LockoutMemory struct {
	// Unrecorded counts the failed logins the database could not record
	// since the Lockouts was made; each was counted in memory instead.
	Unrecorded uint64
	// Keys is how many keys are held in memory now.
	Keys int
	// Full is set while the memory limit is reached and the database
	// still cannot record: every login the relay would verify is refused.
	Full bool
}

// Memory returns what l holds in memory.
func (l *Lockouts) Memory() LockoutMemory {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LockoutMemory{Unrecorded: l.unrecorded, Keys: len(l.mem), Full: l.full.Load()}
}

// Health returns nil unless a failed login could not be recorded in the
// database within the last 30 seconds (or the memory limit is reached):
// then an error that says since when, why, and how many keys are held in
// memory. While keys are held it first tries to write them back (at most
// once a second), which tells whether the database can be written again.
// So it holds again by itself once the database records, or 30 seconds
// after the last failure it could not record.
func (l *Lockouts) Health(ctx context.Context) error {
	now := l.db.now()
	if l.memKeys.Load() > 0 {
		l.writeBack(ctx, now)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.full.Load():
		return fmt.Errorf("%w (%d keys): every login that needs a password verification is refused until the database can be written: %w", ErrLockoutFull, l.maxMem, l.lastErr)
	case l.lastErr != nil && now.Sub(l.lastUnrecorded) < lockoutFailHold:
		return fmt.Errorf("failed logins not recorded in the database (%d since start, last %v ago), enforced in memory by this relay (%d keys): %w",
			l.unrecorded, now.Sub(l.lastUnrecorded).Round(time.Second), len(l.mem), l.lastErr)
	}
	return nil
}

// writeBackEvery is the shortest time between two write-backs.
const writeBackEvery = time.Second

// writeBackBatch is the most held keys one write-back writes.
const writeBackBatch = 64

// writeBack writes up to writeBackBatch keys held in memory to the
// database, merged with what it holds (the later lock, the larger counts),
// and forgets them once written: the database has them then, for every
// relay. A write that succeeds means the database records again. It runs
// at most once per writeBackEvery (by the wall clock: it is upkeep, not
// policy), and first forgets the dead keys when the memory is full.
func (l *Lockouts) writeBack(ctx context.Context, now time.Time) {
	type held struct {
		key lockKey
		m   memKey
	}
	l.mu.Lock()
	if time.Since(l.lastWriteBack) < writeBackEvery {
		l.mu.Unlock()
		return
	}
	l.lastWriteBack = time.Now()
	if l.full.Load() {
		l.sweepMem(now, len(l.mem))
		if len(l.mem) < l.maxMem {
			l.full.Store(false)
		}
	}
	batch := make([]held, 0, min(len(l.mem), writeBackBatch))
	for key, m := range l.mem {
		if len(batch) == writeBackBatch {
			break
		}
		batch = append(batch, held{key, *m})
	}
	l.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := func() error {
		tx, err := l.db.sql.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		for _, h := range batch {
			var until any
			if !h.m.lockedUntil.IsZero() {
				until = formatTime(h.m.lockedUntil)
			}
			_, err := tx.ExecContext(ctx, `
				INSERT INTO lockouts (kind, user, addr, failures, window_start, locked_until, locks, lock_failures, lock_window, updated)
				VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
				ON CONFLICT (kind, user, addr) DO UPDATE SET
					failures = max(failures, excluded.failures),
					window_start = CASE WHEN excluded.failures > failures THEN excluded.window_start ELSE window_start END,
					locked_until = CASE WHEN locked_until IS NULL OR excluded.locked_until > locked_until THEN coalesce(excluded.locked_until, locked_until) ELSE locked_until END,
					lock_failures = CASE WHEN excluded.locked_until > coalesce(locked_until, '') THEN excluded.lock_failures ELSE lock_failures END,
					lock_window = CASE WHEN excluded.locked_until > coalesce(locked_until, '') THEN excluded.lock_window ELSE lock_window END,
					locks = max(locks, excluded.locks),
					updated = excluded.updated`,
				h.key.kind, h.key.user, h.key.addr, h.m.failures, formatTime(h.m.windowStart), until,
				h.m.locks, h.m.lockFailures, int64(l.p.Window/time.Second), formatTime(now))
			if err != nil {
				return err
			}
		}
		return tx.Commit()
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return // still held; Health says so while failures go unrecorded
	}
	for _, h := range batch {
		// A key that changed meanwhile is written next time.
		if m, ok := l.mem[h.key]; ok && *m == h.m {
			delete(l.mem, h.key)
		}
	}
	l.memKeys.Store(int64(len(l.mem)))
	l.recorded()
}
