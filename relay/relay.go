// Package relay answers nats-server auth callout requests: it subscribes to
// $SYS.REQ.USER.AUTH in the callout account, opens and validates each
// request, checks the client's username and password against the user store,
// and replies with a signed authorization response that carries either a user
// JWT (account, permissions, session expiry) or a short denial reason.
//
// The relay sees the user store only through the Users interface; it never
// imports the store package.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/nats.go"
)

// Subject is the subject nats-server publishes auth callout requests on.
const Subject = "$SYS.REQ.USER.AUTH"

// XKeyHeader is the header in which nats-server sends its public curve key
// when it seals a request to the relay's xkey.
const XKeyHeader = "Nats-Server-Xkey"

// DefaultDecisionTimeout is the longest a decision may take when
// Config.DecisionTimeout is zero. It stays inside nats-server's default
// authorization timeout of 2s.
const DefaultDecisionTimeout = 1500 * time.Millisecond

// DefaultQueue is the queue group relays join when Config.Queue is empty, so
// that several relays share the requests.
const DefaultQueue = "authrelay"

// DefaultCacheTTL is a sensible Config.CacheTTL: how long serve remembers
// a verified credential unless told otherwise.
const DefaultCacheTTL = 10 * time.Minute

// DefaultCacheSize is the number of cached credentials when
// Config.CacheSize is zero.
const DefaultCacheSize = 100_000

// subDrainTimeout bounds how long Run waits at shutdown for the server to
// confirm that the subscription is gone and its pending messages delivered.
const subDrainTimeout = 5 * time.Second

// Users is what the relay needs from the user store.
type Users interface {
	// Authenticate checks name and password. It returns an error for which
	// errors.Is(err, accounts.ErrInvalidCredentials) holds for an unknown
	// user or a wrong password (accounts.ErrStaleCredentials, also, for a
	// replaced password past its grace, which the relay refuses without
	// counting it towards a lockout). On success it returns the user, who may be
	// disabled or expired: the relay calls u.Check itself. It must not
	// write: a refusal with the right password costs what a wrong one
	// costs.
	Authenticate(ctx context.Context, name, password string) (accounts.User, error)
	// VerifyDummy spends on password one verification, of a hash no
	// password matches, without looking at any user. Authenticate spends
	// two on a wrong password; the relay calls VerifyDummy twice for an
	// attempt it refuses as locked out (the user's real hash is not
	// tried), and once after a right password it refuses all the same,
	// so that every refusal takes the time of any other.
	VerifyDummy(ctx context.Context, password string) error
	// Rehash is called after a login with name and password was granted
	// and answered, off the reply path, so that the store can bring the
	// user's password hash to its current policy. It never fails a login.
	Rehash(ctx context.Context, name, password string)
	// RolesNamed returns the roles with the given names; names that do not
	// exist are left out (the relay then refuses the login).
	RolesNamed(ctx context.Context, names []string) ([]accounts.Role, error)
}

// CredentialReader finds the user a credential other than a password
// names, once the relay has verified what the client sent (the signature
// of the nonce, the shape of the token, the server's verification of the
// certificate): store.DB.CredentialUser.
type CredentialReader interface {
	// CredentialUser returns the user with the credential of kind and
	// value (accounts.Credential.Lookup) and the user's version
	// (ChangeCounter.UserVersion), or an error for which
	// errors.Is(err, accounts.ErrInvalidCredentials) holds when none has
	// it or it has expired. An expiring credential caps the user's
	// Expires. It must not write.
	CredentialUser(ctx context.Context, kind accounts.CredentialKind, value string) (accounts.User, int64, error)
	// CredentialVersion returns the name of the credential's user and
	// the user's version, with CredentialUser's errors, without reading
	// the user: the credential cache's check.
	CredentialVersion(ctx context.Context, kind accounts.CredentialKind, value string) (string, int64, error)
}

// PositionReader reads a user's version (ChangeCounter) and the change
// feed's end (ChangeFeed.LastUserChange) in one query, for a store that
// keeps both (Config.Positions); the relay then reads both with one query
// per decision.
type PositionReader interface {
	UserPositions(ctx context.Context, name string) (version, lastChange int64, err error)
}

