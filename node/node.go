package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/metrics"
	"github.com/authrelay/authrelay/relay"
	"github.com/authrelay/authrelay/store"
)

// Config is what Run needs to run a node: plain values, already checked
// and resolved by the caller. The zero value of a relay setting means what
// it means in relay.Config.
type Config struct {
	// Layout is the authrelay directory the node serves.
	Layout deploy.Layout
	// URL is the NATS server to connect to (empty means nats.DefaultURL),
	// and NATSOptions extra connection options such as TLS; both are
	// ignored with Embedded.
	URL         string
	NATSOptions []nats.Option
	// Embedded runs nats-server in-process from Layout's nats.conf, and
	// initialises Layout first when it holds no keys yet. Listen, when set,
	// is the client HOST:PORT overriding nats.conf's (port 0: any free
	// port); BcryptCost is the bcrypt cost of the hashes an initialisation
	// writes into nats.conf (0 means deploy.DefaultBcryptCost).
	Embedded   bool
	Listen     string
	BcryptCost int

	// SessionTTL, DecisionTimeout, Workers, HashWorkers, CacheTTL,
	// CacheSize and MaxClockSkew tune the relay, as in relay.Config.
	SessionTTL      time.Duration
	DecisionTimeout time.Duration
	Workers         int
	HashWorkers     int
	CacheTTL        time.Duration
	CacheSize       int
	MaxClockSkew    time.Duration

	// Lockout is the policy of the lockout guard kept in the database.
	Lockout accounts.LockoutPolicy
	// Revoke closes a user's live connections within RevokePoll of a
	// change to the user, logging in as the admin user of secrets.json.
	// At start it also revokes the changes of the last RevokeReplay (0:
	// none), at most SessionTTL back (see DefaultRevokeReplay).
	Revoke       bool
	RevokePoll   time.Duration
	RevokeReplay time.Duration
	// AuditRetention is how long audit rows are kept; 0 keeps them forever.
	AuditRetention time.Duration
	// HTTPAddr, when set, is the HOST:PORT of /metrics, /healthz and
	// /readyz.
	HTTPAddr string
	// ServiceVersion is the semantic version the relay reports as a NATS
	// micro service.
	ServiceVersion string

	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Reload, when not nil, asks on each receive for the embedded server
	// to reload its config (nats.conf and the accounts.conf it includes),
	// as 'authrelay reload' does for a separate server; the outcome is
	// logged. Without Embedded a receive does nothing. Run takes receives
	// once the relay runs, until it returns.
	Reload <-chan struct{}
	// OnReady, when not nil, is called once, when the relay answers
	// logins, with the URL clients connect to.
	OnReady func(url string)
}

// DefaultRevokeReplay is a sensible Config.RevokeReplay, serve's default:
// long enough for a restart, an upgrade or a crash loop of every relay.
const DefaultRevokeReplay = 10 * time.Minute

// statsInterval is how often a node logs the relay's counts, when it made
// any decision since the last time.
const statsInterval = time.Minute

// auditFlushTimeout bounds how long Run waits, on exit, for the audit rows
// of the decisions sent to be written.
const auditFlushTimeout = 10 * time.Second

// The store is what the relay authenticates against, keeps lockouts in and
// writes the audit trail to.
var (
	_ relay.Users         = (*store.DB)(nil)
	_ relay.ChangeCounter = (*store.DB)(nil)
	_ relay.ChangeFeed    = (*store.DB)(nil)
	_ relay.Guard         = (*store.Lockouts)(nil)
	_ relay.Auditor       = (*store.AuditWriter)(nil)
)

