package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// Node events. In cluster mode the lockout state and the login rows of the
// audit trail are not in the ordered cluster log: each node sends what its
// logins changed as events on a JetStream stream of their own (the cluster
// package's Events), and every other node applies them here, in the order
// of the stream, each message once: the stream position of the last
// message applied (EventPosition) is written in the same transaction as
// what the message changed. The design is in the cluster package's comment.

// EventPosition returns the sequence of the last message of the events
// stream named stream that this copy has applied, 0 if none.
func (db *DB) EventPosition(ctx context.Context, stream string) (uint64, error) {
	var seq int64
	err := db.sql.QueryRowContext(ctx, `SELECT seq FROM event_positions WHERE stream = ?`, stream).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read position in events stream %s: %w", stream, err)
	}
	return uint64(seq), nil
}

// eventPosition reads the position of stream in tx.
func eventPosition(ctx context.Context, tx *sql.Tx, stream string) (uint64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `SELECT seq FROM event_positions WHERE stream = ?`, stream).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return uint64(seq), err
}

// setEventPosition records in tx that stream is applied up to seq.
func setEventPosition(ctx context.Context, tx *sql.Tx, stream string, seq uint64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO event_positions (stream, seq) VALUES (?, ?)
		ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq`, stream, int64(seq))
	return err
}

// applyEvents runs fn on the events after this copy's position in stream,
// in one transaction that then sets the position to last. last 0 with no
// events starts the stream again from its beginning (the stream was
// replaced).
func applyEvents[E any](ctx context.Context, db *DB, stream string, last uint64, evs []E, seq func(E) uint64, fn func(tx *sql.Tx, e E) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	pos, err := eventPosition(ctx, tx, stream)
	if err != nil {
		return err
	}
	if last == 0 && len(evs) == 0 {
		pos = 0
	}
	for _, e := range evs {
		if last != 0 && seq(e) <= pos {
			continue // applied already: a redelivery
		}
		if err := fn(tx, e); err != nil {
			return err
		}
	}
	if err := setEventPosition(ctx, tx, stream, last); err != nil {
		return err
	}
	return tx.Commit()
}

// AuditRecord is a login row of the audit trail as it travels between the
// nodes of a cluster: what AuditWriter wrote, without the local ID.
type AuditRecord struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user,omitempty"`
	Account   string    `json:"account,omitempty"`
	Host      string    `json:"client_host,omitempty"`
	ServerID  string    `json:"server_id,omitempty"`
	ClientID  uint64    `json:"client_id,omitempty"`
	ConnType  string    `json:"conn_type,omitempty"`
	Result    string    `json:"result"`
	Reason    string    `json:"reason,omitempty"`
	LatencyNS int64     `json:"latency_ns,omitempty"`
	Count     int64     `json:"count,omitempty"`
}

// RemoteAudit is a login row another node sent, with the stream sequence
// of the message that carried it and the node's name.
type RemoteAudit struct {
	Seq    uint64
	Node   string
	Record AuditRecord
}

// maxRemoteField bounds each text field of a login row from another node:
// the relay that wrote it bounded the fields already; this is a backstop.
const maxRemoteField = 1024