// ChangeCounter is implemented by a Users whose users carry a version; the
// credential cache needs one (see Config.CacheTTL).
type ChangeCounter interface {
	// UserVersion returns a number for the user called name that changes,
	// in the same transaction, with every change to anything Authenticate
	// returns for name or RolesNamed returns for its roles, whoever makes
	// it, and that never comes back once changed (a user that does not
	// exist may have any value no existing user had). The relay reads it
	// before verifying a password and reuses the verification only while
	// it is unchanged, so a change to one user (or a role or account) drops
	// only the cached credentials it concerns. A counter of every change,
	// whatever user it concerns, satisfies this too, at the cost of every
	// cached credential on any change.
	UserVersion(ctx context.Context, name string) (int64, error)
}

// Guard keeps the failed-login counts behind lockouts. The store implements
// it, so that lockouts survive a restart and are shared by every relay on the
// same database. A lockout only refuses logins: the relay never closes a
// live connection because of one.
type Guard interface {
	// Locked reports whether a login of name from addr is locked out at
	// now. The relay asks it before the credential cache.
	Locked(ctx context.Context, name, addr string, now time.Time) (bool, error)
	// Reserve takes one of the attempts the lockout policy leaves for a
	// login of name from addr, before its password is verified, and
	// reports false when there is none (the attempt is then refused as
	// locked out). It counts the verifications in flight, so that a burst
	// of concurrent attempts is bounded like a sequence. After true, the
	// relay calls Release with the same name and addr once it has
	// recorded the outcome.
	Reserve(ctx context.Context, name, addr string, now time.Time) (bool, error)
	// Release gives back a reservation.
	Release(name, addr string)
	// Failed records a refused login of kind f and locks keys once the
	// policy says so.
	Failed(ctx context.Context, name, addr string, now time.Time, f accounts.Failure) error
	// Succeeded records a successful login.
	Succeeded(ctx context.Context, name, addr string, now time.Time) error
}

// Auditor receives every decision the relay sends. Record must not block:
// it is called on the decision path.
type Auditor interface {
	Record(e accounts.LoginEvent)
}

