package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
)

// DefaultRevokePoll is how often the relay reads the user change feed when
// RevokeConfig.Poll is zero.
const DefaultRevokePoll = 200 * time.Millisecond

// DefaultRevokeMaxConns bounds the granted connections a relay remembers
// when RevokeConfig.MaxConns is zero.
const DefaultRevokeMaxConns = 200_000

// KickSubject is the nats-server request subject that closes one client
// connection; %s is the server's id. Only system-account users may send it.
const KickSubject = "$SYS.REQ.SERVER.%s.KICK"

// DisconnectSubject is where nats-server publishes, in the system account,
// an event for every client connection that closes, whatever its account.
const DisconnectSubject = "$SYS.ACCOUNT.*.DISCONNECT"

// kickTimeout bounds one kick request.
const kickTimeout = 2 * time.Second

// kickWorkers bounds the kick requests in flight at once.
const kickWorkers = 16

// recentKeep is how long the relay remembers that a user changed, to kick a
// connection whose grant was decided before the change but sent after the
// relay read it. It covers a decision's whole life.
const recentKeep = 10 * time.Second

// lateKickTries and lateKickWait retry a kick of a connection that the
// server may not have registered yet, because its grant was just sent.
const (
	lateKickTries = 5
	lateKickWait  = 100 * time.Millisecond
)

// ConnzPingSubject asks every server of the cluster for its client
// connections; each answers with its own id. Only system-account users may
// send it.
const ConnzPingSubject = "$SYS.REQ.SERVER.PING.CONNZ"

// connzSubject asks one server, by id, for its connections: the next page.
const connzSubject = "$SYS.REQ.SERVER.%s.CONNZ"

// idzPingSubject asks every server for its id: how the revoker learns
// which servers a query must hear from.
const idzPingSubject = "$SYS.REQ.SERVER.PING.IDZ"

// shutdownSubject is where a server announces that it shuts down.
const shutdownSubject = "$SYS.SERVER.*.SHUTDOWN"

// DefaultRevokeMaxPending bounds the users whose revocation is still
// unfinished (a server not heard from, a kick that failed) when
// RevokeConfig.MaxPending is zero.
const DefaultRevokeMaxPending = 10_000

const (
	// sweepWait bounds how long one query waits for every known server
	// to answer, and for each further page.
	sweepWait = 500 * time.Millisecond
	// sweepTick is how often a query waiting for answers looks again at
	// which servers it knows.
	sweepTick = 20 * time.Millisecond
	// sweepPage is the connections asked for per page.
	sweepPage = 256
	// sweepMaxPages bounds the pages read from one server per query.
	sweepMaxPages = 64
	// sweepMargin is taken off the age a connection must have to predate
	// a change, for a step of the server's clock.
	sweepMargin = 250 * time.Millisecond
	// sweepWorkers bounds the queries in flight at once.
	sweepWorkers = 4
	// retryMin and retryMax bound the backoff between queries of a
	// revocation that is not finished.
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
	// serverPingEvery is how often the revoker asks which servers exist;
	// serverForget is how long a server that stopped answering is still
	// waited for.
	serverPingEvery = 5 * time.Second
	serverForget    = 2*serverPingEvery + time.Second
	// changeKeep is how long the relay remembers a change it acted on, to
	// query again a server that joins or comes back (at most the session
	// TTL).
	changeKeep = 10 * time.Minute
)

// ChangeFeed is the feed of changes per user that revocation reads. The
// store implements it with rows that triggers write in the same transaction
// as each change, so the relay only ever reads committed changes.
type ChangeFeed interface {
	// LastUserChange returns the id of the latest change, or 0.
	LastUserChange(ctx context.Context) (int64, error)
	// UserChangesSince returns, in id order, some or all of the changes
	// with an id above after.
	UserChangesSince(ctx context.Context, after int64) ([]accounts.UserChange, error)
}

// ChangeHistory is the recent past of the change feed
// (RevokeConfig.History): a relay that starts revokes with it what changed
// while no relay was running (RevokeConfig.Replay).
type ChangeHistory interface {
	// RecentUserChanges returns, in id order, the latest changes committed
	// at or after since, at most limit, with the commit time of each, in
	// whole seconds rounded down, on the relay's clock.
	RecentUserChanges(ctx context.Context, since time.Time, limit int) ([]accounts.UserChange, error)
}

// Kick is one attempt to close a connection of a user that changed.
type Kick struct {
	Time     time.Time
	User     string
	ServerID string
	ClientID uint64
	// ChangeID is the id of the change in the feed that caused it.
	ChangeID int64
	// Found tells how the relay knew the connection: "grant" when this
	// relay granted it and remembered it, "query" when the servers listed
	// it (another relay's grant, or one made before this relay started).
	Found string
	// Err is why the server did not close the connection, nil when it did
	// (always nil in OnKick, which sees only kicks that closed one).
	Err error

	seen time.Time // when the relay read the change
}

// Ways a Kick's connection was found.
const (
	FoundGrant = "grant"
	FoundQuery = "query"
)

