package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/cluster"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// clusterWait is how long a node in cluster mode waits between two tries
// to reach the cluster log at start, and how often it reports its
// position.
const clusterWait = time.Second

// clusterMode is a node's part of cluster mode. It is the store's
// replicator from the moment the database opens, so that no write to
// replicated state is ever made outside the log, and forwards to the
// cluster log once the node has reached it; until then every admin change
// fails, saying why.
type clusterMode struct {
	l      deploy.Layout
	c      deploy.Cluster
	db     *store.DB
	logger *slog.Logger
	// reload has this node's server reload its config, after a change
	// from the log rewrote accounts.conf.
	reload func(ctx context.Context) error

	log   atomic.Pointer[deploy.ClusterLog]
	ready atomic.Bool
	// applied and last are the copy's position and the log's end, as last
	// read, for the metrics.
	applied, last atomic.Uint64
}

var (
	_ store.Replicator = (*clusterMode)(nil)
	_ store.LogChecker = (*clusterMode)(nil)
)

var errNotReached = errors.New("this relay has not reached the cluster log yet")

// errNoSnapshot is why a node with an empty copy waits on an empty log:
// it joins a cluster whose first node has not written its database into
// the log yet.
var errNoSnapshot = errors.New("the cluster log is empty, and so is this node's copy: waiting for the cluster's first node to write its database into the log (start its relay: 'authrelay serve --dir' on the node made with 'init --cluster-listen' or 'cluster enable')")

func (m *clusterMode) notReached() error {
	return fmt.Errorf("cluster log %s: %w: %w: the change is not made; see this relay's log for why", m.c.Stream, cluster.ErrNoQuorum, errNotReached)
}

// Append is store.Replicator's, through the log once reached.
func (m *clusterMode) Append(ctx context.Context, after uint64, parts ...[]byte) (uint64, error) {
	cl := m.log.Load()
	if cl == nil {
		return 0, m.notReached()
	}
	return cl.Append(ctx, after, parts...)
}

// Check is store.LogChecker's, through the log once reached.
func (m *clusterMode) Check(ctx context.Context) (uint64, error) {
	cl := m.log.Load()
	if cl == nil {
		return 0, m.notReached()
	}
	return cl.Check(ctx)
}

func (m *clusterMode) catchUp(ctx context.Context) error {
	cl := m.log.Load()
	if cl == nil {
		return m.notReached()
	}
	return cl.CatchUp(ctx, m.db)
}

// position is the copy's position and the log's end, for the metrics.
func (m *clusterMode) position() (applied, last uint64) { return m.applied.Load(), m.last.Load() }

// readyCheck is /readyz's check of cluster mode: not ready until the copy
// has caught up with the log at start.
func (m *clusterMode) readyCheck(context.Context) error {
	if !m.ready.Load() {
		return errors.New("catching up with the cluster log: this relay answers no login until its copy has every change the log holds")
	}
	return nil
}

