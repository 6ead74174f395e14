package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/authrelay/authrelay/accounts"
)

// The kinds of key a lockout counts failures for.
const (
	// LockoutUser keys a username, whether or not such a user exists.
	LockoutUser = "user"
	// LockoutAddr keys a client address.
	LockoutAddr = "addr"
)

// maxAddrLen bounds the client addresses counted: nats-server reports an IP
// address, far shorter. A longer one is not counted, so that the table stays
// bounded whatever arrives.
const maxAddrLen = 253

// sweepBatch is how many dead rows (never locked, window passed) each Failed
// deletes, so that the rows unknown usernames leave behind do not pile up
// between PruneLockouts runs.
const sweepBatch = 16

// Lockouts counts failed logins per username and per client address in the
// database and locks a key out once the policy says so. It implements the
// relay's Guard, so lockouts are shared by every relay on the same database
// and survive a restart. Get one with DB.Lockouts.
//
// Failures are counted in a fixed window that starts at the first failure:
// once now is more than Window past window_start, the count starts again.
// Reaching the threshold locks the key for policy.LockFor(locks), where locks
// counts this key's lockouts, and starts a new window. Failures while the key
// is locked are not counted (the relay does not report them: it refuses a
// locked login before looking at the password), so that a burst of
// concurrent attempts cannot escalate a lockout on its own.
//
// A successful login clears the username's failures but not its locks: the
// escalation survives a legitimate login in between an attacker's attempts,
// and goes back to the first lockout's length only once the row is pruned
// (PruneLockouts, after a quiet period) or an admin unlocks the key. A
// success never lifts an active lockout, and never touches the address's
// count, so that a sprayer cannot reset it with one valid account.
//
// Unknown usernames are counted like known ones, so the lockout state tells
// nothing about which users exist. A username that accounts.ValidateName
// refuses (empty, longer than accounts.MaxNameLen, control characters) is
// counted only against the address: no user can have it, and it must not
// grow the table. Addresses are keyed in canonical form (an IPv4-mapped IPv6
// address as IPv4).
type Lockouts struct {
	db  *DB
	p   accounts.LockoutPolicy
	err error // the policy's validation error, returned by every call
}

// Lockouts returns the lockout guard for policy p on db. A policy that
// p.Validate refuses makes every call of the guard fail with that error, so
// validate it first to report it at startup. A threshold of 0 turns that kind
// of lockout off entirely: its failures are not counted and existing
// lockouts of that kind are not enforced.
func (db *DB) Lockouts(p accounts.LockoutPolicy) *Lockouts {
	l := &Lockouts{db: db, p: p}
	if err := p.Validate(); err != nil {
		l.err = fmt.Errorf("lockout policy: %w", err)
	}
	return l
}

// Policy returns the lockout policy l enforces.
func (l *Lockouts) Policy() accounts.LockoutPolicy {
	return l.p
}

// keys returns the keys that count for name and addr under l's policy; a
// key that does not count is not Valid, and binds as NULL, which matches no
// row.
func (l *Lockouts) keys(name, addr string) (user, address sql.NullString) {
	if l.p.Threshold > 0 {
		user.String, user.Valid = userKey(name)
	}
	if l.p.AddrThreshold > 0 {
		address.String, address.Valid = addrKey(addr)
	}
	return user, address
}

// userKey returns the key a username is counted under, or false if it is
// not counted.
func userKey(name string) (string, bool) {
	return name, accounts.ValidateName(name) == nil
}

// addrKey returns the key a client address is counted under, or false if it
// is not counted: empty, too long or not UTF-8.
func addrKey(addr string) (string, bool) {
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.Unmap().String(), true
	}
	if addr == "" || len(addr) > maxAddrLen || !utf8.ValidString(addr) {
		return "", false
	}
	return addr, true
}

// Locked reports whether the username or the client address is locked out at
// now. It runs one read-only statement outside a transaction, so it never
// waits for a writer.
func (l *Lockouts) Locked(ctx context.Context, name, addr string, now time.Time) (bool, error) {
	if l.err != nil {
		return false, l.err
	}
	user, address := l.keys(name, addr)
	if !user.Valid && !address.Valid {
		return false, nil
	}
	qctx, err := quickRead(ctx)
	if err != nil {
		return false, fmt.Errorf("check lockout: %w", err)
	}
	var locked bool
	err = l.db.stmts.locked.QueryRowContext(qctx, user, address, formatTime(now)).Scan(&locked)
	if err != nil {
		return false, fmt.Errorf("check lockout: %w", err)
	}
	return locked, nil
}