// RevokeConfig turns on the revocation of live connections: when a user
// changes (disabled, removed, new password, account, permissions or roles),
// the relay closes that user's live connections within about Poll, instead
// of letting them live until their JWT expires. The client reconnects at
// once, and the new login sees the change.
//
// Two paths find the connections, and every relay on the feed runs both:
//
//   - Its own grants, remembered in memory: kicked as soon as the change is
//     read, with no query, including a grant decided before the change but
//     sent after the relay read it (kicked as it is sent).
//   - Every other connection of the user, whichever relay granted it (one
//     alive, restarted or dead): the relay asks every server, through the
//     system account, for the user's open connections
//     ($SYS.REQ.SERVER.PING.CONNZ filtered by user, paged) and kicks each
//     one old enough, on the server's own clock, to predate the change.
//     The query runs for every change and is repeated with backoff until
//     every known server has answered and every kick is done or its
//     connection is gone; so a kick that fails on a timeout, a server that
//     does not answer or an admin connection that is down is retried, and a
//     change read while the admin connection is down is acted on once it
//     is back.
//
// Kicks of one connection by several relays are harmless: the server
// closes it once and answers the others "no such client", which counts as
// done and is logged at debug level only.
//
// Why keep the memory when the query finds every connection: it is
// precise, and the query cannot be. A relay's feed position at each
// decision tells exactly which of its grants predate a change, so a login
// made just after a change is never kicked for it; the query only knows
// each connection's age and must kick every one that started before the
// relay read the change (see sweep). The memory also needs no round trip,
// so the relay's own grants close at the poll even while a server is slow
// to answer queries. The query is what makes the guarantee hold whichever
// relay granted the connection and whatever happened to it.
type RevokeConfig struct {
	// AdminUser and AdminPassword log in to the system account, which may
	// query connections, follow $SYS.ACCOUNT.*.DISCONNECT and send kicks.
	AdminUser, AdminPassword string
	// AdminLogin, when set, is the system account login in place of
	// AdminUser and AdminPassword: in operator mode, a user JWT and nkey of
	// the system account. AdminUser still names it in errors.
	AdminLogin nats.Option
	// Changes is the feed of user changes. Required.
	Changes ChangeFeed
	// Poll is how often the feed is read; 0 means DefaultRevokePoll.
	Poll time.Duration
	// MaxConns bounds the granted connections remembered; 0 means
	// DefaultRevokeMaxConns. When full, the oldest are forgotten (the
	// server query still finds them).
	MaxConns int
	// History is the recent past of Changes, for Replay; nil means no
	// replay.
	History ChangeHistory
	// Replay, when History is set, is how far back a
	// relay that starts revokes the changes it finds: those made while no
	// relay was running (0: none). It need not exceed the session TTL,
	// after which every JWT granted before a change has expired.
	Replay time.Duration
	// MaxPending bounds the users whose revocation is unfinished; 0 means
	// DefaultRevokeMaxPending. When full, the oldest is given up (a
	// warning says so and RevokeStats counts it).
	MaxPending int
	// OnKick, when set, is called after every kick that closed a
	// connection, from the revocation's own goroutines: the audit trail.
	// Failed kicks are retried, counted in RevokeStats and not reported.
	// Config.Observer hears of the same kicks (Observer.Kick), just
	// before.
	OnKick func(ctx context.Context, k Kick)
}

// RevokeStats are the revocation's counts since the relay started.
type RevokeStats struct {
	// Kicks counts connections closed by a kick.
	Kicks uint64
	// KickFailures counts kick requests that failed on a transient error
	// (a timeout, no responders, the admin connection down); each is
	// retried.
	KickFailures uint64
	// QueryFailures counts server queries that did not hear from every
	// known server; each is retried.
	QueryFailures uint64
	// Pending is the number of users whose revocation is unfinished now.
	Pending int
	// Dropped counts revocations given up because MaxPending was full.
	Dropped uint64
}

// connKey identifies a client connection: the server's id and the
// server's client id.
type connKey struct {
	server string
	cid    uint64
}

// grantEntry is a granted connection the revoker remembers.
type grantEntry struct {
	user string
	pos  int64     // the feed position when its decision started
	at   time.Time // when it was granted
}

// recentChange is the latest change of a user, kept for recentKeep.
type recentChange struct {
	id   int64
	seen time.Time
}

// sweepJob is a user whose connections the servers must still be asked
// for: the revocation of its changes is unfinished.
type sweepJob struct {
	change  int64     // the user's latest change
	seen    time.Time // when the relay read the latest change
	gen     int       // bumped by each change, so a query knows it is stale
	seq     int64     // its place in jobOrder
	tries   int       // queries that did not finish it
	next    time.Time // when to query again
	running bool
	failing bool // a warning about it was logged
}

// revoker remembers the connections a relay granted and kicks them when
// their user changes; and asks the servers for the user's other
// connections and kicks those too.
type revoker struct {
	cfg RevokeConfig
	ttl time.Duration // the session TTL: a grant older is forgotten; 0 = never
	now func() time.Time
	log *slog.Logger

	pos atomic.Int64 // the last change id read from the feed

	mu     sync.Mutex
	conns  map[connKey]grantEntry
	byUser map[string]map[connKey]struct{}
	order  []connKey // grant order, oldest first; may hold forgotten keys
	head   int       // order[:head] is consumed
	recent map[string]recentChange
	warned time.Time // last warning that the map is full

	jobs         map[string]*sweepJob
	jobOrder     []jobRef // creation order, oldest first; may hold finished jobs
	jobHead      int
	jobSeq       int64
	servers      map[string]time.Time // known servers and when each was last heard from
	dropWarn     time.Time            // last warning that jobs was full
	sweeps       sync.WaitGroup
	serverPing   time.Time // when the servers were last asked for their ids
	idzInbox     string
	started      time.Time              // when start connected
	changedUsers map[string]changedUser // by user, kept for changeKeep
	wake         chan struct{}
	inflight     map[connKey]struct{}  // kicks being sent
	kicked       map[connKey]time.Time // kicks done, kept for recentKeep

	// reserved are the accounts the relay never grants (Config.
	// ReservedAccounts): a connection there is the server's own user.
	reserved []string
	// pending is the account a connection whose login is being decided
	// is in, besides none (Issuer.PendingAccount): operator mode's
	// callout account.
	pending string
	page    int // connections asked for per page: sweepPage
	// observer is Config.Observer, told of each kick that closed a
	// connection; nil when none.
	observer Observer

	nc    *nats.Conn
	send  func(Kick) error // kickOnce; tests replace it
	sem   chan struct{}
	kicks sync.WaitGroup
	stats struct {
		kicked, failed, queryFailed, dropped atomic.Uint64
	}
}

