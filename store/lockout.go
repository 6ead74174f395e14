package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/authrelay/authrelay/accounts"
)

// The kinds of key a lockout counts failures for.
const (
	// LockoutPair keys a username from one client address.
	LockoutPair = "user+addr"
	// LockoutAddr keys a client address, over any usernames.
	LockoutAddr = "addr"
	// LockoutUser keys a username from every address together, whether or
	// not such a user exists.
	LockoutUser = "user"
)

// maxAddrLen bounds the client addresses counted: nats-server reports an IP
// address, far shorter. A longer one is not counted, so that the table stays
// bounded whatever arrives.
const maxAddrLen = 253

// sweepBatch is how many dead rows (never locked, window passed) each Failed
// deletes, so that the rows unknown usernames leave behind do not pile up
// between PruneLockouts runs.
const sweepBatch = 16

// maxKnownAddrs bounds the addresses kept per user as known (exempt from a
// lockout of the username): the most recent ones are kept.
const maxKnownAddrs = 32

// knownRefresh is how stale a known address's last success may get before a
// successful login writes it again, so that a login does not write every
// time.
const knownRefresh = time.Hour

// Lockouts counts failed logins in the database and locks keys out as its
// accounts.LockoutPolicy says: a username from one address (LockoutPair),
// an address (LockoutAddr) and a username from everywhere (LockoutUser),
// the last not from the addresses where the user logged in successfully
// within the policy's KnownFor. It implements the relay's Guard, so lockouts
// are shared by every relay on the same database and survive a restart; in
// cluster mode by every relay of the cluster too, each sending what its
// logins changed (OnEvent) and applying the others' with the same rules
// (ApplyRemote). Get one with DB.Lockouts. A lockout refuses logins only: it never enters the
// revocation feed, so it closes no live connection.
//
// Failures are counted in a fixed window that starts at the first failure:
// once now is more than Window past window_start, the count starts again.
// Reaching the threshold locks the key for policy.LockFor(locks), where locks
// counts this key's lockouts, and starts a new window. Failures while the key
// is locked are not counted against it (they still count against the other
// keys of the attempt), so that a burst of attempts cannot escalate a
// lockout on its own.
//
// Before a password is verified, Reserve takes one of the attempts the
// policy leaves for each of its keys, counting the verifications in
// flight in this process, so that a burst of concurrent attempts is
// bounded like a sequence (see Reserve).
//
// A successful login clears the failures of its pair, never those of the
// address (a sprayer cannot reset them with one valid account) or of the
// username, and never lifts an active lockout; it records the address as
// known for the username.
//
// Unknown usernames are counted like known ones, so the lockout state tells
// nothing about which users exist. A username that accounts.ValidateName
// refuses (empty, longer than accounts.MaxNameLen, control characters) is
// counted only against the address: no user can have it, and it must not
// grow the table. Addresses are keyed in canonical form: an IPv4-mapped IPv6
// address as IPv4, an IPv6 address as its prefix of policy.V6Prefix bits
// ("2001:db8:1:2::/64").
//
// A failure the database cannot record (a full disk, a read-only file) is
// held in memory instead, with the same rules, and Locked and Reserve
// consult the memory as well as the database, so that a guessing attack
// gets no easier while the database cannot be written; Failed still
// returns the error, so that the relay logs it, and Memory and Health say
// so. The memory holds at most DefaultLockoutMemoryKeys keys; past that,
// Reserve refuses every attempt (ErrLockoutFull) until the database
// records again. Held keys are written back to the database, merged with
// what it holds, once it can record again (tried at most once a second:
// after a failure it recorded, from Health, and from Reserve while the
// memory is full); until then they are enforced by this relay only, and
// 'user unlock' does not lift them. A lock held in memory starts its
// escalation from the first lock (the stored count of past locks is not
// read), and the write-back keeps the larger count. A lockout read
// that fails makes Locked and Reserve fail, so that the relay refuses the
// login: a relay that answered from its credential cache without the
// lockout state would let a locked-out attacker test guesses against the
// cache.
type Lockouts struct {
	db  *DB
	p   accounts.LockoutPolicy
	err error // the policy's validation error, returned by every call

	mu       sync.Mutex
	inflight map[lockKey]int // reserved verifications per key

	// send, in cluster mode, sends this node's lockout events (OnEvent).
	send func(LockoutEvent)

	// The failures the database could not record, guarded by mu.
	mem            map[lockKey]*memKey
	maxMem         int
	full           atomic.Bool // the memory limit is reached
	unrecorded     uint64
	lastUnrecorded time.Time
	lastErr        error // why the last failure was not recorded; nil once one is
	lastWriteBack  time.Time
	memKeys        atomic.Int64 // len(mem), read without mu
}