// lockedQuery reports whether a user key (?1) or an address key (?2) is
// locked at ?3.
const lockedQuery = `
	SELECT EXISTS (SELECT 1 FROM lockouts WHERE kind = 'user' AND key = ?1 AND locked_until > ?3)
	    OR EXISTS (SELECT 1 FROM lockouts WHERE kind = 'addr' AND key = ?2 AND locked_until > ?3)`

// Failed records a failed login (unknown user or wrong password) of name from
// addr at now, and locks the username or the address once it reaches its
// threshold within the window. Both keys change in one transaction.
func (l *Lockouts) Failed(ctx context.Context, name, addr string, now time.Time) error {
	if l.err != nil {
		return l.err
	}
	user, address := l.keys(name, addr)
	if !user.Valid && !address.Valid {
		return nil
	}
	tx, err := l.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record failed login: %w", err)
	}
	defer tx.Rollback()
	if user.Valid {
		if err := l.fail(ctx, tx, LockoutUser, user.String, l.p.Threshold, now); err != nil {
			return err
		}
	}
	if address.Valid {
		if err := l.fail(ctx, tx, LockoutAddr, address.String, l.p.AddrThreshold, now); err != nil {
			return err
		}
	}
	// Rows never locked whose window has passed mean no more than a
	// missing row; sweep a few so that the table stays bounded.
	_, err = tx.ExecContext(ctx, `
		DELETE FROM lockouts WHERE (kind, key) IN (
			SELECT kind, key FROM lockouts WHERE locks = 0 AND window_start < ?
			ORDER BY window_start LIMIT ?)`,
		formatTime(now.Add(-l.p.Window)), sweepBatch)
	if err != nil {
		return fmt.Errorf("record failed login: sweep: %w", err)
	}
	return tx.Commit()
}