// changedUser is the latest change of a user the relay acted on, kept for
// changeKeep.
type changedUser struct {
	change int64
	seen   time.Time
}

// jobRef is an entry of jobOrder.
type jobRef struct {
	user string
	seq  int64
}

// newRevoker returns a revoker for cfg, with its defaults filled in.
func newRevoker(cfg RevokeConfig, ttl time.Duration, now func() time.Time, log *slog.Logger) (*revoker, error) {
	switch {
	case cfg.Changes == nil:
		return nil, errors.New("revoke: the change feed is required")
	case cfg.Poll < 0:
		return nil, fmt.Errorf("revoke: poll %v is negative", cfg.Poll)
	case cfg.MaxConns < 0:
		return nil, fmt.Errorf("revoke: max conns %d is negative", cfg.MaxConns)
	case cfg.MaxPending < 0:
		return nil, fmt.Errorf("revoke: max pending %d is negative", cfg.MaxPending)
	case cfg.Replay < 0:
		return nil, fmt.Errorf("revoke: replay %v is negative", cfg.Replay)
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultRevokePoll
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultRevokeMaxConns
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultRevokeMaxPending
	}
	v := &revoker{
		cfg:          cfg,
		ttl:          ttl,
		now:          now,
		log:          log.With("component", "revoke"),
		conns:        make(map[connKey]grantEntry),
		byUser:       make(map[string]map[connKey]struct{}),
		recent:       make(map[string]recentChange),
		jobs:         make(map[string]*sweepJob),
		servers:      make(map[string]time.Time),
		wake:         make(chan struct{}, 1),
		inflight:     make(map[connKey]struct{}),
		kicked:       make(map[connKey]time.Time),
		changedUsers: make(map[string]changedUser),
		sem:          make(chan struct{}, kickWorkers),
		page:         sweepPage,
	}
	v.send = v.kickOnce
	return v, nil
}

// position returns the feed position to record with a decision that
// starts now, before it reads the user: a change with a higher id may not
// be in what it reads, and kicks the grant. It reads the feed's end, so
// that a change committed before the decision, which the poll loop has not
// read yet, does not kick the grant that already reflects it; if that
// fails, the poll loop's position is the safe answer.
func (v *revoker) position() int64 {
	return v.positionAt(v.cfg.Changes.LastUserChange(context.Background()))
}

// positionAt is position given the feed's end as read by the caller.
func (v *revoker) positionAt(last int64, err error) int64 {
	if pos := v.pos.Load(); err != nil || last <= pos {
		return pos
	}
	return last
}

// start reads the feed's current end, connects as the system-account admin
// and follows disconnect events, and polls the feed until ctx ends. The
// returned stop waits for the poll loop and kicks in flight and closes the
// admin connection.
func (v *revoker) start(ctx context.Context, url string, natsOpts []nats.Option) (stop func(), err error) {
	last, err := v.cfg.Changes.LastUserChange(ctx)
	if err != nil {
		return nil, fmt.Errorf("revoke: %w", err)
	}
	v.pos.Store(last)
	v.replay(ctx, last)
	opts := []nats.Option{
		nats.Name("authrelay-revoke"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				v.log.Warn("admin connection lost: kicks wait for it", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			v.log.Warn("admin connection error", "err", err)
		}),
	}
	if v.cfg.AdminLogin != nil {
		opts = append(opts, v.cfg.AdminLogin)
	} else {
		opts = append(opts, nats.UserInfo(v.cfg.AdminUser, v.cfg.AdminPassword))
	}
	opts = append(opts, natsOpts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("revoke: connect as %q: %w", v.cfg.AdminUser, err)
	}
	if _, err := nc.Subscribe(DisconnectSubject, v.onDisconnect); err != nil {
		nc.Close()
		return nil, fmt.Errorf("revoke: subscribe %s: %w", DisconnectSubject, err)
	}
	if _, err := nc.Subscribe(shutdownSubject, v.onShutdown); err != nil {
		nc.Close()
		return nil, fmt.Errorf("revoke: subscribe %s: %w", shutdownSubject, err)
	}
	v.idzInbox = nats.NewInbox()
	if _, err := nc.Subscribe(v.idzInbox, v.onIDZ); err != nil {
		nc.Close()
		return nil, fmt.Errorf("revoke: subscribe %s: %w", v.idzInbox, err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		v.log.Warn("admin connection not confirmed yet", "err", err)
	}
	v.nc = nc
	v.mu.Lock()
	v.started = v.now()
	v.mu.Unlock()
	v.pingServers() // learn the servers before the first query
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.loop(ctx)
	}()
	for range sweepWorkers {
		v.sweeps.Add(1)
		go func() {
			defer v.sweeps.Done()
			v.sweeper(ctx)
		}()
	}
	v.log.Info("revocation on", "poll", v.cfg.Poll, "max_conns", v.cfg.MaxConns, "max_pending", v.cfg.MaxPending,
		"from_change", last)
	return func() {
		cancel()
		<-done
		v.sweeps.Wait()
		v.kicks.Wait()
		nc.Close()
	}, nil
}