// Config configures a Relay.
type Config struct {
	// URL is the NATS server URL; empty means nats.DefaultURL.
	URL string
	// User and Password are the relay's own login, a user listed in
	// auth_callout.auth_users.
	User, Password string
	// NATSOptions are extra connection options, such as
	// nats.InProcessServer for an embedded server. Run's own closed
	// handler always wins.
	NATSOptions []nats.Option
	// Login, when set, is the relay's own login in place of User and
	// Password: in operator mode, its user JWT and nkey (a user the
	// callout account's auth_users lists). The revoker never uses it.
	Login nats.Option
	// Issuer signs user JWTs and responses. Required.
	Issuer *accounts.Issuer
	// XKey, when set, opens sealed requests and seals responses; unsealed
	// requests are then dropped. When nil, sealed requests are dropped.
	XKey *accounts.XKey
	// Users authenticates clients. Required.
	Users Users
	// Credentials, when set, finds the users of the credentials beside
	// passwords (nkeys, API tokens, TLS client certificates); without it
	// those logins are refused with ReasonNoCredentials.
	Credentials CredentialReader
	// Identity, when set, verifies identity providers' tokens (OIDC /
	// OAuth2 JWTs, accounts.CredOIDC) and finds and creates their users;
	// without it those logins are refused with ReasonBadCredentials.
	Identity *IdentityConfig
	// Guard, when set, locks out usernames and addresses after repeated
	// failed logins.
	Guard Guard
	// Audit, when set, receives every decision sent.
	Audit Auditor
	// ReservedAccounts are accounts the relay never places a user in,
	// typically the callout account and the system account: in config mode
	// nats-server places a user in whatever account the user JWT names,
	// whatever allowed_accounts says. A user whose account is reserved is
	// denied with ReasonAccountReserved.
	ReservedAccounts []string
	// SessionTTL is the lifetime of an issued user JWT; 0 means no expiry
	// other than the user's own.
	SessionTTL time.Duration
	// DecisionTimeout bounds each decision; 0 means DefaultDecisionTimeout.
	// The server's own deadline (the request's exp) may cut it shorter.
	DecisionTimeout time.Duration
	// Workers is the number of decisions handled at once that verify no
	// password: decoding requests, cache hits, cheap denials, signing and
	// sealing; 0 means runtime.GOMAXPROCS(0)*2. They never wait for a
	// password verification.
	Workers int
	// HashWorkers is the number of password verifications run at once,
	// each CPU and memory heavy (argon2id: tens of milliseconds and 19 MiB);
	// 0 means runtime.GOMAXPROCS(0). A request that needs one and could not
	// get it before its deadline is denied at once with ReasonOverloaded;
	// the client retries.
	HashWorkers int
	// Positions, when set with the credential cache and revocation on,
	// reads in one query what Users' UserVersion and Revoke.Changes'
	// LastUserChange read in two: set it only when one store keeps both
	// (the relay then makes one query per decision, not two).
	Positions PositionReader
	// CacheTTL, when positive, turns on the credential cache: after a
	// successful verification the relay remembers, for CacheTTL, a keyed
	// digest of the name and password (never the password) with what the
	// store returned, so that the user's reconnects skip the password
	// hash. Users must then implement ChangeCounter: the relay reads the
	// user's version on every decision and uses a cached verification only
	// while it is unchanged, so any change to the user applies on the very
	// next connect. Lockouts are checked before the cache. 0 turns the
	// cache off; DefaultCacheTTL is a sensible value.
	CacheTTL time.Duration
	// CacheSize bounds the credentials cached, one per username; 0 means
	// DefaultCacheSize.
	CacheSize int
	// Queue is the queue group; empty means DefaultQueue.
	Queue string
	// ServiceVersion is the semantic version the relay reports as a NATS
	// micro service (see ServiceName); empty means "0.0.0".
	ServiceVersion string
	// Observer, when set, is told of every decision sent and, with
	// Revoke set, of every connection a kick closed.
	Observer Observer
	// Logger receives the relay's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Revoke, when set, closes the live connections the relay granted to a
	// user as soon as the user changes (see RevokeConfig).
	Revoke *RevokeConfig
	// MaxClockSkew is the largest difference between the relay's clock and
	// a server's that the relay tolerates; 0 means DefaultMaxClockSkew. A
	// request whose issue time is further than that from the relay's clock
	// is dropped unanswered, and Health reports the skew beyond tolerance.
	// Within it, skew costs nothing: the relay times its answer from its
	// own receive time and the server's timeout, never by comparing the
	// server's exp with its own clock.
	MaxClockSkew time.Duration
}

// Relay answers auth callout requests. Create one with New and start it
// with Run.
//
// Requests go through two pools of workers. The fast lane (Config.Workers)
// decodes each request, checks the lockout, reads the user's version
// and looks in the credential cache; a hit, or a request that needs no
// verification, is answered there. Everything else (cache misses, unknown
// users, locked-out attempts, which must cost what a wrong password costs)
// goes to the hash pool (Config.HashWorkers), unless admission control
// finds the pool too busy to verify it before its deadline: then it is
// denied at once with ReasonOverloaded.
type Relay struct {
	cfg       Config
	realClock bool // cfg.Now is time.Now: deadlines need no translation
	log       *slog.Logger
	ready     chan struct{}
	running   atomic.Bool

	cache   *credCache    // nil when the cache is off
	changes ChangeCounter // cfg.Users, when the cache is on
	// positions reads the user's version and the revocation feed's end in one
	// query (cfg.Positions), when the cache and revocation are on.
	positions PositionReader
	revoke    *revoker // nil when revocation is off

	hashQ    *queue[*request]       // set by Run before any worker starts
	queues   atomic.Pointer[queues] // the same, for Stats; nil before Run
	conn     atomic.Pointer[nats.Conn]
	serving  atomic.Bool   // the subscription is live and not draining
	hashBusy atomic.Int64  // hash workers verifying now
	hashTime movingAverage // a job's time in the hash pool
	stats    counters

	dropWarn, shedWarn everySecond

	// skew measures the servers' clocks; keys whether the server accepts
	// the relay's keys; member moves the relay in and out of the queue
	// group (nil before Run).
	skew                       *skewMeter
	keys                       *keyHealth
	member                     atomic.Pointer[membership]
	skewWarn, keyWarn, rejWarn everySecond
	skewLogged                 atomic.Bool   // a skew above SkewWarnThreshold was logged
	skewRejected               atomic.Uint64 // requests dropped for the skew
	// failWarn limits the log of failed logins the guard could not record
	// (a full disk) to one line a second; failErrs counts them all.
	failWarn everySecond
	failErrs atomic.Uint64
	// connWarn limits the log of failed connection attempts.
	connWarn everySecond
	// oidc bounds the identity provider verifications under way and the
	// users they create (nil without cfg.Identity).
	oidc *oidcLimits
}