// lockKey is one counted key: kind, and the user and addr columns.
type lockKey struct {
	kind, user, addr string
}

// Lockouts returns the lockout guard for policy p on db. A policy that
// p.Validate refuses makes every call of the guard fail with that error, so
// validate it first to report it at startup. A threshold of 0 turns that kind
// of lockout off entirely: its failures are not counted and existing
// lockouts of that kind are not enforced.
func (db *DB) Lockouts(p accounts.LockoutPolicy) *Lockouts {
	l := &Lockouts{db: db, p: p, inflight: map[lockKey]int{}, mem: map[lockKey]*memKey{}, maxMem: DefaultLockoutMemoryKeys}
	if err := p.Validate(); err != nil {
		l.err = fmt.Errorf("lockout policy: %w", err)
	}
	return l
}

// Policy returns the lockout policy l enforces.
func (l *Lockouts) Policy() accounts.LockoutPolicy {
	return l.p
}

// keySet is what counts for one attempt under l's policy: the canonical
// name and address, and which of the three keys are counted.
type keySet struct {
	name, addr          string // "" when not counted
	pair, address, user bool
}

func (k keySet) none() bool { return !k.pair && !k.address && !k.user }

// countedKey is a key that counts, with its threshold.
type countedKey struct {
	key       lockKey
	threshold int
}

// counted returns the keys of k that count.
func (l *Lockouts) counted(k keySet) []countedKey {
	var out []countedKey
	if k.pair {
		out = append(out, countedKey{lockKey{LockoutPair, k.name, k.addr}, l.p.Threshold})
	}
	if k.address {
		out = append(out, countedKey{lockKey{LockoutAddr, "", k.addr}, l.p.AddrThreshold})
	}
	if k.user {
		out = append(out, countedKey{lockKey{LockoutUser, k.name, ""}, l.p.UserThreshold})
	}
	return out
}

func (l *Lockouts) keys(name, addr string) keySet {
	var k keySet
	n, nameOK := userKey(name)
	a, addrOK := addrKey(addr, l.p.V6Prefix())
	if nameOK {
		k.name = n
	}
	if addrOK {
		k.addr = a
	}
	k.pair = l.p.Threshold > 0 && nameOK && addrOK
	k.address = l.p.AddrThreshold > 0 && addrOK
	k.user = l.p.UserThreshold > 0 && nameOK
	return k
}

// userKey returns the key a username is counted under, or false if it is
// not counted.
func userKey(name string) (string, bool) {
	return name, accounts.ValidateName(name) == nil
}

// addrKey returns the key a client address is counted under, or false if it
// is not counted (empty, too long or not UTF-8): an IP address in canonical
// form, IPv4-mapped IPv6 as IPv4, other IPv6 as its prefix of v6 bits; any
// other string as it is.
func addrKey(addr string, v6 int) (string, bool) {
	if a, err := netip.ParseAddr(addr); err == nil {
		a = a.Unmap().WithZone("")
		if a.Is6() && v6 < 128 {
			p, err := a.Prefix(v6)
			if err == nil {
				return p.String(), true
			}
		}
		return a.String(), true
	}
	if addr == "" || len(addr) > maxAddrLen || !utf8.ValidString(addr) {
		return "", false
	}
	return addr, true
}