// replay queries the servers for every user changed within Replay, up to
// the feed position last: what changed while no relay was running (or
// while this one was being restarted) is revoked too. A change's commit
// time is known to the second, so the query takes it as one second later:
// what started before it may predate the change.
func (v *revoker) replay(ctx context.Context, last int64) {
	if v.cfg.History == nil || v.cfg.Replay == 0 {
		return
	}
	changes, err := v.cfg.History.RecentUserChanges(ctx, v.now().Add(-v.cfg.Replay), v.cfg.MaxPending)
	if err != nil {
		v.log.Warn("read recent user changes: what changed while no relay ran is not revoked", "err", err)
		return
	}
	n := 0
	v.mu.Lock()
	for _, c := range changes {
		if c.ID > last || c.Quiet {
			continue
		}
		id, seen := c.ID, c.Time.Add(time.Second)
		if c.BeforeID > 0 {
			// A grace's end: what came before the replacement.
			id, seen = c.BeforeID, c.Before
		}
		v.addJob(c.User, id, seen)
		v.noteChange(c.User, id, seen)
		n++
	}
	v.mu.Unlock()
	if n > 0 {
		v.log.Info("revoking the recent user changes", "since", v.cfg.Replay, "changes", n)
	}
}

// loop polls the feed every Poll until ctx ends.
func (v *revoker) loop(ctx context.Context) {
	t := time.NewTicker(v.cfg.Poll)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := v.poll(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			v.log.Error("read user changes: live connections are not revoked until it works again", "err", err)
			failing = true
		case err == nil && failing:
			v.log.Info("reading user changes again")
			failing = false
		}
		v.expire()
		v.pingServers()
	}
}

// poll reads the feed to its end and kicks what the changes call for.
func (v *revoker) poll(ctx context.Context) error {
	for {
		changes, err := v.cfg.Changes.UserChangesSince(ctx, v.pos.Load())
		if err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		v.changed(ctx, changes)
	}
}

// changed handles a batch of changes: it kicks every remembered connection
// of each user whose decision started before the change, and remembers the
// change for grants still on their way.
func (v *revoker) changed(ctx context.Context, changes []accounts.UserChange) {
	now := v.now()
	var kicks []Kick
	v.mu.Lock()
	for _, c := range changes {
		if c.Quiet {
			continue // a password replaced with a grace: nothing closes yet
		}
		user, id, seen := c.User, c.ID, now
		if c.BeforeID > 0 {
			// A grace's end: only what was granted before the
			// replacement, or (found through the servers) connected
			// before it.
			id, seen = c.BeforeID, c.Before
		}
		if rc, ok := v.recent[user]; !ok || rc.id < id {
			v.recent[user] = recentChange{id: id, seen: seen}
		}
		for k := range v.byUser[user] {
			if g := v.conns[k]; g.pos < id {
				kicks = append(kicks, Kick{User: user, ServerID: k.server, ClientID: k.cid, ChangeID: id,
					Found: FoundGrant, seen: seen})
				v.inflight[k] = struct{}{} // before the query can see it
				v.forget(k)
			}
		}
		v.addJob(user, id, seen)
		v.noteChange(user, id, seen)
	}
	v.pos.Store(changes[len(changes)-1].ID)
	v.mu.Unlock()
	for _, k := range kicks {
		v.kick(ctx, k, 1)
	}
}

// granted remembers a connection the relay has just granted to user, whose
// decision started at feed position pos. If the user changed since pos, the
// grant may carry what the change took away: it is kicked at once.
func (v *revoker) granted(server string, cid uint64, user string, pos int64) {
	if server == "" {
		return
	}
	k := connKey{server, cid}
	now := v.now()
	v.mu.Lock()
	v.sawServerLocked(server, now)
	if rc, ok := v.recent[user]; ok && rc.id > pos {
		v.mu.Unlock()
		v.kick(context.Background(), Kick{User: user, ServerID: server, ClientID: cid, ChangeID: rc.id,
			Found: FoundGrant, seen: rc.seen}, lateKickTries)
		return
	}
	if _, ok := v.conns[k]; ok {
		v.forget(k)
	}
	for len(v.conns) >= v.cfg.MaxConns {
		if !v.evictOldest() {
			break
		}
		if now.Sub(v.warned) > time.Minute {
			v.warned = now
			v.log.Warn("too many live connections to remember: the oldest are found by the server query only, which may also kick them for a change made after their grant",
				"max_conns", v.cfg.MaxConns)
		}
	}
	v.conns[k] = grantEntry{user: user, pos: pos, at: now}
	set := v.byUser[user]
	if set == nil {
		set = make(map[connKey]struct{})
		v.byUser[user] = set
	}
	set[k] = struct{}{}
	v.order = append(v.order, k)
	v.compact()
	v.mu.Unlock()
}

// disconnected forgets a connection the server reports closed.
func (v *revoker) disconnected(server string, cid uint64) {
	v.mu.Lock()
	v.forget(connKey{server, cid})
	v.mu.Unlock()
}

// onDisconnect handles a $SYS.ACCOUNT.<account>.DISCONNECT event.
func (v *revoker) onDisconnect(m *nats.Msg) {
	var ev struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
		Client struct {
			ID uint64 `json:"id"`
		} `json:"client"`
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		v.log.Debug("undecodable disconnect event", "err", err)
		return
	}
	v.sawServer(ev.Server.ID)
	v.disconnected(ev.Server.ID, ev.Client.ID)
}