// Run runs a node until ctx is done, then drains the relay's in-flight
// logins, writes their audit rows, stops the embedded server and returns
// nil. It returns an error when the node cannot start, or when the relay
// stops for another reason than ctx.
func Run(ctx context.Context, cfg Config) error {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := cfg.Layout
	if cfg.Embedded && !l.Initialised() {
		if err := deploy.Init(ctx, l, deploy.InitOptions{Accounts: []string{"APP"}, Listen: defaultListenOr(cfg.Listen), BcryptCost: cfg.BcryptCost}); err != nil {
			return err
		}
		logger.Info("initialised directory", "dir", l.Dir)
	}
	// The directory's mode (config or operator) decides the keys and
	// logins; see deploy.Layout.Identity.
	id, err := l.Identity()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	issuer, xkey := id.Issuer, id.XKey
	// Hold the serve lock for as long as the node runs, taken before the
	// database is opened, so that 'authrelay restore' cannot replace the
	// file in between.
	lock, err := store.LockServing(ctx, l.Path(deploy.DatabaseFile))
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		logger.Warn("no serve lock on this platform: 'authrelay restore' cannot tell that this relay serves the directory", "err", err)
	case err != nil:
		return fmt.Errorf("serve: %w", err)
	}
	defer lock.Release()
	db, err := l.OpenLocal(ctx)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer db.Close()
	// Cluster mode is decided by the directory (cluster.json); the copy is
	// attached to the log before anything else uses it.
	var cm *clusterMode
	if c, ok, err := l.Cluster(); err != nil {
		return fmt.Errorf("serve: %w", err)
	} else if ok {
		cm = &clusterMode{l: l, c: c, db: db, logger: logger.With("component", "cluster")}
		db.Replicate(cm, cm.catchUp)
	}
	db.TruncateWAL(ctx, logger)
	hashWorkers := cfg.HashWorkers
	if hashWorkers == 0 {
		hashWorkers = runtime.GOMAXPROCS(0) // the relay's default
	}
	if err := checkServePolicy(db.Params, hashWorkers); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := store.PolicyFloor(db.Params); err != nil {
		// A database set before the floor rose: it runs, but say so.
		logger.Warn("the stored password hash policy is weaker than OWASP's minimum: a stolen database is cheap to crack; raise it with 'authrelay hash set' (users are rehashed at their next login)",
			"policy", db.Params.String(), "err", err)
	}
	db.OnRehash = rehashLogger(logger, cm != nil)
	db.OnPolicy = policyLogger(logger, hashWorkers)
	reserved, err := db.ReservedAccounts() // from nats.conf; see deploy.Layout.OpenDatabase
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	guard := db.Lockouts(cfg.Lockout)
	auditOpts := store.AuditOptions{Logger: logger}
	var events *nodeEvents // cluster mode: lockouts and login rows reach every node
	if cm != nil {
		events = newNodeEvents(db, guard, logger.With("component", "cluster"))
		auditOpts.OnWrite = events.publishAudit
	}
	audit := db.NewAuditWriter(auditOpts)

	// Identity providers' tokens: the verifiers follow the store's
	// providers (idp add|rm) while the relay runs.
	ids, err := newIdentitySet(ctx, db, logger.With("component", "idp"))
	if err != nil {
		audit.Close(context.Background())
		return fmt.Errorf("serve: identity providers: %w", err)
	}
	idsCtx, stopIDs := context.WithCancel(context.WithoutCancel(ctx))
	idsDone := make(chan struct{})
	go func() { defer close(idsDone); ids.watch(idsCtx) }()
	defer func() { stopIDs(); <-idsDone }()

	rc := relay.Config{
		URL:         cfg.URL,
		NATSOptions: cfg.NATSOptions,
		Login:       id.RelayLogin,
		Issuer:      issuer,
		XKey:        xkey,
		Users:       db,
		Credentials: db,
		Identity:    &relay.IdentityConfig{Verifier: ids.set, Users: db},
		Guard:       guard,
		Audit:       audit,
		// Never place a user in the callout or system account of the
		// nats.conf served, whatever the database says.
		ReservedAccounts: reserved,
		SessionTTL:       cfg.SessionTTL,
		DecisionTimeout:  cfg.DecisionTimeout,
		Workers:          cfg.Workers,
		HashWorkers:      cfg.HashWorkers,
		CacheTTL:         cfg.CacheTTL,
		Positions:        db, // the user versions and the change feed in one store
		CacheSize:        cfg.CacheSize,
		Logger:           logger,
		Now:              cfg.Now,
		MaxClockSkew:     cfg.MaxClockSkew,
		ServiceVersion:   cfg.ServiceVersion,
	}
	if cm != nil {
		// A cluster node's relay answers its own server's logins only: the
		// queue group spans the routes, so the other relays answer while
		// this server is down, and a relay that went on through another
		// server would answer from a copy whose follower (on this server)
		// has stopped, granting a user disabled meanwhile.
		rc.NATSOptions = append(slices.Clone(rc.NATSOptions), nats.IgnoreDiscoveredServers())
	}

	var ns *server.Server
	if cfg.Embedded {
		var opts *server.Options
		ns, opts, err = deploy.StartEmbedded(l, deploy.EmbeddedOptions{
			Listen: cfg.Listen,
			Check:  func(o *server.Options) error { return checkCallout(l, o, id) },
			Logger: logger.With("component", "nats-server"),
		})
		if err != nil {
			audit.Close(context.Background())
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		rc.URL = ns.ClientURL()
		rc.NATSOptions = []nats.Option{nats.InProcessServer(ns)}
		if timeout := time.Duration(opts.AuthTimeout * float64(time.Second)); timeout > 0 && cfg.DecisionTimeout >= timeout {
			logger.Warn("--decision-timeout is not below the server's authorization timeout: slow decisions will be wasted", "decision_timeout", cfg.DecisionTimeout, "server_timeout", timeout)
		}
		if timeout := time.Duration(opts.AuthTimeout * float64(time.Second)); cfg.MaxClockSkew < timeout {
			logger.Warn("--max-clock-skew is below the server's authorization timeout: a clock skew the server tolerates would fail logins", "max_clock_skew", cfg.MaxClockSkew, "server_timeout", timeout)
		}
		if l.XKeyOff(opts, id) {
			// The operator removed the xkey from nats.conf: requests arrive
			// unsealed, so the relay must accept them, but say so loudly.
			rc.XKey = nil
			logger.Warn("nats.conf has no auth_callout xkey: passwords travel unencrypted inside the AUTH account; restore the xkey line")
		}
	}

	if cfg.Revoke {
		if id.AdminLogin == nil {
			audit.Close(context.Background())
			return fmt.Errorf("serve: --revoke needs admin_user and admin_password in %s, the system account's login that kicks connections; or give --revoke=false", l.Path(deploy.SecretsFile))
		}
		rc.Revoke = &relay.RevokeConfig{
			AdminUser:  id.AdminUser,
			AdminLogin: id.AdminLogin,
			Changes:    db,
			History:    db,
			Poll:       cfg.RevokePoll,
			Replay:     revokeReplay(cfg.RevokeReplay, cfg.SessionTTL),
			OnKick:     kickAuditor(db, logger.With("component", "revoke")),
		}
	}
	met := metrics.New()
	met.WatchStore(db, audit, guard)
	var eventsCheck metrics.Check
	if cm != nil {
		met.WatchCluster(cm.position)
		eventsCheck = events.watch(met)
		cm.reload = func(ctx context.Context) error {
			if ns != nil {
				return ns.Reload()
			}
			nc, err := l.ConnectAdmin(cmp.Or(rc.URL, nats.DefaultURL), "authrelay serve (reload)", deploy.ClusterTimeout, rc.NATSOptions...)
			if err != nil {
				return err
			}
			defer nc.Close()
			return deploy.ReloadServer(ctx, nc, cm.log.Load().Conn.ConnectedServerId(), deploy.ClusterTimeout)
		}
	}
	rc.Observer = met

	r, err := relay.New(rc)
	if err != nil {
		audit.Close(context.Background())
		return fmt.Errorf("serve: %w", err)
	}
	met.WatchRelay(r)
	if rc.Revoke != nil {
		met.WatchRevocation(r)
	}
	if cfg.HTTPAddr != "" {
		checks := metrics.ReadyChecks(r, db, audit, guard)
		if cm != nil {
			checks = append([]metrics.Check{{Name: "cluster log", Check: cm.readyCheck}}, checks...)
			checks = append(checks, eventsCheck)
		}
		stopHTTP, err := metrics.Serve(cfg.HTTPAddr, metrics.Mux(met, checks), logger.With("component", "http"))
		if err != nil {
			audit.Close(context.Background())
			return fmt.Errorf("serve: --http %s: %w", cfg.HTTPAddr, err)
		}
		defer stopHTTP()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cm != nil {
		// Never answer a login from a copy known to be behind: reach the
		// log and catch up first, however long it takes.
		if err := cm.start(ctx, cmp.Or(rc.URL, nats.DefaultURL), rc.NATSOptions); err != nil {
			audit.Close(context.Background())
			return relayExit(err)
		}
		ran, rehashed := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(ran)
			cm.run(ctx)
		}()
		// The rehashes logins queue are stored as admin changes.
		go func() {
			defer close(rehashed)
			db.RehashLoop(ctx)
		}()
		// The follower and the rehashes stop before the database closes.
		defer func() { cancel(); <-ran; <-rehashed }()
		stopEvents, err := events.start(ctx, cm.log.Load(), cfg.AuditRetention)
		if err != nil {
			audit.Close(context.Background())
			return fmt.Errorf("serve: %w", err)
		}
		defer stopEvents() // after the audit writer's last rows, before the follower
	}
	done := make(chan error, 1)
	go func() {
		err := r.Run(ctx)
		// The relay has drained: every decision it sent is in the
		// writer's buffer; flush them all before returning.
		fctx, fcancel := context.WithTimeout(context.Background(), auditFlushTimeout)
		defer fcancel()
		if cerr := audit.Close(fctx); cerr != nil {
			logger.Error("audit trail not fully written", "err", cerr)
		}
		done <- err
	}()
	go db.Maintain(ctx, cfg.AuditRetention, logger)
	go db.EndGracesLoop(ctx, time.Second, logger.With("component", "revoke"))
	go db.WatchFile(ctx, logger.With("component", "database"))
	go db.CheckpointLoop(ctx, logger.With("component", "database"))
	go r.LogStats(ctx, statsInterval, logger.With("component", "relay"))
	go reloadServer(ctx, cfg.Reload, ns, logger)

	select {
	case <-r.Ready():
		logger.Info("relay ready", "nats", rc.URL, "dir", l.Dir, "session_ttl", cfg.SessionTTL)
		if cfg.OnReady != nil {
			cfg.OnReady(rc.URL)
		}
	case err := <-done:
		return relayExit(err)
	}
	return relayExit(<-done)
}

