package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"golang.org/x/crypto/argon2"
)

// The floor SetHashPolicy enforces: OWASP's minimum for argon2id, whose
// equivalent settings (46 MiB × 1 pass, 19 MiB × 2, 12 MiB × 3, 9 MiB × 4,
// 7 MiB × 5) all pass over at least 35,840 KiB. Lower settings make an
// offline attack on a stolen database cheap.
const (
	// MinPolicyMemory is the least argon2id memory, in KiB, of a hash
	// policy: 7 MiB, OWASP's least (with 5 passes).
	MinPolicyMemory = 7 << 10
	// MinPolicyWork is the least memory × time, in KiB passes, of a hash
	// policy: 35,840, OWASP's 7 MiB × 5.
	MinPolicyWork = 35840
	// MinPolicyTime is the least argon2id time cost of a hash policy.
	MinPolicyTime = 1
	// MinPolicySaltLen is the shortest salt, in bytes, of a hash policy.
	MinPolicySaltLen = 16
)

// The ceiling SetHashPolicy enforces, and serve checks the stored policy
// against. Every relay runs up to its hash workers' count of hashes at once,
// each holding the policy's memory for as long as it runs, and a login
// waits for one hash within the server's authorization timeout (2 s by
// default): a policy past these exhausts a host's memory under a login
// flood, or fails every login.
const (
	// MaxPolicyMemory is the most argon2id memory, in KiB, of a hash
	// policy: 1 GiB.
	MaxPolicyMemory = 1 << 20
	// MaxPolicyTime is the highest argon2id time cost of a hash policy.
	MaxPolicyTime = 10
	// MaxPolicyThreads is the most argon2id lanes of a hash policy.
	MaxPolicyThreads = 16
	// MaxPolicyWork is the most memory × time, in KiB passes, of a hash
	// policy: 2 GiB passed over, about a second of one core on current
	// hardware.
	MaxPolicyWork = 2 << 20
)

// settingArgon2id is the settings key of the hash policy.
const settingArgon2id = "argon2id"

// rehashBusyTimeout is how long the rehash after a successful login waits for
// another writer before giving up until the user's next login: the login is
// waiting for it, and the server's auth timeout is counted in seconds.
const rehashBusyTimeout = 50 * time.Millisecond

// ErrHashPolicyChanged is what DB.OnRehash receives when a login would have
// rehashed a password but the hash policy in the database is no longer the
// one this process loaded when it opened the database. The process does not
// rehash, so that it never undoes a newer policy; restart it to apply the
// new policy.
var ErrHashPolicyChanged = errors.New("the password hash policy changed since the database was opened: restart to apply it")

// policyJSON is how the hash policy is stored in the settings table.
type policyJSON struct {
	Memory  uint32 `json:"memory_kib"`
	Time    uint32 `json:"time"`
	Threads uint8  `json:"threads"`
	SaltLen uint32 `json:"salt_len"`
	KeyLen  uint32 `json:"key_len"`
}

// HashPolicy returns the argon2id parameters stored in the database, which
// every process hashes new passwords with (Open loads them into db.Params),
// or DefaultArgon2Params if none were ever set.
func (db *DB) HashPolicy(ctx context.Context) (Argon2Params, error) {
	var value string
	err := db.q(ctx).QueryRowContext(ctx, `SELECT value FROM settings WHERE key = ?`, settingArgon2id).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return DefaultArgon2Params, nil
	case err != nil:
		return Argon2Params{}, fmt.Errorf("read hash policy: %w", err)
	}
	var j policyJSON
	if err := json.Unmarshal([]byte(value), &j); err != nil {
		return Argon2Params{}, fmt.Errorf("read hash policy: stored policy: %w", err)
	}
	p := Argon2Params{Memory: j.Memory, Time: j.Time, Threads: j.Threads, SaltLen: j.SaltLen, KeyLen: j.KeyLen}
	if err := p.Validate(); err != nil {
		return Argon2Params{}, fmt.Errorf("read hash policy: stored policy: %w: set a valid one with 'authrelay hash set'", err)
	}
	return p, nil
}