// forget removes k; v.mu is held. Its key stays in order until consumed.
func (v *revoker) forget(k connKey) {
	g, ok := v.conns[k]
	if !ok {
		return
	}
	delete(v.conns, k)
	if set := v.byUser[g.user]; set != nil {
		delete(set, k)
		if len(set) == 0 {
			delete(v.byUser, g.user)
		}
	}
}

// evictOldest forgets the oldest remembered grant and reports whether
// there was one; v.mu is held.
func (v *revoker) evictOldest() bool {
	for v.head < len(v.order) {
		k := v.order[v.head]
		v.head++
		if _, ok := v.conns[k]; ok {
			v.forget(k)
			return true
		}
	}
	return false
}

// compact drops the consumed and forgotten keys from order once they are
// most of it, so that order stays within twice the live grants; v.mu is
// held.
func (v *revoker) compact() {
	if len(v.order) < 64 || len(v.order) < 2*len(v.conns) {
		return
	}
	live := make([]connKey, 0, len(v.conns))
	seen := make(map[connKey]struct{}, len(v.conns))
	for _, k := range v.order[v.head:] {
		if _, ok := v.conns[k]; !ok {
			continue
		}
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		live = append(live, k)
	}
	v.order, v.head = live, 0
}

// expire forgets grants older than the session TTL, whose JWT the server
// has expired, and changes older than recentKeep.
func (v *revoker) expire() {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ttl > 0 {
		for v.head < len(v.order) {
			k := v.order[v.head]
			if g, ok := v.conns[k]; ok {
				if now.Sub(g.at) <= v.ttl {
					break
				}
				v.forget(k)
			}
			v.head++
		}
		v.compact()
	}
	for user, rc := range v.recent {
		if now.Sub(rc.seen) > recentKeep {
			delete(v.recent, user)
		}
	}
	for k, at := range v.kicked {
		if now.Sub(at) > recentKeep {
			delete(v.kicked, k)
		}
	}
	keep := changeKeep
	if v.ttl > 0 {
		keep = min(keep, v.ttl)
	}
	for user, c := range v.changedUsers {
		if now.Sub(c.seen) > keep {
			delete(v.changedUsers, user)
		}
	}
}

// remembered returns how many granted connections v remembers.
func (v *revoker) remembered() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.conns)
}

// kick asks k's server to close k's connection, in its own goroutine
// (bounded by kickWorkers), trying up to tries times while the server does
// not know the client yet; then logs and reports it. A kick that fails on a
// transient error hands the user to the server query, which finds the
// connection again and retries.
func (v *revoker) kick(ctx context.Context, k Kick, tries int) {
	key := connKey{k.ServerID, k.ClientID}
	v.mu.Lock()
	v.inflight[key] = struct{}{}
	v.mu.Unlock()
	v.kicks.Add(1)
	go func() {
		defer v.kicks.Done()
		v.sem <- struct{}{}
		defer func() { <-v.sem }()
		for i := range tries {
			if i > 0 {
				time.Sleep(lateKickWait)
			}
			k.Err = v.send(k)
			if !isNoSuchClient(k.Err) {
				break
			}
		}
		retry := v.report(ctx, k)
		v.mu.Lock()
		delete(v.inflight, key)
		if retry {
			v.addJob(k.User, k.ChangeID, k.seen)
		}
		v.mu.Unlock()
	}()
}

// isNoSuchClient reports whether err is the server's answer to a kick of a
// connection it does not have: closed already, or kicked by another relay.
func isNoSuchClient(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such client")
}

// report logs the outcome of kick k and reports whether it must be retried.
// A closed connection is counted and passed to OnKick; one the server no
// longer has is done, quietly (another relay may have kicked it).
func (v *revoker) report(ctx context.Context, k Kick) (retry bool) {
	k.Time = v.now()
	switch {
	case k.Err == nil:
		v.stats.kicked.Add(1)
		v.mu.Lock()
		if len(v.kicked) < v.cfg.MaxConns {
			v.kicked[connKey{k.ServerID, k.ClientID}] = k.Time
		}
		v.mu.Unlock()
		v.log.Info("kicked connection: its user changed", "user", k.User, "server_id", k.ServerID,
			"client_id", k.ClientID, "change", k.ChangeID, "found", k.Found)
		if v.observer != nil {
			v.observer.Kick(k)
		}
		if v.cfg.OnKick != nil {
			v.cfg.OnKick(context.WithoutCancel(ctx), k)
		}
		return false
	case isNoSuchClient(k.Err):
		v.log.Debug("connection already closed", "user", k.User, "server_id", k.ServerID,
			"client_id", k.ClientID, "change", k.ChangeID, "found", k.Found)
		return false
	default:
		v.stats.failed.Add(1)
		v.log.Debug("kick failed: retrying", "user", k.User, "server_id", k.ServerID,
			"client_id", k.ClientID, "change", k.ChangeID, "found", k.Found, "err", k.Err)
		return true
	}
}