// start reaches the cluster log at url, trying again every clusterWait
// and logging why while it cannot, then brings the copy to the log's end:
// a snapshot of the database when the log is empty (the first node, or a
// single-node directory converted), else a catch-up. It returns nil once
// the copy has caught up, or ctx's error.
func (m *clusterMode) start(ctx context.Context, url string, opts []nats.Option) error {
	// One server only: the copy must follow this node's server, and the
	// reload after an account change is for it.
	opts = append([]nats.Option{nats.Name("authrelay serve (cluster log)"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond), nats.IgnoreDiscoveredServers(), nats.Timeout(deploy.ClusterTimeout)}, opts...)
	for {
		cl, err := m.l.ConnectCluster(ctx, m.c, url, opts, m.logger)
		if err == nil {
			m.log.Store(cl)
			m.db.CloseWith(cl.Conn.Close)
			break
		}
		m.logger.Warn("cannot reach the cluster log; no login is answered until it is reached and caught up; trying again", "err", err, "retry_in", clusterWait)
		if err := sleep(ctx, clusterWait); err != nil {
			return err
		}
	}
	cl := m.log.Load()
	for waited := false; ; {
		err := m.bootstrapOrCatchUp(ctx, cl)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case errors.Is(err, errNoSnapshot) && waited:
			m.logger.Debug("still waiting for the first node's snapshot", "err", err)
		case errors.Is(err, errNoSnapshot):
			waited = true
			m.logger.Warn("no login is answered until this node's copy holds the cluster's state", "err", err)
		default:
			m.logger.Warn("cannot catch up with the cluster log; no login is answered until it has; trying again", "err", err, "retry_in", clusterWait)
		}
		if err := sleep(ctx, clusterWait); err != nil {
			return err
		}
	}
	applied, err := m.db.AppliedSeq(ctx)
	if err != nil {
		return err
	}
	m.applied.Store(applied)
	m.last.Store(applied)
	// This node's server must have the copy's accounts before the relay
	// grants a login into one: a joining node's accounts.conf has none of
	// the cluster's yet, and the server refuses a grant into an account it
	// has not loaded ("account missing").
	m.syncAccounts(ctx)
	m.ready.Store(true)
	m.logger.Info("caught up with the cluster log", "stream", m.c.Stream, "applied", applied)
	return nil
}

// bootstrapOrCatchUp brings the copy to the log's end. What "caught up"
// means for an empty log depends on the copy: a copy with replicated rows
// (the first node: init wrote its accounts, or a single node converted)
// writes them into the log as its snapshot, and is then caught up; an
// empty copy (a node made with 'init --join') has nothing to give the
// cluster and is not caught up until it holds the first node's snapshot,
// so it fails with errNoSnapshot while the log is empty. A joining node
// never reports ready, nor answers a login, with an empty copy that only
// looks current because the first node has not started yet.
func (m *clusterMode) bootstrapOrCatchUp(ctx context.Context, cl *deploy.ClusterLog) error {
	last, err := cl.LastSeq(ctx)
	if err != nil {
		return err
	}
	applied, err := m.db.AppliedSeq(ctx)
	if err != nil {
		return err
	}
	if last == 0 && applied == 0 {
		seq, err := cl.Bootstrap(ctx, m.db)
		if err == nil && seq == 0 {
			return errNoSnapshot
		}
		if err == nil {
			m.logger.Info("the cluster log was empty: wrote this database into it, as the cluster's first node", "stream", m.c.Stream, "entries", seq)
			return nil
		}
		// Another node's snapshot came first only if the log now has
		// entries; any other failure (no answer from JetStream) is tried
		// again, or this node would follow a log that never gets its
		// snapshot, and every other node would miss the state it holds.
		if last, lerr := cl.LastSeq(ctx); lerr != nil || last == 0 {
			return err
		}
		m.logger.Info("another node wrote the cluster log first; catching up", "err", err)
	}
	return cl.CatchUp(ctx, m.db)
}

// run follows the log until ctx is done (cluster.Log.Follow starts again
// after an error), and every clusterWait reads the log's end, reports the
// copy's position to the other nodes (Positions) and, when applied
// changes altered the accounts, rewrites accounts.conf and has this
// node's server reload.
func (m *clusterMode) run(ctx context.Context) {
	cl := m.log.Load()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		cl.Follow(ctx, m.db) // returns ctx's error only
	}()
	defer func() { <-followed }()
	// This node's commands learn the stream's servers from the relay.
	if stop, err := cl.AnswerPeers(); err != nil {
		m.logger.Warn("commands on this node cannot learn the cluster log's servers from this relay", "err", err)
	} else {
		defer stop()
	}
	kv := positionsBucket(ctx, cl, m.logger)
	tick := time.NewTicker(clusterWait / 4)
	defer tick.Stop()
	var seen uint64
	var lastReport time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		applied, err := m.db.AppliedSeq(ctx)
		if err != nil {
			continue
		}
		m.applied.Store(applied)
		if applied != seen {
			seen = applied
			m.syncAccounts(ctx)
		}
		if time.Since(lastReport) < clusterWait {
			continue
		}
		lastReport = time.Now()
		if last, err := cl.LastSeq(ctx); err == nil {
			m.last.Store(last)
		}
		if kv == nil {
			kv = positionsBucket(ctx, cl, m.logger)
		}
		if kv != nil {
			reportPosition(ctx, kv, cl.Conn, applied, m.logger)
		}
	}
}