// rehashLogger is the store's OnRehash for a node: it logs each password
// rehashed to the current policy, and the failures. A cluster node follows
// the policy from the log, so there a changed policy needs no restart.
func rehashLogger(logger *slog.Logger, clustered bool) func(name string, err error) {
	policyChangedMsg := "hash policy changed since serve started: restart serve to rehash to it"
	if clustered {
		policyChangedMsg = "hash policy changed while this login was rehashed: a later login rehashes at the new one"
	}
	var policyChanged atomic.Int64
	return func(name string, err error) {
		switch {
		case err == nil:
			logger.Info("rehashed password to the current policy", "user", name)
		case errors.Is(err, store.ErrHashPolicyChanged):
			// 'authrelay hash set' ran after this relay started; say so
			// once in a while, not on every login.
			if policyChanged.Add(1)%1000 == 1 {
				logger.Warn(policyChangedMsg, "user", name)
			}
		default:
			logger.Warn("rehash failed; the next login tries again", "user", name, "err", err)
		}
	}
}

// kickAuditor is the relay's OnKick for a node: it records each
// connection kick in the admin audit trail, and logs when it cannot.
func kickAuditor(db *store.DB, logger *slog.Logger) func(context.Context, relay.Kick) {
	return func(ctx context.Context, k relay.Kick) {
		detail := map[string]any{"user": k.User, "server_id": k.ServerID, "client_id": k.ClientID, "change": k.ChangeID, "found": k.Found}
		if k.Err != nil {
			detail["error"] = k.Err.Error()
		}
		b, _ := json.Marshal(detail) // strings, numbers and a bool: it cannot fail
		if err := db.AuditAdmin(ctx, "authrelay serve", "connection kick", string(b)); err != nil {
			logger.Error("kick not recorded in the audit trail", "user", k.User, "err", err)
		}
	}
}