// New checks cfg, fills in defaults and returns a Relay.
func New(cfg Config) (*Relay, error) {
	switch {
	case cfg.Issuer == nil:
		return nil, errors.New("new relay: issuer is required")
	case cfg.Users == nil:
		return nil, errors.New("new relay: users is required")
	case cfg.SessionTTL < 0:
		return nil, fmt.Errorf("new relay: session ttl %v is negative", cfg.SessionTTL)
	case cfg.DecisionTimeout < 0:
		return nil, fmt.Errorf("new relay: decision timeout %v is negative", cfg.DecisionTimeout)
	case cfg.Workers < 0:
		return nil, fmt.Errorf("new relay: workers %d is negative", cfg.Workers)
	case cfg.HashWorkers < 0:
		return nil, fmt.Errorf("new relay: hash workers %d is negative", cfg.HashWorkers)
	case cfg.CacheTTL < 0:
		return nil, fmt.Errorf("new relay: cache ttl %v is negative", cfg.CacheTTL)
	case cfg.CacheSize < 0:
		return nil, fmt.Errorf("new relay: cache size %d is negative", cfg.CacheSize)
	case cfg.MaxClockSkew < 0:
		return nil, fmt.Errorf("new relay: max clock skew %v is negative", cfg.MaxClockSkew)
	}
	changes, counted := cfg.Users.(ChangeCounter)
	if cfg.CacheTTL > 0 && !counted {
		return nil, fmt.Errorf("new relay: the credential cache needs users that implement relay.ChangeCounter, which %T does not: set CacheTTL to 0", cfg.Users)
	}
	if cfg.URL == "" {
		cfg.URL = nats.DefaultURL
	}
	if cfg.DecisionTimeout == 0 {
		cfg.DecisionTimeout = DefaultDecisionTimeout
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0) * 2
	}
	if cfg.HashWorkers == 0 {
		cfg.HashWorkers = runtime.GOMAXPROCS(0)
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Queue == "" {
		cfg.Queue = DefaultQueue
	}
	if cfg.MaxClockSkew == 0 {
		cfg.MaxClockSkew = DefaultMaxClockSkew
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.NATSOptions = slices.Clone(cfg.NATSOptions)
	cfg.ReservedAccounts = slices.Clone(cfg.ReservedAccounts)
	realClock := cfg.Now == nil
	if realClock {
		cfg.Now = time.Now
	}
	r := &Relay{
		cfg:       cfg,
		realClock: realClock,
		log:       cfg.Logger.With("component", "relay"),
		ready:     make(chan struct{}),
		skew:      newSkewMeter(),
		keys:      newKeyHealth(cfg.Issuer.PublicKey()),
	}
	if cfg.CacheTTL > 0 {
		r.cache, r.changes = newCredCache(cfg.CacheTTL, cfg.CacheSize), changes
	}
	if cfg.Identity != nil {
		if cfg.Identity.Verifier == nil || cfg.Identity.Users == nil {
			return nil, errors.New("new relay: Identity needs a Verifier and Users")
		}
		r.oidc = newOIDCLimits(cfg.Workers, cfg.Identity)
	}
	if cfg.Revoke != nil {
		v, err := newRevoker(*cfg.Revoke, cfg.SessionTTL, cfg.Now, cfg.Logger)
		if err != nil {
			return nil, fmt.Errorf("new relay: %w", err)
		}
		v.reserved = cfg.ReservedAccounts
		v.pending = cfg.Issuer.PendingAccount()
		v.observer = cfg.Observer
		r.revoke = v
		if r.cache != nil {
			r.positions = cfg.Positions
		}
	}
	return r, nil
}

// Ready returns a channel that is closed once the relay's subscription is
// live on the server. It stays open if Run ends before that.
func (r *Relay) Ready() <-chan struct{} { return r.ready }

// job is one request waiting for a fast-lane worker.
type job struct {
	msg      *nats.Msg
	nc       *nats.Conn // answers go out on it; nil: msg.Respond
	received time.Time
}

// Reasons a queue refuses a request.
var (
	errQueueFull = errors.New("all workers busy and queue full")
	errStopping  = errors.New("relay stopping")
)

// Run connects to NATS, serves auth callout requests until ctx is done, and
// then drains: it stops taking requests, lets in-flight decisions finish
// (bounded by the decision timeout) and closes the connection. It returns nil
// after a clean shutdown. It reconnects for ever while the server is away,
// but returns an error if the connection is closed for good, as nats.go does
// when the server refuses the relay's own login twice. A Relay runs once.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("run relay: already running")
	}

	closed := make(chan struct{})
	opts := []nats.Option{
		nats.Name("authrelay"),
		nats.MaxReconnects(-1),
		// Come back fast after a server restart: until the relay is back,
		// every client's login fails, and nats.go clients give up after
		// the same authorization error twice.
		nats.ReconnectWait(100 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				r.log.Warn("disconnected from nats", "err", err)
			} else {
				r.log.Info("disconnected from nats")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			r.log.Info("reconnected to nats", "url", nc.ConnectedUrlRedacted())
		}),
		// Each failed attempt says where and why (refused, timed out, the
		// x509 reason), at most a line a second.
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil && r.connWarn.allow() {
				r.log.Warn("cannot reach nats; retrying", "url", accounts.RedactURL(r.cfg.URL), "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				r.log.Warn("nats error", "subject", sub.Subject, "err", err)
				return
			}
			r.log.Warn("nats error", "err", err)
		}),
	}
	switch {
	case r.cfg.Login != nil:
		opts = append(opts, r.cfg.Login)
	case r.cfg.User != "" || r.cfg.Password != "":
		opts = append(opts, nats.UserInfo(r.cfg.User, r.cfg.Password))
	}
	opts = append(opts, r.cfg.NATSOptions...)
	opts = append(opts, nats.ClosedHandler(func(*nats.Conn) { close(closed) }))

	nc, err := nats.Connect(r.cfg.URL, opts...)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	if r.revoke != nil {
		// Before the first request: every grant is then remembered.
		stop, err := r.revoke.start(ctx, r.cfg.URL, r.cfg.NATSOptions)
		if err != nil {
			return err
		}
		defer stop()
	}

	q := newQueue[job](r.cfg.Workers * fastQueueFactor)
	r.hashQ = newQueue[*request](r.cfg.HashWorkers * hashQueueFactor)
	r.queues.Store(&queues{fast: q, hash: r.hashQ})
	r.conn.Store(nc)
	defer r.serving.Store(false)
	var fast, slow sync.WaitGroup
	// Decisions in flight at shutdown must finish and be answered, so they
	// do not inherit ctx's cancellation; each has its own deadline.
	wctx := context.WithoutCancel(ctx)
	for range r.cfg.HashWorkers {
		slow.Go(func() {
			for req := range r.hashQ.jobs {
				r.verify(wctx, req)
			}
		})
	}
	for range r.cfg.Workers {
		fast.Go(func() {
			for j := range q.jobs {
				r.handle(wctx, j)
			}
		})
	}
	// The fast lane feeds the hash pool: close the pool's queue only once
	// the fast lane has stopped.
	workersDone := make(chan struct{})
	go func() {
		fast.Wait()
		r.hashQ.close()
		slow.Wait()
		close(workersDone)
	}()

	mem := &membership{r: r, nc: nc, q: q}
	// The server's rejections of the relay's answers arrive as auth error
	// events in the callout account, where the relay's user is.
	events, err := nc.Subscribe(AuthErrorSubject, r.authErrorEvent)
	if err != nil {
		return errors.Join(fmt.Errorf("subscribe %s: %w", AuthErrorSubject, err), r.stopWorkers(q, workersDone))
	}
	mem.events = events
	svc, err := r.addService(nc, q)
	if err != nil {
		mem.stop()
		return errors.Join(fmt.Errorf("subscribe %s: %w", Subject, err), r.stopWorkers(q, workersDone))
	}
	mem.svc = svc
	r.member.Store(mem)

	if err := r.awaitLive(ctx, nc, closed); err != nil {
		mem.stop()
		return errors.Join(err, r.stopWorkers(q, workersDone))
	}
	// The watcher moves the relay out of the queue group and back; it
	// stops before the drain, which leaves the group for good.
	watchDone, watching := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watching)
		mem.watch(watchDone)
	}()
	var stopOnce sync.Once
	stopWatch := func() {
		stopOnce.Do(func() {
			close(watchDone)
			<-watching
		})
	}
	defer stopWatch()
	if ctx.Err() == nil {
		r.log.Info("relay ready", "subject", Subject, "queue", r.cfg.Queue,
			"workers", r.cfg.Workers, "hash_workers", r.cfg.HashWorkers,
			"cache_ttl", r.cfg.CacheTTL, "cache_size", r.cacheSize(), "sealed", r.cfg.XKey != nil)
		select {
		case <-ctx.Done():
		case <-closed:
			err := fmt.Errorf("run relay: nats connection closed: %v", nc.LastError())
			return errors.Join(err, r.stopWorkers(q, workersDone))
		}
	}
	stopWatch()
	return r.drain(nc, mem, q, workersDone)
}