// syncAccounts rewrites accounts.conf when the accounts in the copy differ
// from it, and has this node's server reload.
func (m *clusterMode) syncAccounts(ctx context.Context) {
	changed, err := m.l.WriteAccountsConf(ctx, m.db)
	if err != nil {
		m.logger.Error("cannot rewrite accounts.conf after a change from the cluster log", "err", err)
		return
	}
	if !changed {
		return
	}
	if err := m.reload(ctx); err != nil {
		m.logger.Error("accounts.conf rewritten after a change from the cluster log, but the server did not reload it; run 'authrelay reload'", "err", err)
		return
	}
	m.logger.Info("accounts changed on another node: rewrote accounts.conf and reloaded this node's server")
}

// PositionsBucket is the KV bucket, in the AUTH account beside the cluster
// log, where each relay reports its copy's position every second, under
// its server's name: what 'authrelay cluster status' shows.
const PositionsBucket = "AUTHRELAY_NODES"

// Position is what a relay reports in PositionsBucket.
type Position struct {
	// Server is the name of the NATS server the relay follows the log on.
	Server string `json:"server_name"`
	// Applied is the last log entry the relay's copy holds.
	Applied uint64 `json:"applied"`
	// Time is when the relay reported.
	Time time.Time `json:"time"`
}

// positionsBucket opens, creating it if need be, the positions bucket;
// nil when JetStream does not answer (the next report tries again).
func positionsBucket(ctx context.Context, cl *deploy.ClusterLog, logger *slog.Logger) jetstream.KeyValue {
	js, err := jetstream.New(cl.Conn)
	if err != nil {
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, deploy.ClusterTimeout)
	defer cancel()
	kv, err := js.CreateOrUpdateKeyValue(tctx, jetstream.KeyValueConfig{
		Bucket:      PositionsBucket,
		Description: "authrelay: each relay's position in the cluster log",
		History:     1,
		Replicas:    cl.Cluster.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		logger.Debug("cannot open the relays' positions bucket", "err", err)
		return nil
	}
	return kv
}

func reportPosition(ctx context.Context, kv jetstream.KeyValue, nc *nats.Conn, applied uint64, logger *slog.Logger) {
	name := nc.ConnectedServerName()
	if name == "" {
		return
	}
	b, err := json.Marshal(Position{Server: name, Applied: applied, Time: time.Now().UTC()})
	if err != nil {
		return
	}
	tctx, cancel := context.WithTimeout(ctx, deploy.ClusterTimeout)
	defer cancel()
	if _, err := kv.Put(tctx, positionKey(name), b); err != nil {
		logger.Debug("cannot report this relay's position", "err", err)
	}
}

// positionKey is a server name as a KV key: characters a key cannot hold
// become '_'.
func positionKey(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '=':
			return r
		}
		return '_'
	}, name)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// ClusterStatus is where the cluster log and the relays' copies of it are.
type ClusterStatus struct {
	// Stream is the cluster log's stream, Last the number of its last entry.
	Stream string `json:"stream"`
	Last   uint64 `json:"last_seq"`
	// Applied is the last entry this directory's copy holds.
	Applied uint64 `json:"applied_seq"`
	// Relays are the positions the relays reported, by server name.
	Relays []RelayStatus `json:"relays"`
}