// ValidatePolicy reports why p cannot be the hash policy: it fails
// p.Validate, is below the floor (MinPolicyMemory, MinPolicyTime,
// MinPolicyWork, MinPolicySaltLen) or above the ceiling (MaxPolicyMemory, MaxPolicyTime,
// MaxPolicyThreads, MaxPolicyWork).
func ValidatePolicy(p Argon2Params) error {
	if err := PolicyCeiling(p); err != nil {
		return err
	}
	return PolicyFloor(p)
}

// PolicyCeiling reports why p cannot be run: it fails p.Validate or is
// above the ceiling. A policy below the floor (a database set before the
// floor rose) still runs: serve warns about it, hash set refuses it.
func PolicyCeiling(p Argon2Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	switch {
	case p.Memory > MaxPolicyMemory:
		return fmt.Errorf("argon2id memory %d KiB is above the limit of %d KiB (1 GiB): every concurrent login would hold that much; use at most %d (the default is %d)",
			p.Memory, MaxPolicyMemory, MaxPolicyMemory, DefaultArgon2Params.Memory)
	case p.Time > MaxPolicyTime:
		return fmt.Errorf("argon2id time cost %d is above the limit of %d: a login must fit in the server's authorization timeout; use at most %d, and measure with 'authrelay hash calibrate'",
			p.Time, MaxPolicyTime, MaxPolicyTime)
	case p.Threads > MaxPolicyThreads:
		return fmt.Errorf("argon2id parallelism %d is above the limit of %d lanes; use at most %d (the default is %d)",
			p.Threads, MaxPolicyThreads, MaxPolicyThreads, DefaultArgon2Params.Threads)
	case uint64(p.Memory)*uint64(p.Time) > MaxPolicyWork:
		return fmt.Errorf("argon2id memory × time cost %d KiB × %d is above the limit of %d KiB passes (2 GiB): one hash would take seconds; lower --memory or --time, and measure with 'authrelay hash calibrate'",
			p.Memory, p.Time, MaxPolicyWork)
	}
	return nil
}

// PolicyFloor reports why p is weaker than the floor, or nil.
func PolicyFloor(p Argon2Params) error {
	switch {
	case p.Memory < MinPolicyMemory:
		return fmt.Errorf("argon2id memory %d KiB is below the floor of %d KiB (7 MiB, OWASP's least): that makes cracking a stolen database cheap; use at least %d (the default is %d)",
			p.Memory, MinPolicyMemory, MinPolicyMemory, DefaultArgon2Params.Memory)
	case p.Time < MinPolicyTime:
		return fmt.Errorf("argon2id time cost %d is below the floor of %d", p.Time, MinPolicyTime)
	case uint64(p.Memory)*uint64(p.Time) < MinPolicyWork:
		return fmt.Errorf("argon2id memory × time cost %d KiB × %d is below OWASP's minimum of %d KiB passes (19456 KiB × 2, 12288 × 3, 9216 × 4 or 7168 × 5): use --time %d at this memory, or more memory",
			p.Memory, p.Time, MinPolicyWork, (MinPolicyWork+uint64(p.Memory)-1)/uint64(p.Memory))
	case p.SaltLen < MinPolicySaltLen:
		return fmt.Errorf("argon2id salt length %d is below the floor of %d bytes", p.SaltLen, MinPolicySaltLen)
	}
	return nil
}

