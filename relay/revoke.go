package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
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

// ChangeFeed is the feed of changes per user that revocation reads. The
// store implements it with rows that triggers write in the same transaction
// as each change, so the relay only ever reads committed changes.
type ChangeFeed interface {
	// LastUserChange returns the id of the latest change, or 0.
	LastUserChange(ctx context.Context) (int64, error)
	// UserChangesSince returns, in id order, some or all of the changes
	// with an id above after: the id of each and the user it concerns.
	UserChangesSince(ctx context.Context, after int64) (ids []int64, users []string, err error)
}

// Kick is one attempt to close a connection the relay granted, because its
// user changed.
type Kick struct {
	Time     time.Time
	User     string
	ServerID string
	ClientID uint64
	// ChangeID is the id of the change in the feed that caused it.
	ChangeID int64
	// Err is why the server did not close the connection, nil when it did.
	Err error
}

// RevokeConfig turns on the revocation of live connections: when a user
// changes (disabled, removed, new password, account, permissions or roles,
// or locked out), the relay closes the connections it granted to that user
// within about Poll, instead of letting them live until their JWT expires.
// The client reconnects at once, and the new login sees the change.
//
// Each relay only knows the connections it granted itself. Relays that
// share a server share its logins through the queue group, and each one
// polls the feed and kicks its own grants: together they kick all of them.
// The relay follows disconnect events to forget closed connections; on a
// cluster the system account carries every server's events and kick
// requests, so one admin connection to any server reaches all of them.
type RevokeConfig struct {
	// AdminUser and AdminPassword log in to the system account, which may
	// subscribe to $SYS.ACCOUNT.*.DISCONNECT and send kick requests.
	AdminUser, AdminPassword string
	// Changes is the feed of user changes. Required.
	Changes ChangeFeed
	// Poll is how often the feed is read; 0 means DefaultRevokePoll.
	Poll time.Duration
	// MaxConns bounds the granted connections remembered; 0 means
	// DefaultRevokeMaxConns. When full, the oldest are forgotten (and can
	// no longer be kicked; a warning says so).
	MaxConns int
	// OnKick, when set, is called after every kick, from the revocation's
	// own goroutines: the audit trail.
	OnKick func(ctx context.Context, k Kick)
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

// revoker remembers the connections a relay granted and kicks them when
// their user changes.
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

	nc    *nats.Conn
	send  func(Kick) error // kickOnce; tests replace it
	sem   chan struct{}
	kicks sync.WaitGroup
	stats struct{ kicked, failed atomic.Int64 }
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
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultRevokePoll
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultRevokeMaxConns
	}
	v := &revoker{
		cfg:    cfg,
		ttl:    ttl,
		now:    now,
		log:    log.With("component", "revoke"),
		conns:  make(map[connKey]grantEntry),
		byUser: make(map[string]map[connKey]struct{}),
		recent: make(map[string]recentChange),
		sem:    make(chan struct{}, kickWorkers),
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
		nats.UserInfo(v.cfg.AdminUser, v.cfg.AdminPassword),
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
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		v.log.Warn("admin connection not confirmed yet", "err", err)
	}
	v.nc = nc
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.loop(ctx)
	}()
	v.log.Info("revocation on", "poll", v.cfg.Poll, "max_conns", v.cfg.MaxConns, "from_change", last)
	return func() {
		cancel()
		<-done
		v.kicks.Wait()
		nc.Close()
	}, nil
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
	}
}

// poll reads the feed to its end and kicks what the changes call for.
func (v *revoker) poll(ctx context.Context) error {
	for {
		ids, users, err := v.cfg.Changes.UserChangesSince(ctx, v.pos.Load())
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		v.changed(ctx, ids, users)
	}
}

// changed handles a batch of changes: it kicks every remembered connection
// of each user whose decision started before the change, and remembers the
// change for grants still on their way.
func (v *revoker) changed(ctx context.Context, ids []int64, users []string) {
	now := v.now()
	var kicks []Kick
	v.mu.Lock()
	for i, user := range users {
		id := ids[i]
		v.recent[user] = recentChange{id: id, seen: now}
		for k := range v.byUser[user] {
			if g := v.conns[k]; g.pos < id {
				kicks = append(kicks, Kick{User: user, ServerID: k.server, ClientID: k.cid, ChangeID: id})
				v.forget(k)
			}
		}
	}
	v.pos.Store(ids[len(ids)-1])
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
	if rc, ok := v.recent[user]; ok && rc.id > pos {
		v.mu.Unlock()
		v.kick(context.Background(), Kick{User: user, ServerID: server, ClientID: cid, ChangeID: rc.id}, lateKickTries)
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
			v.log.Warn("too many live connections to remember: the oldest can no longer be revoked before their JWT expires",
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
}

// remembered returns how many granted connections v remembers.
func (v *revoker) remembered() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.conns)
}

// kick asks k's server to close k's connection, in its own goroutine
// (bounded by kickWorkers), trying up to tries times while the server does
// not know the client yet; then logs and reports it.
func (v *revoker) kick(ctx context.Context, k Kick, tries int) {
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
			if k.Err == nil || !strings.Contains(k.Err.Error(), "no such client") {
				break
			}
		}
		k.Time = v.now()
		if k.Err != nil {
			v.stats.failed.Add(1)
			v.log.Info("kick not done", "user", k.User, "server_id", k.ServerID, "client_id", k.ClientID,
				"change", k.ChangeID, "err", k.Err)
		} else {
			v.stats.kicked.Add(1)
			v.log.Info("kicked connection: its user changed", "user", k.User, "server_id", k.ServerID,
				"client_id", k.ClientID, "change", k.ChangeID)
		}
		if v.cfg.OnKick != nil {
			v.cfg.OnKick(context.WithoutCancel(ctx), k)
		}
	}()
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