// keyState is the stored state of one key.
type keyState struct {
	found                    bool
	failures                 int
	windowStart, lockedUntil time.Time
}

func (s keyState) locked(now time.Time) bool { return s.lockedUntil.After(now) }

// count returns the failures that count at now.
func (s keyState) count(now time.Time, window time.Duration) int {
	if !s.found || s.locked(now) || now.Sub(s.windowStart) > window {
		return 0
	}
	return s.failures
}

// guardState is the stored state of an attempt's keys.
type guardState struct {
	pair, addr, user keyState
	known            bool // the address is known for the user: exempt from user
}

// of returns the state of the key of kind.
func (s guardState) of(kind string) keyState {
	switch kind {
	case LockoutPair:
		return s.pair
	case LockoutAddr:
		return s.addr
	}
	return s.user
}

// lockedBy returns the kind of the key that locks the attempt at now, or "".
func (s guardState) lockedBy(k keySet, now time.Time) string {
	switch {
	case k.pair && s.pair.locked(now):
		return LockoutPair
	case k.address && s.addr.locked(now):
		return LockoutAddr
	case k.user && s.user.locked(now) && !s.known:
		return LockoutUser
	}
	return ""
}

// stateQuery reads the state of a pair (?1 user, ?2 addr), an address (?3),
// a username (?4) and whether the address ?5 is known for ?4 since ?6. A
// key bound as NULL matches no row.
const stateQuery = `
	SELECT p.failures, p.window_start, p.locked_until,
	       a.failures, a.window_start, a.locked_until,
	       u.failures, u.window_start, u.locked_until,
	       k.user IS NOT NULL
	FROM (SELECT 1)
	LEFT JOIN lockouts p ON p.kind = 'user+addr' AND p.user = ?1 AND p.addr = ?2
	LEFT JOIN lockouts a ON a.kind = 'addr' AND a.user = '' AND a.addr = ?3
	LEFT JOIN lockouts u ON u.kind = 'user' AND u.user = ?4 AND u.addr = ''
	LEFT JOIN known_addrs k ON k.user = ?4 AND k.addr = ?5 AND k.last_success > ?6`

// read reads the state of k's keys with one read-only statement outside a
// transaction, so that it never waits for a writer.
func (l *Lockouts) read(ctx context.Context, k keySet, now time.Time) (guardState, error) {
	bind := func(ok bool, s string) sql.NullString { return sql.NullString{String: s, Valid: ok} }
	known := k.user && l.p.KnownFor > 0 && k.addr != ""
	qctx, err := quickRead(ctx)
	if err != nil {
		return guardState{}, err
	}
	var (
		st   guardState
		cols [3]struct {
			failures     sql.NullInt64
			start, until sql.NullString
		}
		found bool
	)
	err = l.db.stmts.locked.QueryRowContext(qctx,
		bind(k.pair, k.name), bind(k.pair, k.addr), bind(k.address, k.addr),
		bind(k.user, k.name), bind(known, k.addr), formatTime(now.Add(-l.p.KnownFor)),
	).Scan(&cols[0].failures, &cols[0].start, &cols[0].until,
		&cols[1].failures, &cols[1].start, &cols[1].until,
		&cols[2].failures, &cols[2].start, &cols[2].until, &found)
	if err != nil {
		return guardState{}, err
	}
	st.known = found
	for i, dst := range []*keyState{&st.pair, &st.addr, &st.user} {
		c := cols[i]
		if !c.failures.Valid {
			continue
		}
		dst.found, dst.failures = true, int(c.failures.Int64)
		if dst.windowStart, err = parseTime(c.start.String); err != nil {
			return guardState{}, err
		}
		if c.until.Valid {
			if dst.lockedUntil, err = parseTime(c.until.String); err != nil {
				return guardState{}, err
			}
		}
	}
	return st, nil
}

