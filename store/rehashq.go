package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// The rehash at login in cluster mode. A login whose password verified
// against a hash that is not at the policy hashes it again at the policy,
// after its answer, as on a single node; but storing the new hash is a
// change to replicated state, which only an admin change makes (it goes
// through the cluster log), and a login never waits on JetStream. So the
// new hash is queued, and RehashLoop stores it as an admin change of its
// own ("password rehash"), replicated like any other: every node then
// verifies the user at the policy. The queue holds hashes, never a
// password; it holds one rehash per user (the first queued; a later login
// of a user already queued computes nothing), and at most
// maxQueuedRehashes users: past that a rehash is dropped, and the user's
// next login queues it again. The change is conditional: it replaces the
// stored hash only if it is still the one the login verified, and only if
// the stored policy is still the one the new hash was made at, so that a
// concurrent passwd (or rehash on another node, or policy change) wins and
// the rehash changes nothing.

// maxQueuedRehashes bounds the rehashes waiting to be stored.
const maxQueuedRehashes = 1024

// RehashActor and RehashAction are the actor and action of the admin
// change that stores a rehash made at login in cluster mode.
const (
	RehashActor  = "authrelay serve"
	RehashAction = "password rehash"
)

// errRehashStale means the stored hash is no longer the one a queued
// rehash replaces: a passwd, or another node's rehash, came first.
var errRehashStale = errors.New("the stored password hash changed since the login verified it")

// rehashJob is one queued rehash: the user's stored hash the login
// verified (old), its replacement at params.
type rehashJob struct {
	name     string
	old, new string
	params   Argon2Params
}

// rehashQueue is the bounded queue of rehashes, one per user.
type rehashQueue struct {
	mu sync.Mutex
	// users are the users queued or being stored, jobs the queued ones in
	// order.
	users map[string]bool
	jobs  []rehashJob
	wake  chan struct{}
}

// has reports whether name is queued or being stored.
func (q *rehashQueue) has(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.users[name]
}

// put queues j unless its user is queued already or the queue is full.
func (q *rehashQueue) put(j rehashJob) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.users[j.name] || len(q.users) >= maxQueuedRehashes {
		return false
	}
	if q.users == nil {
		q.users = map[string]bool{}
	}
	q.users[j.name] = true
	q.jobs = append(q.jobs, j)
	select {
	case q.signal() <- struct{}{}:
	default:
	}
	return true
}

// signal returns the channel that wakes the loop; q.mu is held.
func (q *rehashQueue) signal() chan struct{} {
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
	return q.wake
}

func (q *rehashQueue) waker() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.signal()
}

// take returns the first queued rehash; its user stays queued until done.
func (q *rehashQueue) take() (rehashJob, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.jobs) == 0 {
		return rehashJob{}, false
	}
	j := q.jobs[0]
	q.jobs = q.jobs[1:]
	return j, true
}

// done forgets name: a later login may queue it again.
func (q *rehashQueue) done(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.users, name)
}

// queueRehash hashes password at p and queues the new hash to replace
// hash, the user's stored hash that password verified against, unless the
// user is queued already.
func (db *DB) queueRehash(name, hash, password string, p Argon2Params) {
	if db.rehashes.has(name) {
		return
	}
	newHash, err := HashPassword(password, p)
	if err != nil {
		if db.OnRehash != nil {
			db.OnRehash(name, fmt.Errorf("rehash password of %q: %w", name, err))
		}
		return
	}
	db.rehashes.put(rehashJob{name: name, old: hash, new: newHash, params: p})
}

// RehashLoop stores, in cluster mode, the rehashes logins queued, one
// admin change each, until ctx is done; each outcome goes to db.OnRehash
// (none when the stored hash changed meanwhile, which makes the rehash
// moot). A relay runs it beside its logins; without it, rehashes are
// queued up to the bound and dropped beyond.
func (db *DB) RehashLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-db.rehashes.waker():
		}
		for ctx.Err() == nil {
			j, ok := db.rehashes.take()
			if !ok {
				break
			}
			err := db.storeRehash(ctx, j)
			db.rehashes.done(j.name)
			if errors.Is(err, errRehashStale) || ctx.Err() != nil {
				continue
			}
			if db.OnRehash != nil {
				db.OnRehash(j.name, err)
			}
		}
	}
}

// storeRehash replaces j's user's hash j.old with j.new in an admin change,
// if the stored hash is still j.old and the stored policy still j.params.
func (db *DB) storeRehash(ctx context.Context, j rehashJob) error {
	detail, err := json.Marshal(map[string]string{"user": j.name})
	if err != nil {
		return err
	}
	err = db.Admin(ctx, RehashActor, RehashAction, func(ctx context.Context) (string, error) {
		policy, err := db.HashPolicy(ctx)
		if err != nil {
			return "", err
		}
		if policy != j.params {
			return "", ErrHashPolicyChanged
		}
		tx, err := db.begin(ctx)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		// Counting the rehash marks the update as one, here and on every
		// node that applies it (the change says so): the triggers of the
		// generation, the change feed and the user versions let it pass,
		// as the credential is unchanged, so no relay drops the user's
		// cached logins or closes their connections.
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, updated = ?, rehashes = rehashes + 1 WHERE name = ? AND password_hash = ?`,
			j.new, formatTime(db.now()), j.name, j.old)
		if err != nil {
			return "", err
		}
		if n, err := res.RowsAffected(); err != nil {
			return "", err
		} else if n == 0 {
			return "", errRehashStale
		}
		adminOf(ctx).rehash = true
		return string(detail), tx.Commit()
	})
	if err != nil && !errors.Is(err, errRehashStale) {
		return fmt.Errorf("rehash password of %q: %w", j.name, err)
	}
	return err
}