// addJob asks the servers for user's connections, for the change id read
// at seen, at once; a query already pending for user takes it in. v.mu is
// held. When MaxPending users are pending, the oldest is given up.
func (v *revoker) addJob(user string, change int64, seen time.Time) {
	if j, ok := v.jobs[user]; ok {
		// The latest change counts: what predates it may predate the
		// earlier ones too, and the query kicks a connection for starting
		// before the relay read the change, so the latest read kicks most.
		j.change = max(j.change, change)
		if seen.After(j.seen) {
			j.seen = seen
		}
		j.gen++
		j.next = time.Time{}
		v.wakeSweeper()
		return
	}
	for len(v.jobs) >= v.cfg.MaxPending && v.jobHead < len(v.jobOrder) {
		ref := v.jobOrder[v.jobHead]
		v.jobHead++
		if j, ok := v.jobs[ref.user]; ok && j.seq == ref.seq {
			delete(v.jobs, ref.user)
			v.stats.dropped.Add(1)
			if now := v.now(); now.Sub(v.dropWarn) > time.Minute {
				v.dropWarn = now
				v.log.Warn("too many unfinished revocations: the oldest is given up, its connections may live until their JWT expires",
					"user", ref.user, "change", j.change, "max_pending", v.cfg.MaxPending)
			}
		}
	}
	v.jobSeq++
	v.jobs[user] = &sweepJob{change: change, seen: seen, seq: v.jobSeq}
	v.jobOrder = append(v.jobOrder, jobRef{user, v.jobSeq})
	if len(v.jobOrder)-v.jobHead >= 64 && len(v.jobOrder)-v.jobHead >= 2*len(v.jobs) {
		live := make([]jobRef, 0, len(v.jobs))
		for _, ref := range v.jobOrder[v.jobHead:] {
			if j, ok := v.jobs[ref.user]; ok && j.seq == ref.seq {
				live = append(live, ref)
			}
		}
		v.jobOrder, v.jobHead = live, 0
	}
	v.wakeSweeper()
}

// wakeSweeper tells an idle sweeper that a query is due.
func (v *revoker) wakeSweeper() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// nextJob takes the oldest due query that is not running, or reports
// false; it drops the queries of changes older than the session TTL, whose
// connections the server has expired.
func (v *revoker) nextJob() (user string, snap sweepJob, ok bool) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	for v.jobHead < len(v.jobOrder) {
		ref := v.jobOrder[v.jobHead]
		if j, ok := v.jobs[ref.user]; ok && j.seq == ref.seq {
			break
		}
		v.jobHead++
	}
	for _, ref := range v.jobOrder[v.jobHead:] {
		j, live := v.jobs[ref.user]
		if !live || j.seq != ref.seq || j.running || now.Before(j.next) {
			continue
		}
		if v.ttl > 0 && now.Sub(j.seen) > v.ttl+sweepMargin {
			// Every JWT granted before the change has expired.
			delete(v.jobs, ref.user)
			continue
		}
		j.running = true
		return ref.user, *j, true
	}
	return "", sweepJob{}, false
}

// finishJob records the outcome of a query for user started from snap.
func (v *revoker) finishJob(user string, snap sweepJob, err error) {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	j, ok := v.jobs[user]
	if !ok || j.seq != snap.seq {
		return // given up meanwhile
	}
	j.running = false
	if err == nil {
		if j.gen == snap.gen {
			delete(v.jobs, user)
			if j.failing {
				v.log.Info("revocation done after retries", "user", user, "change", j.change, "tries", j.tries+1)
			}
			return
		}
		j.tries, j.next = 0, time.Time{} // changed meanwhile: again at once
		v.wakeSweeper()
		return
	}
	j.tries++
	wait := retryMax
	if j.tries < 8 {
		wait = min(retryMin<<(j.tries-1), retryMax)
	}
	j.next = now.Add(wait)
	if errors.Is(err, errAgain) {
		return // not a failure: the login ends within the server's auth timeout
	}
	v.stats.queryFailed.Add(1)
	if !j.failing {
		j.failing = true
		v.log.Warn("revocation not finished: retrying until every server has answered and every kick is done",
			"user", user, "change", j.change, "err", err)
	} else {
		v.log.Debug("revocation not finished", "user", user, "change", j.change, "tries", j.tries, "err", err)
	}
}

// sweeper runs the due queries, one at a time, until ctx ends.
func (v *revoker) sweeper(ctx context.Context) {
	t := time.NewTicker(v.cfg.Poll)
	defer t.Stop()
	for {
		user, snap, ok := v.nextJob()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-v.wake:
			case <-t.C:
			}
			continue
		}
		v.wakeSweeper() // another may be due: let an idle sweeper look
		err := v.sweep(ctx, user, snap.change, snap.seen)
		if ctx.Err() != nil {
			return // stopping: not a failure to report
		}
		v.finishJob(user, snap, err)
	}
}