// reloadServer reloads, on each receive from reload until ctx is done, the
// config of the embedded server ns (the file it runs, whose embedded.conf
// keeps a --listen address), as 'authrelay reload' has a separate server
// do itself. Without an embedded server (ns nil) it only takes the
// receives.
func reloadServer(ctx context.Context, reload <-chan struct{}, ns *server.Server, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
		}
		if ns == nil {
			continue
		}
		if err := ns.Reload(); err != nil {
			logger.Error("reload nats.conf failed; the server keeps its previous config", "err", err)
			continue
		}
		logger.Info("reloaded nats.conf")
	}
}

// relayExit is Run's error for the relay's: none when ctx ended it.
func relayExit(err error) error {
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// defaultListenOr returns listen for a new nats.conf, or the default when
// listen is empty or asks for any free port.
func defaultListenOr(listen string) string {
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "0" {
		return listen
	}
	return deploy.DefaultListen
}

// checkCallout verifies that the server config delegates logins to this
// relay: same issuer, same xkey (or none), the dedicated callout account.
func checkCallout(l deploy.Layout, opts *server.Options, id deploy.Identity) error {
	for _, p := range l.CheckServer(opts, id) {
		if p.Fatal {
			return errors.New(p.Message)
		}
	}
	return nil
}

// revokeReplay is how far back a starting relay revokes user changes: what
// Config.RevokeReplay asks, but no further than the session TTL, after
// which every JWT granted before a change has expired.
func revokeReplay(replay, sessionTTL time.Duration) time.Duration {
	if sessionTTL > 0 {
		return min(replay, sessionTTL)
	}
	return replay
}

// NewLogger returns the logger serve writes to w: level is debug, info,
// warn or error (set into lv, so that a reload can change it), format text
// or json.
func NewLogger(w io.Writer, level, format string, lv *slog.LevelVar) (*slog.Logger, error) {
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// Check says what is wrong with c's settings as serve's flags give them
// (every one set: Run takes a zero for a default, serve never gives one),
// with the flag to give instead.
func (c Config) Check() error {
	if err := c.Lockout.Validate(); err != nil {
		return err
	}
	switch {
	case c.Revoke && c.RevokePoll <= 0:
		return fmt.Errorf("--revoke-poll %v: give a positive duration such as 200ms (--revoke=false turns revocation off)", c.RevokePoll)
	case c.RevokeReplay < 0:
		return fmt.Errorf("--revoke-replay %v: give zero or a positive duration such as 10m", c.RevokeReplay)
	case c.AuditRetention < 0:
		return fmt.Errorf("--audit-retention %v: must not be negative (0 keeps rows forever)", c.AuditRetention)
	case c.SessionTTL < 0:
		return fmt.Errorf("--session-ttl %v: must not be negative (0 means no expiry)", c.SessionTTL)
	case c.DecisionTimeout <= 0:
		return fmt.Errorf("--decision-timeout %v: give a positive duration below the server's authorization timeout, such as 1.5s", c.DecisionTimeout)
	case c.Workers < 0:
		return fmt.Errorf("--workers %d: must not be negative", c.Workers)
	case c.HashWorkers < 0:
		return fmt.Errorf("--hash-workers %d: must not be negative", c.HashWorkers)
	case c.CacheTTL < 0:
		return fmt.Errorf("--cache-ttl %v: must not be negative (0 turns the cache off)", c.CacheTTL)
	case c.MaxClockSkew < time.Second:
		return fmt.Errorf("--max-clock-skew %v: give at least 1s, and at least the server's authorization timeout, such as 5s", c.MaxClockSkew)
	case c.CacheSize < 1:
		return fmt.Errorf("--cache-size %d: give at least 1 (--cache-ttl 0 turns the cache off)", c.CacheSize)
	case c.Listen != "" && !c.Embedded:
		return errors.New("--listen applies only with --embedded; to change a separate server's address edit its nats.conf")
	case c.Listen != "":
		return deploy.ValidateListen(c.Listen, true)
	}
	return nil
}