// fail counts one failure of the key, locking it at threshold.
func (l *Lockouts) fail(ctx context.Context, tx *sql.Tx, kind, key string, threshold int, now time.Time) error {
	r, found, err := readLockout(ctx, tx, kind, key)
	if err != nil {
		return fmt.Errorf("record failed login: %w", err)
	}
	if !found {
		r = lockoutRow{Lockout: Lockout{Kind: kind, Key: key}}
	}
	if r.LockedUntil.After(now) {
		return nil // not counted while locked
	}
	if !found || now.Sub(r.windowStart) > l.p.Window {
		r.Failures, r.windowStart = 0, now
	}
	r.Failures++
	if r.Failures >= threshold {
		r.Locks++
		r.LockedUntil = now.Add(l.p.LockFor(r.Locks))
		r.Failures, r.windowStart = 0, now
	}
	var until sql.NullString
	if !r.LockedUntil.IsZero() {
		until = sql.NullString{String: formatTime(r.LockedUntil), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO lockouts (kind, key, failures, window_start, locked_until, locks, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, key) DO UPDATE SET
			failures = excluded.failures, window_start = excluded.window_start,
			locked_until = excluded.locked_until, locks = excluded.locks, updated = excluded.updated`,
		kind, key, r.Failures, formatTime(r.windowStart), until, r.Locks, formatTime(now))
	if err != nil {
		return fmt.Errorf("record failed login: %w", err)
	}
	return nil
}

// Succeeded records a successful login of name: it clears the username's
// failures, unless the name is locked at now. It keeps the count of locks
// (see Lockouts) and leaves the address alone. It runs on every successful
// login, so it only reads unless there are failures to clear.
func (l *Lockouts) Succeeded(ctx context.Context, name, addr string, now time.Time) error {
	if l.err != nil {
		return l.err
	}
	user, _ := l.keys(name, "")
	if !user.Valid {
		return nil
	}
	at := formatTime(now)
	qctx, err := quickRead(ctx)
	if err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	var found bool
	if err := l.db.stmts.clearable.QueryRowContext(qctx, user, at).Scan(&found); err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	if !found {
		return nil
	}
	tx, err := l.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	defer tx.Rollback()
	// A row without locks holds nothing once its failures are cleared.
	if _, err := tx.ExecContext(ctx, `DELETE FROM lockouts WHERE `+clearable+` AND locks = 0`, user, at); err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE lockouts SET failures = 0, window_start = ? WHERE `+clearable, at, user, at); err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	return tx.Commit()
}

// clearable selects the username key (?) whose failures Succeeded clears at
// the time (?): it has failures and is not locked.
const clearable = `kind = 'user' AND key = ? AND failures > 0 AND (locked_until IS NULL OR locked_until <= ?)`

// clearableQuery reports whether Succeeded has failures to clear.
const clearableQuery = `SELECT EXISTS (SELECT 1 FROM lockouts WHERE ` + clearable + `)`

// Lockout is the failed-login state of one username or client address. It
// is locked while LockedUntil is after the current time.
type Lockout struct {
	// Kind is LockoutUser or LockoutAddr; Key the username or address.
	Kind, Key string
	// Failures counts the failures in the current window.
	Failures int
	// Locks counts the times the key has been locked since its row was
	// created.
	Locks int
	// LockedUntil is when the last lockout ends; zero if never locked.
	LockedUntil time.Time
}

// lockoutRow is a Lockout with the start of its failure window.
type lockoutRow struct {
	Lockout
	windowStart time.Time
}

// readLockout reads the row of one key.
func readLockout(ctx context.Context, tx *sql.Tx, kind, key string) (lockoutRow, bool, error) {
	r, err := scanLockout(tx.QueryRowContext(ctx, `SELECT `+lockoutColumns+` FROM lockouts WHERE kind = ? AND key = ?`, kind, key))
	if errors.Is(err, sql.ErrNoRows) {
		return lockoutRow{}, false, nil
	}
	return r, err == nil, err
}

// lockoutColumns are the columns scanLockout reads, in order.
const lockoutColumns = `kind, key, failures, locks, locked_until, window_start`

func scanLockout(row scanner) (lockoutRow, error) {
	var (
		r     lockoutRow
		until sql.NullString
		start string
	)
	if err := row.Scan(&r.Kind, &r.Key, &r.Failures, &r.Locks, &until, &start); err != nil {
		return lockoutRow{}, err
	}
	var err error
	if until.Valid {
		if r.LockedUntil, err = parseTime(until.String); err != nil {
			return lockoutRow{}, fmt.Errorf("lockout of %s %q: %w", r.Kind, r.Key, err)
		}
	}
	if r.windowStart, err = parseTime(start); err != nil {
		return lockoutRow{}, fmt.Errorf("lockout of %s %q: %w", r.Kind, r.Key, err)
	}
	return r, nil
}

// Unlock lifts the lockout of a username (kind LockoutUser) or a client
// address (LockoutAddr) and forgets its failures and past locks. It reports
// whether the key was locked; a key with no record is no error.
func (db *DB) Unlock(ctx context.Context, kind, key string) (bool, error) {
	switch kind {
	case LockoutUser:
	case LockoutAddr:
		if k, ok := addrKey(key); ok {
			key = k
		}
	default:
		return false, fmt.Errorf("unlock: kind %q: use %q or %q", kind, LockoutUser, LockoutAddr)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("unlock %s %q: %w", kind, key, err)
	}
	defer tx.Rollback()
	var locked bool
	err = tx.QueryRowContext(ctx, `SELECT coalesce(locked_until > ?, 0) FROM lockouts WHERE kind = ? AND key = ?`,
		formatTime(db.now()), kind, key).Scan(&locked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("unlock %s %q: %w", kind, key, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM lockouts WHERE kind = ? AND key = ?`, kind, key); err != nil {
		return false, fmt.Errorf("unlock %s %q: %w", kind, key, err)
	}
	return locked, tx.Commit()
}

// ActiveLockouts returns the usernames and addresses locked at now, the
// soonest to end first. The list is empty, not nil, when none is.
func (db *DB) ActiveLockouts(ctx context.Context, now time.Time) ([]Lockout, error) {
	// Reads run outside a transaction; see Accounts.
	rows, err := db.sql.QueryContext(ctx, `
		SELECT `+lockoutColumns+` FROM lockouts WHERE locked_until > ?
		ORDER BY locked_until, kind, key`, formatTime(now))
	if err != nil {
		return nil, fmt.Errorf("list lockouts: %w", err)
	}
	defer rows.Close()
	list := []Lockout{}
	for rows.Next() {
		r, err := scanLockout(rows)
		if err != nil {
			return nil, fmt.Errorf("list lockouts: %w", err)
		}
		list = append(list, r.Lockout)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list lockouts: %w", err)
	}
	return list, nil
}

// PruneLockouts deletes the records of keys that are not locked at now and
// have had no failure for keep, and returns how many it deleted. A pruned key
// starts again from no failures and no past locks, so its next lockout is
// the policy's first length: keep is how long the escalation is remembered
// (a day, say). Keep it at least the policy's Window, or failures still
// counting are forgotten.
func (db *DB) PruneLockouts(ctx context.Context, now time.Time, keep time.Duration) (int, error) {
	if keep < 0 {
		return 0, fmt.Errorf("prune lockouts: keep %v is negative", keep)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune lockouts: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `
		DELETE FROM lockouts
		WHERE updated < ? AND (locked_until IS NULL OR locked_until <= ?)`,
		formatTime(now.Add(-keep)), formatTime(now))
	if err != nil {
		return 0, fmt.Errorf("prune lockouts: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune lockouts: %w", err)
	}
	return int(n), tx.Commit()
}