// RelayStatus is one relay's last report and how far it is behind.
type RelayStatus struct {
	Position
	// Behind is how many entries the log holds beyond the copy's.
	Behind uint64 `json:"behind"`
	// AgeSeconds is how old the report is: a relay reports every second,
	// so an old one is a relay that stopped (or cannot reach JetStream).
	AgeSeconds float64 `json:"age_seconds"`
}

// ReadClusterStatus reads the cluster log's end, db's position in it, and
// the positions the relays reported, as of now.
func ReadClusterStatus(ctx context.Context, cl *deploy.ClusterLog, db *store.DB, now time.Time) (ClusterStatus, error) {
	st := ClusterStatus{Stream: cl.Cluster.Stream, Relays: []RelayStatus{}}
	var err error
	if st.Applied, err = db.AppliedSeq(ctx); err != nil {
		return st, err
	}
	if st.Last, err = cl.LastSeq(ctx); err != nil {
		return st, err
	}
	js, err := jetstream.New(cl.Conn)
	if err != nil {
		return st, err
	}
	tctx, cancel := context.WithTimeout(ctx, deploy.ClusterTimeout)
	defer cancel()
	kv, err := js.KeyValue(tctx, PositionsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return st, nil // no relay has reported yet
	}
	if err != nil {
		return st, fmt.Errorf("read the relays' positions: %w", err)
	}
	keys, err := kv.Keys(tctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return st, fmt.Errorf("read the relays' positions: %w", err)
	}
	for _, k := range keys {
		e, err := kv.Get(tctx, k)
		if err != nil {
			return st, fmt.Errorf("read the relays' positions: %w", err)
		}
		var p Position
		if json.Unmarshal(e.Value(), &p) != nil {
			continue // not a relay's report
		}
		r := RelayStatus{Position: p, AgeSeconds: max(0, now.Sub(p.Time).Seconds())}
		if st.Last > p.Applied {
			r.Behind = st.Last - p.Applied
		}
		st.Relays = append(st.Relays, r)
	}
	return st, nil
}

// Status reads the cluster status of l (ReadClusterStatus) through the
// server at url, connected with opts as l's relay user. A directory that
// is a single node is an error that says so.
func Status(ctx context.Context, l deploy.Layout, url string, opts []nats.Option, now time.Time) (ClusterStatus, error) {
	c, ok, err := l.Cluster()
	if err != nil {
		return ClusterStatus{}, err
	}
	if !ok {
		return ClusterStatus{}, fmt.Errorf("cluster status: %s is a single node (no %s): there is no cluster log to report on", l.Dir, deploy.ClusterFile)
	}
	db, err := l.OpenLocal(ctx)
	if err != nil {
		return ClusterStatus{}, err
	}
	defer db.Close()
	opts = append([]nats.Option{nats.Name("authrelay cluster status"), nats.Timeout(deploy.ClusterTimeout), nats.NoReconnect()}, opts...)
	cl, err := l.ConnectCluster(ctx, c, url, opts, nil)
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("cluster status: %w", err)
	}
	defer cl.Conn.Close()
	st, err := ReadClusterStatus(ctx, cl, db, now)
	if err != nil {
		return st, fmt.Errorf("cluster status: %w", err)
	}
	return st, nil
}

// WriteText writes st as 'authrelay cluster status' prints it for the
// directory dir: a line on the log, then a table of the relays.
func (st ClusterStatus) WriteText(w io.Writer, dir string) error {
	fmt.Fprintf(w, "cluster log %s: last entry %d; this copy (%s) has applied %d\n", st.Stream, st.Last, dir, st.Applied)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tAPPLIED\tBEHIND\tREPORTED")
	for _, r := range st.Relays {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1fs ago\n", accounts.ClientText(r.Server), r.Applied, r.Behind, r.AgeSeconds)
	}
	return tw.Flush()
}