// connzRequest is the body of a connection query: ConnzOptions of
// nats-server (server/monitor.go), open connections of one user with
// their user names, sorted by client id.
type connzRequest struct {
	Auth   bool   `json:"auth"`
	User   string `json:"user"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
}

// connzReply is what the revoker reads of a server's answer to a
// connection query (ServerAPIResponse with a Connz).
type connzReply struct {
	Server struct {
		ID string `json:"id"`
	} `json:"server"`
	Data *struct {
		Now    time.Time `json:"now"`
		Total  int       `json:"total"`
		Offset int       `json:"offset"`
		Conns  []struct {
			CID     uint64    `json:"cid"`
			Start   time.Time `json:"start"`
			User    string    `json:"authorized_user"`
			Account string    `json:"account"` // "" while in the global account: not yet authorised
		} `json:"connections"`
	} `json:"data"`
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// errAdminDown is a query's error while the admin connection is down.
var errAdminDown = errors.New("the admin connection to nats is down")

// errAgain is a query's error when it must be repeated though nothing
// failed: a connection of the user old enough to predate the change was
// still being authorised (it is looked at again once its login is
// decided), or the user's connections took several pages.
var errAgain = errors.New("the user's connections must be listed again")

// sweep asks every server for user's open connections and kicks each one
// that may predate the change read at seen, except those this relay
// granted after it or is kicking already. It returns nil once every known
// server has answered every page and every kick closed its connection or
// found it gone; errAgain when it must look again though nothing failed.
//
// Which connections predate the change is decided on each server's own
// clock, so clocks need not agree across hosts. A connection's login is
// decided after it starts, so one that started after the change committed
// (at C) reflects it. One that started before C has, when the server
// answers (at N), an age (the reply's now minus its start, both on the
// server's clock) above N-C; and N-C is at least the time from the relay
// reading the change (seen, after C) to sending the query (before N),
// measured on the relay's own clock. So a connection older than that, less
// sweepMargin for a step of the server's clock, may predate the change and
// is kicked; a younger one cannot. The price: a connection made between C
// and seen+sweepMargin through another relay is kicked though it reflects
// the change (this relay's own are told apart by their feed positions),
// and reconnects at once. Missing one is what must not happen.
//
// The server names a connection after the user JWT's name once the callout
// has authorised it (auth_callout.go), which the relay sets to the user's
// name: the query's user filter finds the grants whatever the CONNECT
// carried. A connection still being authorised shows the CONNECT's user
// in the global account (in operator mode, in the callout account, the
// default sentinel's): the relay deciding it kicks it itself if the
// decision predates the change, and sweep returns errAgain to look once it
// is decided, in case that relay dies first. A connection whose CONNECT
// the server has not read when it answers is missed, but its login is
// decided after the change.
func (v *revoker) sweep(ctx context.Context, user string, change int64, seen time.Time) error {
	nc := v.nc
	if nc == nil || !nc.IsConnected() {
		return errAdminDown
	}
	minAge := v.now().Sub(seen) - sweepMargin
	known := v.knownServers()
	sub, err := nc.SubscribeSync(nats.NewInbox())
	if err != nil {
		return fmt.Errorf("query connections: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(connzRequest{Auth: true, User: user, Limit: v.page})
	if err := nc.PublishRequest(ConnzPingSubject, sub.Subject, body); err != nil {
		return fmt.Errorf("query connections: %w", err)
	}

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		failures  int
		firstErr  error
		undecided int
		paged     bool
		attempted int
	)
	fail := func(err error) {
		mu.Lock()
		failures++
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	kickAll := func(server string, r *connzReply) {
		for _, c := range r.Data.Conns {
			if c.User != user || r.Data.Now.Sub(c.Start) <= minAge {
				continue
			}
			switch {
			case c.Account == "" || (v.pending != "" && c.Account == v.pending):
				// Its login is being decided (in operator mode the
				// default sentinel has put it in the callout account). The relay deciding it
				// kicks it if the decision predates the change (its
				// own grant, or a late one); look again once it is
				// decided, in case that relay dies first.
				undecided++
				continue
			case slices.Contains(v.reserved, c.Account):
				continue // the server's own users: never the relay's grants
			case v.skip(connKey{server, c.CID}, change):
				continue
			}
			k := Kick{User: user, ServerID: server, ClientID: c.CID, ChangeID: change, Found: FoundQuery, seen: seen}
			attempted++
			wg.Add(1)
			go func() {
				defer wg.Done()
				v.sem <- struct{}{}
				defer func() { <-v.sem }()
				k.Err = v.send(k)
				if v.report(ctx, k) {
					fail(fmt.Errorf("kick client %d on %s: %w", k.ClientID, k.ServerID, k.Err))
				}
			}()
		}
	}

	answered := make(map[string]bool)
	deadline := time.Now().Add(sweepWait)
	for len(known) == 0 || !allAnswered(known, answered) {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		// Servers learned meanwhile (the id ping's answers, right after
		// start) count: look again every sweepTick.
		wait, cancel := context.WithTimeout(ctx, min(left, sweepTick))
		m, err := sub.NextMsgWithContext(wait)
		cancel()
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			known = v.knownServers()
			continue
		}
		r, err := decodeConnz(m.Data)
		if err != nil {
			v.log.Debug("undecodable connection query answer", "err", err)
			continue
		}
		server := r.Server.ID
		if answered[server] {
			continue
		}
		v.sawServer(server)
		// A full page may have a next one (the reply's total counts all
		// the server's connections, not the user's). Every page is read
		// before any kick, whose closes would shift the later pages; a
		// connection that closes meanwhile (another relay's kick) can
		// still shift one past the reader, so a query that needed
		// several pages and kicked is repeated until one kicks nothing.
		pages := []*connzReply{r}
		complete := true
		for offset := len(r.Data.Conns); len(r.Data.Conns) >= v.page; offset += len(r.Data.Conns) {
			if len(pages) >= sweepMaxPages {
				fail(fmt.Errorf("server %s lists more than %d pages of connections of the user", server, sweepMaxPages))
				break
			}
			if r, err = v.connzPage(ctx, nc, server, user, offset); err != nil {
				fail(err)
				complete = false
				break
			}
			pages = append(pages, r)
		}
		if len(pages) > 1 {
			paged = true
		}
		for _, r := range pages {
			kickAll(server, r)
		}
		answered[server] = complete
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var missing []string
	for _, s := range known {
		if !answered[s] {
			missing = append(missing, s)
		}
	}
	switch {
	case len(answered) == 0:
		return fmt.Errorf("query connections: no server answered within %v", sweepWait)
	case len(missing) > 0:
		return fmt.Errorf("query connections: no answer from %d of %d servers (%s)", len(missing), len(known), strings.Join(missing, ", "))
	case failures > 0:
		return fmt.Errorf("%d kicks failed: %w", failures, firstErr)
	case undecided > 0, paged && attempted > 0:
		return errAgain
	}
	return nil
}

// connzPage asks server for the page of user's connections from offset.
func (v *revoker) connzPage(ctx context.Context, nc *nats.Conn, server, user string, offset int) (*connzReply, error) {
	body, _ := json.Marshal(connzRequest{Auth: true, User: user, Offset: offset, Limit: v.page})
	ctx, cancel := context.WithTimeout(ctx, sweepWait)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, fmt.Sprintf(connzSubject, server), body)
	if err != nil {
		return nil, fmt.Errorf("query connections of server %s from %d: %w", server, offset, err)
	}
	r, err := decodeConnz(m.Data)
	if err != nil {
		return nil, fmt.Errorf("query connections of server %s from %d: %w", server, offset, err)
	}
	return r, nil
}

// decodeConnz decodes a server's answer to a connection query.
func decodeConnz(data []byte) (*connzReply, error) {
	var r connzReply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decode connections: %w", err)
	}
	switch {
	case r.Error != nil:
		return nil, fmt.Errorf("server %s says %s", clip(r.Server.ID), clip(r.Error.Description))
	case r.Server.ID == "" || r.Data == nil:
		return nil, errors.New("decode connections: no server id or no data")
	}
	return &r, nil
}

// allAnswered reports whether every known server has answered.
func allAnswered(known []string, answered map[string]bool) bool {
	for _, s := range known {
		if _, ok := answered[s]; !ok {
			return false
		}
	}
	return true
}

// skip reports whether a query need not kick k for change: this relay
// granted it after the change, kicked it already or is kicking it now.
func (v *revoker) skip(k connKey, change int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if g, ok := v.conns[k]; ok && g.pos >= change {
		return true
	}
	if _, ok := v.inflight[k]; ok {
		return true
	}
	_, ok := v.kicked[k]
	return ok
}

// sawServer records that server is alive.
func (v *revoker) sawServer(server string) {
	if server == "" {
		return
	}
	now := v.now()
	v.mu.Lock()
	v.sawServerLocked(server, now)
	v.mu.Unlock()
}

// sawServerLocked records that server is alive at now; v.mu is held. A
// server the relay did not know (one that joined, restarted, or came back
// after a partition long enough to be forgotten) is asked again, with all
// the others, for the connections of every user changed within
// changeKeep: its connections may have been out of reach when those
// changes were revoked. The servers answering the first pings after start
// are not new.
func (v *revoker) sawServerLocked(server string, now time.Time) {
	_, known := v.servers[server]
	v.servers[server] = now
	if known || v.started.IsZero() || now.Sub(v.started) < serverPingEvery || len(v.changedUsers) == 0 {
		return
	}
	for user, c := range v.changedUsers {
		v.addJob(user, c.change, c.seen)
	}
	v.log.Info("a server joined or came back: asking again for the connections of recently changed users",
		"server_id", server, "users", len(v.changedUsers))
}

// noteChange remembers user's change id, read at seen, for changeKeep;
// v.mu is held. Beyond MaxPending users, a new one is not remembered.
func (v *revoker) noteChange(user string, change int64, seen time.Time) {
	c, ok := v.changedUsers[user]
	if !ok && len(v.changedUsers) >= v.cfg.MaxPending {
		return
	}
	if seen.After(c.seen) {
		c.seen = seen
	}
	c.change = max(c.change, change)
	v.changedUsers[user] = c
}

// knownServers returns the servers heard from within serverForget,
// forgetting the others.
func (v *revoker) knownServers() []string {
	now := v.now()
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.servers))
	for s, at := range v.servers {
		if now.Sub(at) > serverForget {
			delete(v.servers, s)
			continue
		}
		out = append(out, s)
	}
	return out
}

// pingServers asks every server for its id, every serverPingEvery; the
// answers keep the known servers fresh.
func (v *revoker) pingServers() {
	now := v.now()
	if v.nc == nil || now.Sub(v.serverPing) < serverPingEvery {
		return
	}
	v.serverPing = now
	if err := v.nc.PublishRequest(idzPingSubject, v.idzInbox, nil); err != nil {
		v.log.Debug("ask servers for their ids", "err", err)
	}
}

// onIDZ handles a server's answer to the id ping: its ServerID
// (server/events.go), not wrapped in a ServerAPIResponse.
func (v *revoker) onIDZ(m *nats.Msg) {
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(m.Data, &r); err == nil {
		v.sawServer(r.ID)
	}
}

// onShutdown forgets a server that announced its shutdown
// ($SYS.SERVER.<id>.SHUTDOWN): its connections are gone.
func (v *revoker) onShutdown(m *nats.Msg) {
	tokens := strings.Split(m.Subject, ".")
	if len(tokens) != 4 {
		return
	}
	v.mu.Lock()
	delete(v.servers, tokens[2])
	v.mu.Unlock()
}

// RevokeStats returns the revocation's counts; zero when it is off.
func (r *Relay) RevokeStats() RevokeStats {
	v := r.revoke
	if v == nil {
		return RevokeStats{}
	}
	v.mu.Lock()
	pending := len(v.jobs)
	v.mu.Unlock()
	return RevokeStats{
		Kicks:         v.stats.kicked.Load(),
		KickFailures:  v.stats.failed.Load(),
		QueryFailures: v.stats.queryFailed.Load(),
		Pending:       pending,
		Dropped:       v.stats.dropped.Load(),
	}
}

// kickOnce sends one kick request and returns the server's error, if any.
func (v *revoker) kickOnce(k Kick) error {
	body, _ := json.Marshal(struct {
		CID uint64 `json:"cid"`
	}{k.ClientID})
	msg, err := v.nc.Request(fmt.Sprintf(KickSubject, k.ServerID), body, kickTimeout)
	if err != nil {
		return fmt.Errorf("kick request: %w", err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("kick response: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("kick: server says %s", resp.Error.Description)
	}
	return nil
}