// SetHashPolicy stores p as the hash policy, after ValidatePolicy, and makes
// it db.Params (in cluster mode, HashParams). Passwords set from now on are hashed at p; each existing
// password is rehashed at p at its user's next successful login by a process
// that has opened the database since (see Rehash). Like an assignment
// to db.Params, it must not run concurrently with db's other methods.
func (db *DB) SetHashPolicy(ctx context.Context, p Argon2Params) error {
	if err := ValidatePolicy(p); err != nil {
		return fmt.Errorf("set hash policy: %w", err)
	}
	b, err := json.Marshal(policyJSON{Memory: p.Memory, Time: p.Time, Threads: p.Threads, SaltLen: p.SaltLen, KeyLen: p.KeyLen})
	if err != nil {
		return fmt.Errorf("set hash policy: %w", err)
	}
	tx, err := db.begin(ctx)
	if err != nil {
		return fmt.Errorf("set hash policy: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `
		INSERT INTO settings (key, value, updated) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
		settingArgon2id, string(b), formatTime(db.now()))
	if err != nil {
		return fmt.Errorf("set hash policy: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set hash policy: %w", err)
	}
	if db.clustered() || db.policy.Load() != nil {
		// The relay's Follow reads the policy concurrently (params).
		db.policy.Store(&p)
	} else {
		db.Params = p
	}
	return nil
}

// HashParams returns the parameters new password hashes are made at now:
// db.Params, or in cluster mode the hash policy as the cluster log last
// brought it (see Params). Hash a password for this store with these.
func (db *DB) HashParams() Argon2Params { return db.params() }

// params returns the parameters new password hashes are made at: the hash
// policy as the cluster log last brought it, once an entry did (another
// node's 'hash set' reaches this one without a restart), else db.Params.
func (db *DB) params() Argon2Params {
	if p := db.policy.Load(); p != nil {
		return *p
	}
	return db.Params
}

// reloadPolicy reads the hash policy from the database into db.policy,
// after the cluster log brought a settings row (or before an admin change
// in cluster mode: another process, the relay, may have applied one to the
// same file since this one opened it), and reports a change to
// db.OnPolicy. With no policy stored, Params stay. A stored policy outside the ceiling is not taken: the
// previous one stays, and OnPolicy gets the error.
func (db *DB) reloadPolicy(ctx context.Context) {
	was := db.params()
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM settings WHERE key = ?`, settingArgon2id).Scan(&n); err != nil || n == 0 {
		return // none stored: Params stay
	}
	p, err := db.HashPolicy(ctx)
	if err == nil {
		err = PolicyCeiling(p)
	}
	if err != nil {
		if db.OnPolicy != nil {
			db.OnPolicy(was, fmt.Errorf("hash policy from the cluster log: %w", err))
		}
		return
	}
	db.policy.Store(&p)
	if p != was && db.OnPolicy != nil {
		db.OnPolicy(p, nil)
	}
}

// NeedsRehash reports whether a password that verifies against hash should
// be hashed again at p: always for bcrypt, and for argon2id when any of its
// parameters (memory, time, parallelism, salt or key length) differs from p,
// weaker or stronger. Bringing every hash to exactly the policy both applies
// a raised policy and a lowered one (an operator lowers it to make logins
// cheaper), and makes a wrong password cost the same for every user as the
// dummy verification of an unknown one. A hash that cannot be parsed needs
// rehashing too.
func NeedsRehash(hash string, p Argon2Params) bool {
	if schemeOf(hash) != SchemeArgon2id {
		return true
	}
	h, err := parseArgon2id(hash)
	return err != nil || h.params != p
}

// HashInfo returns the scheme of the user's password hash (SchemeArgon2id or
// SchemeBcrypt, SchemeNone for a user without a password) and whether it is at the current policy, db.Params; one that
// is not is rehashed at the user's next successful login. It never returns
// the hash. It returns ErrNotFound if there is no such user.
func (db *DB) HashInfo(ctx context.Context, name string) (scheme string, current bool, err error) {
	var hash string
	var set bool
	err = db.q(ctx).QueryRowContext(ctx, `SELECT password_hash, password_set FROM users WHERE name = ?`, name).Scan(&hash, &set)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, fmt.Errorf("password hash info: user %q %w", name, ErrNotFound)
	case err != nil:
		return "", false, fmt.Errorf("password hash info of %q: %w", name, err)
	}
	if !set {
		// The hash of a secret nobody knows: no password to rehash.
		return SchemeNone, true, nil
	}
	if scheme, err = hashScheme(hash); err != nil {
		return "", false, fmt.Errorf("password hash info of %q: stored %w", name, err)
	}
	return scheme, !NeedsRehash(hash, db.params()), nil
}

// rehash hashes password again at db.Params if hash, the stored hash it has
// just verified against, needs it, and reports the outcome to db.OnRehash.
// It never fails the login: a rehash that could not be done is tried again at
// the next one.
func (db *DB) rehash(ctx context.Context, name, hash, password string) {
	p := db.params()
	if !NeedsRehash(hash, p) {
		return
	}
	// In cluster mode a rehash is a change to replicated state, which
	// goes through the cluster log; a login must never wait on JetStream,
	// so the new hash is queued for RehashLoop to store as an admin change.
	if db.clustered() {
		db.queueRehash(name, hash, password, p)
		return
	}
	done, err := db.rehashPassword(ctx, name, hash, password)
	if (done || err != nil) && db.OnRehash != nil {
		db.OnRehash(name, err)
	}
}

// rehashPassword replaces the user's hash old with a hash of password at
// db.Params, unless the stored hash is no longer old (a concurrent
// SetPassword wins) or db.Params is no longer the stored policy. It reports
// whether it replaced the hash. It waits at most rehashBusyTimeout for
// another writer.
func (db *DB) rehashPassword(ctx context.Context, name, old, password string) (bool, error) {
	// A process with an outdated policy must not bring hashes back to it.
	policy, err := db.HashPolicy(ctx)
	if err != nil {
		return false, fmt.Errorf("rehash password of %q: %w", name, err)
	}
	p := db.params()
	if policy != p {
		return false, fmt.Errorf("rehash password of %q: %w", name, ErrHashPolicyChanged)
	}
	hash, err := HashPassword(password, p)
	if err != nil {
		return false, fmt.Errorf("rehash password of %q: %w", name, err)
	}
	var n int64
	err = db.withBusyTimeout(ctx, rehashBusyTimeout, func(conn *sql.Conn) error {
		// Counting the rehash marks the update as one: the generation
		// trigger (migration 0005) lets it pass, as the credential is
		// unchanged, so relays keep their cached logins.
		res, err := conn.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated = ?, rehashes = rehashes + 1 WHERE name = ? AND password_hash = ?`,
			hash, formatTime(db.now()), name, old)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("rehash password of %q: %w", name, err)
	}
	return n == 1, nil
}

