package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/cluster"
	"github.com/authrelay/authrelay/store"
)

// StoreOptions say how OpenStore reaches the cluster log of a directory in
// cluster mode; a single node ignores them.
type StoreOptions struct {
	// Target is how to reach this node's NATS server, in natscli's order
	// (NATSTarget.Resolve): its URL, else $NATS_URL, else the context's,
	// else the listen address of the directory's nats.conf.
	Target NATSTarget
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Warn is told, once, that the cluster log cannot be reached and the
	// store reads this node's copy alone; nil logs it with slog.Default.
	Warn func(msg string)
	// Name names the connection, as the server's connz lists it.
	Name string
}

// ClusterTimeout bounds the connect to the NATS server and every request
// to the cluster log a command makes.
const ClusterTimeout = cluster.DefaultTimeout

// OpenStore opens the database of an initialised directory, as
// OpenLocal, and in cluster mode (cluster.json) attaches it to the cluster
// log: it connects to this node's server as the relay user of
// secrets.json, opens the log (the stream of cluster.json, in the AUTH
// account) and applies the entries the copy lacks, so that what another
// node changed is read here. Closing the store closes the connection.
//
// When the log cannot be reached (this node's server down, or JetStream
// without quorum) the store still opens: reads come from this node's copy,
// which may miss the latest changes, and o.Warn says so once; every write
// fails at once with the reason and makes no change.
func (l Layout) OpenStore(ctx context.Context, o StoreOptions) (*store.DB, error) {
	db, err := l.OpenLocal(ctx)
	if err != nil {
		return nil, err
	}
	c, ok, err := l.Cluster()
	if err != nil || !ok {
		if err != nil {
			db.Close()
		}
		return db, err
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Warn == nil {
		o.Warn = func(msg string) { slog.Warn(msg) }
	}
	url, opts, err := o.Target.Resolve(&l, o.Getenv)
	if err != nil {
		db.Close()
		return nil, err
	}
	opts = append(opts, nats.Timeout(ClusterTimeout), nats.NoReconnect())
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	cl, err := l.ConnectCluster(ctx, c, url, opts, nil)
	if err == nil {
		cl.Attach(db)
		db.CloseWith(cl.Conn.Close)
		if err = cl.sendUnlocks(db); err != nil {
			db.Close()
			return nil, err
		}
		if err = cl.CatchUp(ctx, db); err == nil {
			return db, nil
		}
		o.Warn(fmt.Sprintf("cluster log %s: %v: reading this node's copy, which may miss the latest changes", c.Stream, err))
		return db, nil
	}
	db.Replicate(unreachable{fmt.Errorf("%w: the change is not made; start this node's NATS server, bring back a majority of the servers that hold the log (%d of %d), and run the command again",
		err, c.Replicas/2+1, c.Replicas)}, nil)
	o.Warn(fmt.Sprintf("%v: reading this node's copy, which may miss the latest changes; writes fail until the log is back", err))
	return db, nil
}

// unreachable is the cluster log of a store that could not reach it: every
// change fails, before it begins, with err.
type unreachable struct{ err error }

func (u unreachable) Append(context.Context, uint64, ...[]byte) (uint64, error) { return 0, u.err }
func (u unreachable) Check(context.Context) (uint64, error)                     { return 0, u.err }

// ClusterLog is a node's cluster log with the connection it uses.
type ClusterLog struct {
	*cluster.Log
	// Conn is the relay user's connection to this node's server.
	Conn *nats.Conn
	// Cluster is the directory's cluster.json.
	Cluster Cluster
}

// ConnectCluster connects to the server at url as the relay user of l's
// secrets.json, with opts, and opens the cluster log c names on it
// (cluster.Open: the stream is created or updated). An error names the URL
// (its password replaced) and the user, never the password; one that
// means JetStream cannot be reached wraps cluster.ErrNoQuorum.
func (l Layout) ConnectCluster(ctx context.Context, c Cluster, url string, opts []nats.Option, logger *slog.Logger) (*ClusterLog, error) {
	s, err := l.LoadSecrets()
	if err != nil {
		return nil, err
	}
	opts = append([]nats.Option{nats.UserInfo(s.RelayUser, s.RelayPassword)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster log %s: connect to %s as %s: %w: %w", c.Stream, accounts.RedactURL(url), s.RelayUser, cluster.ErrNoQuorum, err)
	}
	log, err := cluster.Open(ctx, nc, cluster.Config{Stream: c.Stream, Replicas: c.Replicas, Logger: logger})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &ClusterLog{Log: log, Conn: nc, Cluster: c}, nil
}

// OpenLocal opens the database of an initialised directory, with
// store.OpenExisting, alone: in cluster mode it is this node's copy,
// unattached to the cluster log (OpenStore attaches it). It is the one
// place that refuses a directory whose database is missing: only Init
// creates one, so that a removed database is never silently replaced by an
// empty one that would refuse every user at the relay's next start. The
// store it returns refuses the reserved accounts of nats.conf
// (ReservedAccounts), read when the first write asks, once: commands that
// only read work without a readable nats.conf; those that write refuse
// without one.
func (l Layout) OpenLocal(ctx context.Context) (*store.DB, error) {
	if !l.Initialised() {
		return nil, NotInitialised(l.Dir)
	}
	db, err := store.OpenExisting(ctx, l.Path(DatabaseFile))
	if errors.Is(err, store.ErrNoDatabase) {
		return nil, l.missingDatabase(err)
	}
	if err != nil {
		return nil, err
	}
	db.ReservedAccounts = sync.OnceValues(l.ReservedAccounts)
	return db, nil
}

// ReloadServer asks the one server whose ID is id to reload its
// configuration file, over nc connected as the system account's admin
// ($SYS.REQ.SERVER.<id>.RELOAD): in a cluster, each node reloads its own
// server, since a reload disconnects every login the callout authorised.
func ReloadServer(ctx context.Context, nc *nats.Conn, id string, wait time.Duration) error {
	if err := reloadOne(ctx, nc, id, wait); err != nil {
		return fmt.Errorf("reload server %s: %w", id, err)
	}
	return nil
}