// ApplyRemoteAudit inserts the login rows of other nodes, those after this
// copy's position in the events stream named stream, marked with their
// node, and records last as the position, in one transaction: a row is
// inserted once however often its message is delivered. A row that no
// relay writes (a result other than allowed or denied) is skipped rather
// than stop the stream at it. last 0 with no rows starts the stream again.
func (db *DB) ApplyRemoteAudit(ctx context.Context, stream string, last uint64, rows []RemoteAudit) error {
	err := applyEvents(ctx, db, stream, last, rows, func(r RemoteAudit) uint64 { return r.Seq }, func(tx *sql.Tx, r RemoteAudit) error {
		rec := r.Record
		if rec.Result != AuditAllowed && rec.Result != AuditDenied {
			return nil
		}
		for _, s := range []*string{&r.Node, &rec.User, &rec.Account, &rec.Host, &rec.ServerID, &rec.ConnType, &rec.Reason} {
			if len(*s) > maxRemoteField {
				*s = (*s)[:maxRemoteField]
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit
			(time, kind, user, account, client_host, server_id, client_id, conn_type, result, reason, latency_ns, count, node)
			VALUES (?, 'login', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			unixNanos(rec.Time), rec.User, rec.Account, rec.Host, rec.ServerID, int64(rec.ClientID), rec.ConnType,
			rec.Result, rec.Reason, rec.LatencyNS, max(rec.Count, 1), r.Node)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply login audit rows of other nodes: %w", err)
	}
	return nil
}

// The kinds of LockoutEvent.
const (
	// LockoutEventFail is a failed login (Lockouts.Failed).
	LockoutEventFail = "fail"
	// LockoutEventSuccess is a successful login that cleared a pair's
	// failures or recorded a known address (Lockouts.Succeeded).
	LockoutEventSuccess = "success"
	// LockoutEventLock is a key that a failure locked.
	LockoutEventLock = "lock"
	// LockoutEventUnlock is an admin's 'user unlock' (DB.Unlock).
	LockoutEventUnlock = "unlock"
)

// LockoutEvent is one input of the lockout state machine as a node sends
// it to the others in cluster mode: they apply it with the same rules
// (Lockouts.ApplyRemote), so that a failure is counted once on every node
// whichever relay saw it, and a lock set on one node refuses on all.
// User and Addr are keys as the sender counted them (a valid username, a
// canonical address or IPv6 prefix), or "" where none counts.
type LockoutEvent struct {
	Kind string    `json:"kind"`
	Time time.Time `json:"time"`
	User string    `json:"user,omitempty"`
	Addr string    `json:"addr,omitempty"`
	// CountsForUser is set on a failure that counts against the username
	// from everywhere (accounts.Failure.CountsForUser).
	CountsForUser bool `json:"counts_for_user,omitempty"`
	// A lock: the key's kind (LockoutPair, LockoutAddr, LockoutUser) and
	// its state once locked.
	Key          string    `json:"key,omitempty"`
	LockedUntil  time.Time `json:"locked_until,omitzero"`
	Locks        int       `json:"locks,omitempty"`
	LockFailures int       `json:"lock_failures,omitempty"`
	LockWindowS  int64     `json:"lock_window_s,omitempty"`
}

// RemoteLockout is a lockout event another node sent (or, for an unlock,
// any node), with the stream sequence of the message that carried it.
type RemoteLockout struct {
	Seq   uint64
	Event LockoutEvent
}

// OnEvent has l send the lockout events of this node's logins, in cluster
// mode: send is called, synchronously, from Failed and Succeeded with what
// they changed, and must never block (cluster.Events.Publish queues). Call
// it before l is shared.
func (l *Lockouts) OnEvent(send func(LockoutEvent)) {
	l.send = send
}

// publish sends e, when l sends events.
func (l *Lockouts) publish(e LockoutEvent) {
	if l.send != nil {
		l.send(e)
	}
}

// ApplyRemote applies other nodes' lockout events after this copy's
// position in the events stream named stream, with this relay's policy and
// the same rules as Failed and Succeeded, and records last as the
// position, in one transaction. An event's time is taken as it was sent,
// but never later than now: a node whose clock runs ahead cannot set a
// window or a lock in this node's future. An event of a kind this node
// does not know is skipped. last 0 with no events starts the stream again.
func (l *Lockouts) ApplyRemote(ctx context.Context, stream string, last uint64, evs []RemoteLockout) error {
	if l.err != nil {
		return l.err
	}
	now := l.db.now()
	err := applyEvents(ctx, l.db, stream, last, evs, func(r RemoteLockout) uint64 { return r.Seq }, func(tx *sql.Tx, r RemoteLockout) error {
		e := r.Event
		if e.User != "" && accounts.ValidateName(e.User) != nil || len(e.Addr) > maxAddrLen {
			return nil // no key a relay counts under: skipped, not stuck at
		}
		at := e.Time
		if at.IsZero() || at.After(now) {
			at = now
		}
		switch e.Kind {
		case LockoutEventFail:
			k := keySet{name: e.User, addr: e.Addr}
			k.pair = l.p.Threshold > 0 && k.name != "" && k.addr != ""
			k.address = l.p.AddrThreshold > 0 && k.addr != ""
			k.user = l.p.UserThreshold > 0 && k.name != "" && e.CountsForUser
			for _, c := range l.counted(k) {
				if _, _, err := l.fail(ctx, tx, c.key, c.threshold, at); err != nil {
					return err
				}
			}
		case LockoutEventSuccess:
			return l.applySuccess(ctx, tx, e.User, e.Addr, at)
		case LockoutEventLock:
			return l.applyLock(ctx, tx, e, at)
		case LockoutEventUnlock:
			if e.User == "" && e.Addr == "" {
				return nil
			}
			_, err := l.db.unlock(ctx, tx, e.User, e.Addr, now)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply lockout events of other nodes: %w", err)
	}
	return nil
}

// applySuccess applies another node's successful login of name from addr
// at: the pair's failures are cleared unless it is locked at at, and the
// address is known for the user from at (unless known later already).
func (l *Lockouts) applySuccess(ctx context.Context, tx *sql.Tx, name, addr string, at time.Time) error {
	if name == "" || addr == "" {
		return nil
	}
	ts := formatTime(at)
	if l.p.Threshold > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM lockouts WHERE `+clearablePair+` AND locks = 0`, name, addr, ts); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE lockouts SET failures = 0, window_start = ?3 WHERE `+clearablePair, name, addr, ts); err != nil {
			return err
		}
	}
	if l.p.KnownFor > 0 && l.p.UserThreshold > 0 {
		return recordKnown(ctx, tx, name, addr, ts)
	}
	return nil
}

// recordKnown records addr as known for the user name since at, keeping
// the later time and only the most recent maxKnownAddrs addresses.
func recordKnown(ctx context.Context, tx *sql.Tx, name, addr, at string) error {
	// Only for a user that exists (the login may race a removal).
	_, err := tx.ExecContext(ctx, `
		INSERT INTO known_addrs (user, addr, last_success)
		SELECT name, ?2, ?3 FROM users WHERE name = ?1
		ON CONFLICT (user, addr) DO UPDATE SET last_success = max(last_success, excluded.last_success)`, name, addr, at)
	if err != nil {
		return fmt.Errorf("known address: %w", err)
	}
	_, err = tx.ExecContext(ctx, `
		DELETE FROM known_addrs WHERE user = ?1 AND addr NOT IN (
			SELECT addr FROM known_addrs WHERE user = ?1 ORDER BY last_success DESC LIMIT ?2)`, name, maxKnownAddrs)
	if err != nil {
		return fmt.Errorf("known address: %w", err)
	}
	return nil
}

// applyLock merges a lock another node set into this copy: the later end
// and the larger count of locks win, as when the failures held in memory
// are written back.
func (l *Lockouts) applyLock(ctx context.Context, tx *sql.Tx, e LockoutEvent, at time.Time) error {
	key := lockKey{kind: e.Key, user: e.User, addr: e.Addr}
	switch {
	case key.kind == LockoutPair && key.user != "" && key.addr != "":
	case key.kind == LockoutAddr && key.user == "" && key.addr != "":
	case key.kind == LockoutUser && key.user != "" && key.addr == "":
	default:
		return nil // no key this node counts
	}
	if e.LockedUntil.IsZero() || e.Locks < 1 {
		return nil
	}
	// A lock no longer than this node's longest, however long the sender
	// asked for.
	until := e.LockedUntil
	if limit := at.Add(l.p.MaxDuration); until.After(limit) {
		until = limit
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO lockouts (kind, user, addr, failures, window_start, locked_until, locks, lock_failures, lock_window, updated)
		VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8, ?4)
		ON CONFLICT (kind, user, addr) DO UPDATE SET
			lock_failures = CASE WHEN excluded.locked_until > coalesce(locked_until, '') THEN excluded.lock_failures ELSE lock_failures END,
			lock_window = CASE WHEN excluded.locked_until > coalesce(locked_until, '') THEN excluded.lock_window ELSE lock_window END,
			failures = CASE WHEN excluded.locked_until > coalesce(locked_until, '') THEN 0 ELSE failures END,
			window_start = CASE WHEN excluded.locked_until > coalesce(locked_until, '') THEN excluded.window_start ELSE window_start END,
			locked_until = max(coalesce(locked_until, ''), excluded.locked_until),
			locks = max(locks, excluded.locks),
			updated = excluded.updated`,
		key.kind, key.user, key.addr, formatTime(at), formatTime(until), e.Locks, max(e.LockFailures, 0), max(e.LockWindowS, 0))
	return err
}