// withBusyTimeout runs fn on a connection of its own whose busy timeout is
// d, and restores the connection's timeout afterwards; a connection whose
// timeout cannot be restored is discarded.
func (db *DB) withBusyTimeout(ctx context.Context, d time.Duration, fn func(*sql.Conn) error) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var was int64
	if err := conn.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&was); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, d.Milliseconds())); err != nil {
		return err
	}
	defer func() {
		_, err := conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA busy_timeout = %d`, was))
		if err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return fn(conn)
}

// Calibration limits: the time costs Calibrate tries, and the runs it
// measures each one with.
const (
	calibrateRuns  = 5
	calibrateSteps = 6
)

// Calibrate finds the argon2id time cost at which one hash with memoryKiB of
// memory and threads lanes takes about target on this machine, and returns
// the parameters (with DefaultArgon2Params' salt and key lengths) and the
// median duration measured at them. The time cost is at least 1, even if
// that takes longer than target, and at most what the policy ceiling allows
// (MaxPolicyTime, MaxPolicyWork). Each candidate is measured
// a few times and the median kept, so a machine busy with other work gives a
// less reliable answer. Calibrate applies no floor (check the result with
// ValidatePolicy before storing it), but refuses memory or threads above the
// policy's ceiling and never suggests a time cost above it.
func Calibrate(target time.Duration, memoryKiB uint32, threads uint8) (Argon2Params, time.Duration, error) {
	p := DefaultArgon2Params
	p.Memory, p.Time, p.Threads = memoryKiB, 1, threads
	if p.Memory > MaxPolicyMemory || p.Threads > MaxPolicyThreads {
		// ValidatePolicy says which and what to give instead.
		return Argon2Params{}, 0, fmt.Errorf("calibrate: %w", ValidatePolicy(p))
	}
	// Never suggest a time cost past the policy's ceiling, nor one below
	// its floor (MinPolicyWork).
	maxTime := uint32(max(min(MaxPolicyTime, MaxPolicyWork/uint64(max(memoryKiB, 1))), 1))
	minTime := uint32(max((MinPolicyWork+uint64(max(memoryKiB, 1))-1)/uint64(max(memoryKiB, 1)), 1))
	if memoryKiB < MinPolicyMemory || minTime > maxTime {
		p.Time = max(minTime, 1)
		return Argon2Params{}, 0, fmt.Errorf("calibrate: %w", ValidatePolicy(p))
	}
	if target <= 0 {
		return Argon2Params{}, 0, fmt.Errorf("calibrate: target %v: give a positive duration such as 50ms", target)
	}
	if err := p.Validate(); err != nil {
		return Argon2Params{}, 0, fmt.Errorf("calibrate: %w", err)
	}
	runs := calibrateRuns
	if target > 250*time.Millisecond {
		runs = 3 // long enough that one run varies little
	}
	measured := map[uint32]time.Duration{}
	measure := func(t uint32) time.Duration {
		if d, ok := measured[t]; ok {
			return d
		}
		d := measureArgon2(p, t, runs)
		measured[t] = d
		return d
	}
	// The cost grows about linearly with the time cost: estimate from the
	// last measurement, and stop when the estimate repeats.
	t := minTime
	converged := uint32(0)
	for range calibrateSteps {
		d := max(measure(t), time.Nanosecond)
		// Clamped as a float: the estimate may not fit in a uint32.
		next := uint32(min(max(math.Round(float64(t)*float64(target)/float64(d)), float64(minTime)), float64(maxTime)))
		if _, seen := measured[next]; seen {
			// The estimate repeats: that is the answer, even when a
			// noisy measurement of another cost came closer to target.
			converged = next
			break
		}
		t = next
	}
	best := converged
	if best == 0 {
		best = minTime
		for c, d := range measured {
			if diff, bestDiff := absDuration(d-target), absDuration(measured[best]-target); diff < bestDiff || diff == bestDiff && c < best {
				best = c
			}
		}
	}
	p.Time = best
	return p, measured[best], nil
}

// measureArgon2 returns the median duration of runs argon2id hashes at p with
// time cost t.
func measureArgon2(p Argon2Params, t uint32, runs int) time.Duration {
	password, salt := []byte("calibrate"), make([]byte, p.SaltLen)
	ds := make([]time.Duration, runs)
	for i := range ds {
		start := time.Now()
		argon2.IDKey(password, salt, t, p.Memory, p.Threads, p.KeyLen)
		ds[i] = time.Since(start)
	}
	slices.Sort(ds)
	return ds[runs/2]
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// PolicyEdit is what 'hash set' changes: each field that is not nil
// replaces the policy's.
type PolicyEdit struct {
	Memory, Time, Threads *uint
	MinPasswordLen        *int
}

// ErrBadPolicy wraps the refusals of PolicyEdit.Check: the values asked
// for, not the database, are wrong.
var ErrBadPolicy = errors.New("bad hash policy")

// CheckFlags refuses, wrapping ErrBadPolicy, an edit of nothing and values
// out of range for their fields, before any policy is read.
func (e PolicyEdit) CheckFlags() error {
	switch {
	case e.Memory == nil && e.Time == nil && e.Threads == nil && e.MinPasswordLen == nil:
		return fmt.Errorf("%w: give at least one of --memory, --time, --threads, --min-password-length", ErrBadPolicy)
	case e.MinPasswordLen != nil && (*e.MinPasswordLen < 1 || *e.MinPasswordLen > MaxMinPasswordLen):
		return fmt.Errorf("%w: --min-password-length %d: want 1 to %d characters (NIST SP 800-63B asks for at least %d)", ErrBadPolicy, *e.MinPasswordLen, MaxMinPasswordLen, DefaultMinPasswordLen)
	case e.Threads != nil && *e.Threads > 255, e.Memory != nil && *e.Memory > 1<<32-1, e.Time != nil && *e.Time > 1<<32-1:
		return fmt.Errorf("%w: value out of range", ErrBadPolicy)
	}
	return nil
}

// Apply returns the hash policy p becomes with e, which CheckFlags has
// passed, and whether e changes the hash (not only the shortest
// password); a hash policy ValidatePolicy refuses is refused, wrapping
// ErrBadPolicy.
func (e PolicyEdit) Apply(p Argon2Params) (Argon2Params, bool, error) {
	if e.Memory != nil {
		p.Memory = uint32(*e.Memory)
	}
	if e.Time != nil {
		p.Time = uint32(*e.Time)
	}
	if e.Threads != nil {
		p.Threads = uint8(*e.Threads)
	}
	hash := e.Memory != nil || e.Time != nil || e.Threads != nil
	if err := ValidatePolicy(p); hash && err != nil {
		return p, false, fmt.Errorf("%w: set hash policy: %w", ErrBadPolicy, err)
	}
	return p, hash, nil
}
