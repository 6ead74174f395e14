package deploy

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/authrelay/authrelay/cluster"
	"github.com/authrelay/authrelay/store"
)

// The node events streams of a cluster, beside its log in the AUTH account
// (see the cluster package): the inputs of the lockout state machine, and
// the login rows of the audit trail.
const (
	// LockoutSubject is the subject of the lockout events stream, whose
	// name is the log's stream followed by "_LOCKOUTS".
	LockoutSubject = "authrelay.events.lockouts"
	// AuditSubject is the subject of the login audit stream, whose name is
	// the log's stream followed by "_AUDIT".
	AuditSubject = "authrelay.events.audit"
	// LockoutEventsAge is how long the lockout events stream keeps an
	// event: the day for which a lockout's escalation is remembered
	// (store.DB.Maintain prunes quiet keys after it), and an hour more, so
	// that a node that joins, or comes back within it, counts what the
	// others count.
	LockoutEventsAge = 25 * time.Hour
	// LockoutEventsBytes bounds the lockout events stream (the oldest go
	// first), whatever a flood of failed logins sends.
	LockoutEventsBytes = 1 << 30
)

// LockoutEvents returns the lockout events stream of cl's cluster, on its
// connection.
func (cl *ClusterLog) LockoutEvents(logger *slog.Logger) (*cluster.Events, error) {
	return cluster.NewEvents(cl.Conn, cluster.EventsConfig{
		Stream:      cl.Cluster.Stream + "_LOCKOUTS",
		Subject:     LockoutSubject,
		Description: "authrelay: each node's failed logins, successes, locks and unlocks, applied by every node",
		Replicas:    cl.Cluster.Replicas,
		MaxAge:      LockoutEventsAge,
		MaxBytes:    LockoutEventsBytes,
		Logger:      logger,
	})
}

// AuditEvents returns the login audit stream of cl's cluster, on its
// connection, which keeps a row for retention (0: forever), as the audit
// trail of each node does.
func (cl *ClusterLog) AuditEvents(retention time.Duration, logger *slog.Logger) (*cluster.Events, error) {
	return cluster.NewEvents(cl.Conn, cluster.EventsConfig{
		Stream:      cl.Cluster.Stream + "_AUDIT",
		Subject:     AuditSubject,
		Description: "authrelay: each node's login audit rows, inserted by every other node",
		Replicas:    cl.Cluster.Replicas,
		MaxAge:      retention,
		Logger:      logger,
	})
}

// sendUnlocks has db send its unlocks on cl's lockout events stream
// (store.DB.SendUnlocks).
func (cl *ClusterLog) sendUnlocks(db *store.DB) error {
	ev, err := cl.LockoutEvents(nil)
	if err != nil {
		return err
	}
	db.SendUnlocks(func(ctx context.Context, e store.LockoutEvent) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return ev.Send(ctx, b)
	})
	return nil
}