// Locked reports whether a login of name from addr is locked out at now: its
// pair or its address is locked, or its username is and the address is not
// known for the user. It runs one read-only statement outside a
// transaction, so it never waits for a writer.
func (l *Lockouts) Locked(ctx context.Context, name, addr string, now time.Time) (bool, error) {
	if l.err != nil {
		return false, l.err
	}
	k := l.keys(name, addr)
	if k.none() {
		return false, nil
	}
	st, err := l.read(ctx, k, now)
	if err != nil {
		return false, fmt.Errorf("check lockout: %w", err)
	}
	if st.lockedBy(k, now) != "" {
		return true, nil
	}
	if l.memKeys.Load() == 0 {
		return false, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.memLockedBy(k, st.known, now) != "", nil
}

// Reserve takes one of the attempts the policy leaves at now for a login of
// name from addr, before its password is verified, and reports whether
// there was one. There is none when the attempt is locked out (as Locked
// says), or when a key's failures in its window and the verifications of
// that key already reserved in this process reach the key's threshold: if
// those all failed, the key would be locked. A key with no failures yet
// admits what arrives, which the relay's hash workers bound; so a burst of
// concurrent attempts has at most max(threshold, hash workers) of them
// verified per key and relay, however many arrive at once. (A username's
// count is not checked from an address known for the user.)
//
// A true result must be followed by Release with the same name and addr
// once the outcome is recorded (Failed or Succeeded). The state is read
// and the reservation taken under one lock, so that a reservation is never
// lost between the two; that serialises the reads of concurrent Reserves
// in this process, one read-only statement each.
func (l *Lockouts) Reserve(ctx context.Context, name, addr string, now time.Time) (bool, error) {
	if l.err != nil {
		return false, l.err
	}
	k := l.keys(name, addr)
	if k.none() {
		return true, nil
	}
	if l.full.Load() {
		// Only a write tells whether the database can record again.
		l.writeBack(ctx, now)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.full.Load() {
		return false, fmt.Errorf("reserve login attempt: %w: %w", ErrLockoutFull, l.lastErr)
	}
	st, err := l.read(ctx, k, now)
	if err != nil {
		return false, fmt.Errorf("reserve login attempt: %w", err)
	}
	if st.lockedBy(k, now) != "" || l.memLockedBy(k, st.known, now) != "" {
		return false, nil
	}
	keys := l.counted(k)
	for _, c := range keys {
		if c.key.kind == LockoutUser && st.known {
			continue
		}
		// The failures held in memory started from the stored ones, so
		// the larger of the two counts.
		n := max(st.of(c.key.kind).count(now, l.p.Window), l.memCount(c.key, now))
		if n > 0 && n+l.inflight[c.key] >= c.threshold {
			return false, nil
		}
	}
	for _, c := range keys {
		l.inflight[c.key]++
	}
	return true, nil
}

// Release gives back the reservation a true Reserve of name and addr took.
func (l *Lockouts) Release(name, addr string) {
	if l.err != nil {
		return
	}
	k := l.keys(name, addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.counted(k) {
		if n := l.inflight[c.key]; n <= 1 {
			delete(l.inflight, c.key)
		} else {
			l.inflight[c.key] = n - 1
		}
	}
}

// Failed records a refused login of name from addr at now, of kind f, and
// locks a key once it reaches its threshold within the window. Every
// refusal counts against the pair and the address; only a wrong password
// or an unknown user (accounts.FailedPassword) counts against the
// username (see accounts.Failure.CountsForUser). All keys change in one
// transaction.
func (l *Lockouts) Failed(ctx context.Context, name, addr string, now time.Time, f accounts.Failure) error {
	if l.err != nil {
		return l.err
	}
	k := l.keys(name, addr)
	k.user = k.user && f.CountsForUser()
	if k.none() {
		return nil
	}
	locked, changed, err := l.record(ctx, k, now)
	if err != nil || changed {
		// Sent whether or not this node's database could record it: the
		// other nodes count it with their own.
		l.publish(LockoutEvent{Kind: LockoutEventFail, Time: now, User: k.name, Addr: k.addr, CountsForUser: k.user})
	}
	for _, r := range locked {
		l.publish(LockoutEvent{Kind: LockoutEventLock, Time: now, Key: r.Kind, User: r.User, Addr: r.Addr,
			LockedUntil: r.LockedUntil, Locks: r.Locks, LockFailures: r.LockFailures, LockWindowS: int64(r.LockWindow / time.Second)})
	}
	if err != nil {
		// Held in memory instead, from the stored state if it can be
		// read (a full disk still reads).
		st, rerr := l.read(ctx, k, now)
		if rerr != nil {
			st = guardState{}
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.holdFailure(k, st, now, err)
	}
	l.mu.Lock()
	l.recorded()
	l.mu.Unlock()
	if l.memKeys.Load() > 0 {
		l.writeBack(ctx, now)
	}
	return nil
}

// record writes a failure of k's counted keys in one transaction, and
// returns the keys it locked and whether it changed any (a locked key does
// not count failures).
func (l *Lockouts) record(ctx context.Context, k keySet, now time.Time) (locked []lockoutRow, changed bool, err error) {
	tx, err := l.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("record failed login: %w", err)
	}
	defer tx.Rollback()
	for _, c := range l.counted(k) {
		r, counted, err := l.fail(ctx, tx, c.key, c.threshold, now)
		if err != nil {
			return nil, false, err
		}
		changed = changed || counted
		if counted && r.Failures == 0 {
			locked = append(locked, r)
		}
	}
	// Rows never locked whose window has passed mean no more than a
	// missing row; sweep a few so that the table stays bounded.
	_, err = tx.ExecContext(ctx, `
		DELETE FROM lockouts WHERE (kind, user, addr) IN (
			SELECT kind, user, addr FROM lockouts WHERE locks = 0 AND window_start < ?
			ORDER BY window_start LIMIT ?)`,
		formatTime(now.Add(-l.p.Window)), sweepBatch)
	if err != nil {
		return nil, false, fmt.Errorf("record failed login: sweep: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, err
	}
	return locked, changed, nil
}

// fail counts one failure of the key, locking it at threshold, and returns
// the key's row and whether the failure counted (not while locked); a row
// the failure locked has no failures left.
func (l *Lockouts) fail(ctx context.Context, tx *sql.Tx, key lockKey, threshold int, now time.Time) (lockoutRow, bool, error) {
	r, found, err := readLockout(ctx, tx, key)
	if err != nil {
		return r, false, fmt.Errorf("record failed login: %w", err)
	}
	if !found {
		r = lockoutRow{Lockout: Lockout{Kind: key.kind, User: key.user, Addr: key.addr}}
	}
	if r.LockedUntil.After(now) {
		return r, false, nil // not counted while locked
	}
	if !found || now.Sub(r.windowStart) > l.p.Window {
		r.Failures, r.windowStart = 0, now
	}
	r.Failures++
	if r.Failures >= threshold {
		r.Locks++
		r.LockedUntil = now.Add(l.p.LockFor(r.Locks))
		r.LockFailures, r.LockWindow = r.Failures, l.p.Window
		r.Failures, r.windowStart = 0, now
	}
	var until sql.NullString
	if !r.LockedUntil.IsZero() {
		until = sql.NullString{String: formatTime(r.LockedUntil), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO lockouts (kind, user, addr, failures, window_start, locked_until, locks, lock_failures, lock_window, updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (kind, user, addr) DO UPDATE SET
			failures = excluded.failures, window_start = excluded.window_start,
			locked_until = excluded.locked_until, locks = excluded.locks,
			lock_failures = excluded.lock_failures, lock_window = excluded.lock_window,
			updated = excluded.updated`,
		key.kind, key.user, key.addr, r.Failures, formatTime(r.windowStart), until, r.Locks,
		r.LockFailures, int64(r.LockWindow/time.Second), formatTime(now))
	if err != nil {
		return r, false, fmt.Errorf("record failed login: %w", err)
	}
	return r, true, nil
}

// Succeeded records a successful login of name from addr at now: it clears
// the failures of the pair, unless the pair is locked at now, and records
// the address as known for the user (exempt from a lockout of the username
// for the policy's KnownFor). It keeps the count of locks (see Lockouts)
// and leaves the address's and the username's counts alone. It runs on
// every successful login, so it only reads unless there are failures to
// clear or the address was not recorded within the last hour.
func (l *Lockouts) Succeeded(ctx context.Context, name, addr string, now time.Time) error {
	if l.err != nil {
		return l.err
	}
	k := l.keys(name, addr)
	if k.name == "" || k.addr == "" {
		return nil
	}
	if k.pair && l.memKeys.Load() > 0 {
		// The pair's failures held in memory are cleared as the stored
		// ones are, unless it is locked.
		l.mu.Lock()
		key := lockKey{LockoutPair, k.name, k.addr}
		if m, ok := l.mem[key]; ok && !m.locked(now) {
			delete(l.mem, key)
			l.memKeys.Store(int64(len(l.mem)))
		}
		l.mu.Unlock()
	}
	clear, record := k.pair, l.p.KnownFor > 0 && l.p.UserThreshold > 0
	if !clear && !record {
		return nil
	}
	at := formatTime(now)
	qctx, err := quickRead(ctx)
	if err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	var clearable, stale bool
	err = l.db.stmts.clearable.QueryRowContext(qctx, k.name, k.addr, at, formatTime(now.Add(-knownRefresh))).Scan(&clearable, &stale)
	if err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	clear, record = clear && clearable, record && stale
	if !clear && !record {
		return nil
	}
	tx, err := l.db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	defer tx.Rollback()
	if clear {
		// A row without locks holds nothing once its failures are cleared.
		if _, err := tx.ExecContext(ctx, `DELETE FROM lockouts WHERE `+clearablePair+` AND locks = 0`, k.name, k.addr, at); err != nil {
			return fmt.Errorf("record successful login: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE lockouts SET failures = 0, window_start = ?4 WHERE `+clearablePair, k.name, k.addr, at, at); err != nil {
			return fmt.Errorf("record successful login: %w", err)
		}
	}
	if record {
		if err := recordKnown(ctx, tx, k.name, k.addr, at); err != nil {
			return fmt.Errorf("record successful login: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	// Only what changed is sent: a login that changes nothing costs the
	// cluster nothing.
	l.publish(LockoutEvent{Kind: LockoutEventSuccess, Time: now, User: k.name, Addr: k.addr})
	return nil
}

// clearablePair selects the pair (?1 user, ?2 addr) whose failures
// Succeeded clears at the time ?3: it has failures and is not locked.
const clearablePair = `kind = 'user+addr' AND user = ?1 AND addr = ?2 AND failures > 0 AND (locked_until IS NULL OR locked_until <= ?3)`

// clearableQuery reports whether Succeeded has failures to clear, and
// whether the address is not known for the user since ?4.
const clearableQuery = `SELECT EXISTS (SELECT 1 FROM lockouts WHERE ` + clearablePair + `),
	NOT EXISTS (SELECT 1 FROM known_addrs WHERE user = ?1 AND addr = ?2 AND last_success > ?4)`

// Lockout is the failed-login state of one key. It is locked while
// LockedUntil is after the current time.
type Lockout struct {
	// Kind is LockoutPair, LockoutAddr or LockoutUser. User is the
	// username (empty for LockoutAddr), Addr the address key (empty for
	// LockoutUser).
	Kind, User, Addr string
	// Failures counts the failures in the current window.
	Failures int
	// Locks counts the times the key has been locked since its row was
	// created.
	Locks int
	// LockedUntil is when the last lockout ends; zero if never locked.
	LockedUntil time.Time
	// LockFailures is how many failures within LockWindow set the last
	// lockout.
	LockFailures int
	LockWindow   time.Duration
}

// Why says why the lockout was set, as 'user lockouts' shows it.
func (l Lockout) Why() string {
	var from string
	switch l.Kind {
	case LockoutPair:
		from = "of this username from this address"
	case LockoutAddr:
		from = "from this address over any usernames"
	default:
		from = "of this username from all addresses (not applied at its known addresses)"
	}
	if l.LockFailures == 0 {
		return "failed logins " + from
	}
	return fmt.Sprintf("%d failed logins within %v %s", l.LockFailures, l.LockWindow, from)
}

// Key returns the key as one string: the username, the address, or both
// as "user@addr" for a pair.
func (l Lockout) Key() string {
	switch l.Kind {
	case LockoutUser:
		return l.User
	case LockoutAddr:
		return l.Addr
	}
	return l.User + "@" + l.Addr
}

// lockoutRow is a Lockout with the start of its failure window.
type lockoutRow struct {
	Lockout
	windowStart time.Time
}

// readLockout reads the row of one key.
func readLockout(ctx context.Context, tx *sql.Tx, key lockKey) (lockoutRow, bool, error) {
	r, err := scanLockout(tx.QueryRowContext(ctx, `SELECT `+lockoutColumns+` FROM lockouts WHERE kind = ? AND user = ? AND addr = ?`,
		key.kind, key.user, key.addr))
	if errors.Is(err, sql.ErrNoRows) {
		return lockoutRow{}, false, nil
	}
	return r, err == nil, err
}

// lockoutColumns are the columns scanLockout reads, in order.
const lockoutColumns = `kind, user, addr, failures, locks, locked_until, window_start, lock_failures, lock_window`

func scanLockout(row scanner) (lockoutRow, error) {
	var (
		r      lockoutRow
		until  sql.NullString
		start  string
		window int64
	)
	if err := row.Scan(&r.Kind, &r.User, &r.Addr, &r.Failures, &r.Locks, &until, &start, &r.LockFailures, &window); err != nil {
		return lockoutRow{}, err
	}
	r.LockWindow = time.Duration(window) * time.Second
	var err error
	if until.Valid {
		if r.LockedUntil, err = parseTime(until.String); err != nil {
			return lockoutRow{}, fmt.Errorf("lockout of %s %q: %w", r.Kind, r.Key(), err)
		}
	}
	if r.windowStart, err = parseTime(start); err != nil {
		return lockoutRow{}, fmt.Errorf("lockout of %s %q: %w", r.Kind, r.Key(), err)
	}
	return r, nil
}

// UnlockAddr checks an address given to 'user unlock --addr': an IP
// address or a prefix, returned in canonical form.
func UnlockAddr(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("").String(), nil
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String(), nil
	}
	return "", fmt.Errorf("--addr %s: want an IP address such as 192.0.2.7 or a prefix such as 2001:db8::/64", strconv.Quote(s))
}

// addrKeys returns every key an address given by an admin may be stored
// under, whatever prefix length the relay counted IPv6 under: an IP
// address, as IPv4 or as each of its IPv6 prefixes; a prefix such as
// 2001:db8::/64, as that prefix; anything else as it is.
func addrKeys(addr string) []string {
	if a, err := netip.ParseAddr(addr); err == nil {
		a = a.Unmap().WithZone("")
		if a.Is4() {
			return []string{a.String()}
		}
		keys := []string{a.String()}
		for bits := range 128 {
			p, _ := a.Prefix(bits)
			keys = append(keys, p.String())
		}
		return keys
	}
	if p, err := netip.ParsePrefix(addr); err == nil {
		p = p.Masked()
		if p.Addr().Is4() && p.Bits() == 32 || p.Bits() == 128 {
			return []string{p.Addr().String()}
		}
		return []string{p.String()}
	}
	return []string{addr}
}

// Unlock lifts lockouts and forgets their failures and past locks: with a
// name only, the username's and every pair of that name; with an address
// only, the address's and every pair from it; with both, that pair. An
// address may be an IP address, which matches it whatever IPv6 prefix it
// was counted under, or a prefix as 'user lockouts' shows it. It reports
// whether any of them was locked; a key with no record is no error. Called
// within Admin, it is part of the admin change's transaction.
//
// In cluster mode it also sends the unlock to every node as a lockout
// event (SendUnlocks) and waits until JetStream has it, before the change
// commits: without an answer it fails, changing nothing here, and says why.
func (db *DB) Unlock(ctx context.Context, name, addr string) (bool, error) {
	if name == "" && addr == "" {
		return false, fmt.Errorf("unlock: give a username, an address or both")
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return false, fmt.Errorf("unlock: %w", err)
	}
	defer tx.Rollback()
	locked, err := db.unlock(ctx, tx.Tx, name, addr, db.now())
	if err != nil {
		return false, err
	}
	if db.clustered() {
		if db.sendUnlock == nil {
			return false, errors.New("unlock: this node cannot send the unlock to the other nodes of the cluster: run it where the store is attached to the cluster (authrelay user unlock)")
		}
		e := LockoutEvent{Kind: LockoutEventUnlock, Time: db.now(), User: name, Addr: addr}
		if err := db.sendUnlock(ctx, e); err != nil {
			return false, fmt.Errorf("unlock: %w", err)
		}
	}
	return locked, tx.Commit()
}

// SendUnlocks has db, in cluster mode, send each Unlock to every node with
// send, which returns once the cluster holds it (cluster.Events.Send). Call
// it right after Replicate.
func (db *DB) SendUnlocks(send func(ctx context.Context, e LockoutEvent) error) {
	db.sendUnlock = send
}

// unlock is Unlock's change in tx, for the keys locked at now.
func (db *DB) unlock(ctx context.Context, tx *sql.Tx, name, addr string, now time.Time) (bool, error) {
	var (
		where string
		args  []any
		what  string
	)
	keys := addrKeys(addr)
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ") + ")"
	addrArgs := make([]any, len(keys))
	for i, k := range keys {
		addrArgs[i] = k
	}
	switch {
	case name != "" && addr != "":
		what = fmt.Sprintf("user %q from %q", name, addr)
		where = `kind = 'user+addr' AND user = ? AND addr IN ` + in
		args = append([]any{name}, addrArgs...)
	case name != "":
		what = fmt.Sprintf("user %q", name)
		where = `kind IN ('user', 'user+addr') AND user = ?`
		args = []any{name}
	case addr != "":
		what = fmt.Sprintf("address %q", addr)
		where = `kind IN ('addr', 'user+addr') AND addr IN ` + in
		args = addrArgs
	default:
		return false, fmt.Errorf("unlock: give a username, an address or both")
	}
	var locked bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM lockouts WHERE locked_until > ? AND `+where+`)`,
		append([]any{formatTime(now)}, args...)...).Scan(&locked)
	if err != nil {
		return false, fmt.Errorf("unlock %s: %w", what, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM lockouts WHERE `+where, args...); err != nil {
		return false, fmt.Errorf("unlock %s: %w", what, err)
	}
	return locked, nil
}

// ActiveLockouts returns the keys locked at now, the soonest to end first.
// The list is empty, not nil, when none is.
func (db *DB) ActiveLockouts(ctx context.Context, now time.Time) ([]Lockout, error) {
	// Reads run outside a transaction; see Accounts.
	rows, err := db.sql.QueryContext(ctx, `
		SELECT `+lockoutColumns+` FROM lockouts WHERE locked_until > ?
		ORDER BY locked_until, kind, user, addr`, formatTime(now))
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