// enqueue hands m, received now, to the fast lane, or drops it when the
// lane is full or stopping.
func (r *Relay) enqueue(q *queue[job], j job) {
	if err := q.offer(j); err != nil {
		r.stats.dropped.Add(1)
		if r.dropWarn.allow() {
			r.log.Warn("dropping auth requests", "err", err, "workers", r.cfg.Workers,
				"dropped_total", r.stats.dropped.Load())
		}
	}
}

// Connected reports whether the relay is answering requests now: its
// subscription has been confirmed by the server, its NATS connection is up,
// and it is not draining. It is safe to call at any time.
func (r *Relay) Connected() bool {
	nc := r.conn.Load()
	return nc != nil && r.serving.Load() && nc.IsConnected()
}

// awaitLive flushes until the server has confirmed the subscription, then
// closes r.ready. It returns nil also when ctx ends first.
func (r *Relay) awaitLive(ctx context.Context, nc *nats.Conn, closed <-chan struct{}) error {
	for {
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		err := nc.FlushWithContext(fctx)
		cancel()
		if err == nil {
			r.serving.Store(true)
			close(r.ready)
			return nil
		}
		r.log.Debug("waiting for nats", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return fmt.Errorf("run relay: nats connection closed: %v", nc.LastError())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// drain stops taking requests, waits (bounded) for in-flight decisions and
// flushes their responses.
func (r *Relay) drain(nc *nats.Conn, mem *membership, q *queue[job], workersDone <-chan struct{}) error {
	r.log.Info("relay draining")
	r.serving.Store(false)
	mem.stop()
	if err := r.stopWorkers(q, workersDone); err != nil {
		return err
	}
	if err := nc.FlushTimeout(time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.log.Warn("flush responses", "err", err)
	}
	r.log.Info("relay stopped")
	return nil
}

// stopWorkers closes the queue and waits for the workers of both pools to
// finish what they held. Every queued decision is answered or abandoned
// within the decision timeout of its arrival, unless Users ignores its
// context; the margin covers signing and sealing.
func (r *Relay) stopWorkers(q *queue[job], workersDone <-chan struct{}) error {
	q.close()
	bound := r.cfg.DecisionTimeout + time.Second
	select {
	case <-workersDone:
		return nil
	case <-time.After(bound):
		return fmt.Errorf("stop relay: decisions still running after %v", bound)
	}
}

// cacheSize returns the cache's bound, or 0 when the cache is off.
func (r *Relay) cacheSize() int {
	if r.cache == nil {
		return 0
	}
	return r.cfg.CacheSize
}
