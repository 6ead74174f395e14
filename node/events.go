package node

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authrelay/authrelay/cluster"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/metrics"
	"github.com/authrelay/authrelay/store"
)

// eventsFlushTimeout bounds how long a stopping node tries to send the
// node events it still holds.
const eventsFlushTimeout = 5 * time.Second

// nodeEvents is a cluster node's part of the node events (see the cluster
// package): it sends what this node's logins changed in the lockouts and
// the audit trail, and applies what the other nodes sent. The store is
// given its publish methods before the relay starts; the streams are
// reached once the node has reached the cluster log (start). No login
// happens before: the relay answers none until then.
type nodeEvents struct {
	db     *store.DB
	guard  *store.Lockouts
	logger *slog.Logger

	lockouts, audit atomic.Pointer[cluster.Events]
	// early counts the events given before start (none are expected).
	early atomic.Uint64
}

func newNodeEvents(db *store.DB, guard *store.Lockouts, logger *slog.Logger) *nodeEvents {
	ne := &nodeEvents{db: db, guard: guard, logger: logger}
	guard.OnEvent(ne.publishLockout)
	return ne
}

// publishLockout is the guard's OnEvent.
func (ne *nodeEvents) publishLockout(e store.LockoutEvent) {
	ev := ne.lockouts.Load()
	if ev == nil {
		ne.early.Add(1)
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		ne.early.Add(1)
		return
	}
	ev.Publish(b)
}

// publishAudit is the audit writer's OnWrite.
func (ne *nodeEvents) publishAudit(rows []store.AuditRecord) {
	ev := ne.audit.Load()
	for _, r := range rows {
		b, err := json.Marshal(r)
		if ev == nil || err != nil {
			ne.early.Add(1)
			continue
		}
		ev.Publish(b)
	}
}

// start reaches the node events streams on cl's connection, sends what the
// store gives from now on, and follows the other nodes' events until the
// returned stop is called (which first sends what is held, for up to
// eventsFlushTimeout).
func (ne *nodeEvents) start(ctx context.Context, cl *deploy.ClusterLog, retention time.Duration) (stop func(), err error) {
	lock, err := cl.LockoutEvents(ne.logger)
	if err != nil {
		return nil, err
	}
	audit, err := cl.AuditEvents(retention, ne.logger)
	if err != nil {
		return nil, err
	}
	lock.Start()
	audit.Start()
	ne.lockouts.Store(lock)
	ne.audit.Store(audit)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		lock.Follow(ctx, ne.position(lock), ne.applyLockouts(lock)) // returns ctx's error only
	}()
	go func() {
		defer wg.Done()
		audit.Follow(ctx, ne.position(audit), ne.applyAudit(audit))
	}()
	return func() {
		fctx, fcancel := context.WithTimeout(context.Background(), eventsFlushTimeout)
		defer fcancel()
		for _, ev := range []*cluster.Events{lock, audit} {
			if err := ev.Close(fctx); err != nil {
				ne.logger.Error("node events not all sent", "stream", ev.Stream(), "err", err)
			}
			if st := ev.Stats(); st.Lost > 0 {
				ne.logger.Error("node events never sent to the other nodes", "stream", ev.Stream(), "lost", st.Lost, "sent", st.Sent)
			}
		}
		cancel()
		wg.Wait()
	}, nil
}

func (ne *nodeEvents) position(ev *cluster.Events) func(context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) { return ne.db.EventPosition(ctx, ev.Stream()) }
}

// applyLockouts applies the other nodes' lockout events: this node's own
// failures, successes and locks are in its copy already; an unlock is
// applied whoever sent it (the command that sent it may have reached the
// stream through another node's server).
func (ne *nodeEvents) applyLockouts(ev *cluster.Events) func(ctx context.Context, last uint64, evs []cluster.Event) error {
	return func(ctx context.Context, last uint64, evs []cluster.Event) error {
		var list []store.RemoteLockout
		for _, e := range evs {
			var le store.LockoutEvent
			if err := json.Unmarshal(e.Data, &le); err != nil {
				ne.logger.Warn("skipped a lockout event that does not decode", "stream", ev.Stream(), "seq", e.Seq, "err", err)
				continue
			}
			if e.Node == ev.Node() && le.Kind != store.LockoutEventUnlock {
				continue
			}
			list = append(list, store.RemoteLockout{Seq: e.Seq, Event: le})
		}
		return ne.guard.ApplyRemote(ctx, ev.Stream(), last, list)
	}
}

// applyAudit inserts the other nodes' login audit rows, marked with their
// node.
func (ne *nodeEvents) applyAudit(ev *cluster.Events) func(ctx context.Context, last uint64, evs []cluster.Event) error {
	return func(ctx context.Context, last uint64, evs []cluster.Event) error {
		var rows []store.RemoteAudit
		for _, e := range evs {
			if e.Node == ev.Node() {
				continue
			}
			var r store.AuditRecord
			if err := json.Unmarshal(e.Data, &r); err != nil {
				ne.logger.Warn("skipped a login audit row that does not decode", "stream", ev.Stream(), "seq", e.Seq, "err", err)
				continue
			}
			rows = append(rows, store.RemoteAudit{Seq: e.Seq, Node: e.Node, Record: r})
		}
		return ne.db.ApplyRemoteAudit(ctx, ev.Stream(), last, rows)
	}
}

// watch exports the streams' counts (metrics.WatchEvents) and returns the
// readiness check that fails while events were lost recently.
func (ne *nodeEvents) watch(met *metrics.Metrics) metrics.Check {
	stats := func(p *atomic.Pointer[cluster.Events]) func() (uint64, uint64, int) {
		return func() (uint64, uint64, int) {
			ev := p.Load()
			if ev == nil {
				return 0, 0, 0
			}
			st := ev.Stats()
			return st.Sent, st.Lost, st.Waiting
		}
	}
	met.WatchEvents("lockouts", stats(&ne.lockouts))
	met.WatchEvents("audit", stats(&ne.audit))
	return metrics.Check{Name: "cluster events", Check: func(context.Context) error {
		var errs []error
		for _, p := range []*atomic.Pointer[cluster.Events]{&ne.lockouts, &ne.audit} {
			if ev := p.Load(); ev != nil {
				errs = append(errs, ev.Health())
			}
		}
		return errors.Join(errs...)
	}}
}
